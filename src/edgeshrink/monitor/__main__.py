"""``python -m edgeshrink.monitor run MODEL ...`` (see ``edgeshrink.monitor.cli``)."""

import sys

from edgeshrink.monitor.cli import main

sys.exit(main())

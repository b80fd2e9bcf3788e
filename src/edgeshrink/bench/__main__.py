"""``python -m edgeshrink.bench MODEL.onnx ...`` (see ``edgeshrink.bench.cli``)."""

import sys

from edgeshrink.bench.cli import main

sys.exit(main())

"""Report: the trade-off of a study as a terminal table and a self-contained HTML page.

The report reads result records (``RUN/results.json``) only, never models, so it can be
rebuilt at any time from a finished or interrupted run.

Example:
    >>> from edgeshrink.report import write_report
    >>> write_report("runs/demo")  # doctest: +SKIP
    PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

from edgeshrink.report.html import write_report
from edgeshrink.report.terminal import print_summary

__all__ = ["write_report", "print_summary"]

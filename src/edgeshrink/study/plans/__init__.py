"""The candidate lists a study builds, one module per family, plus the device-driven plan.

Imports flow one way: :mod:`edgeshrink.study` reads :mod:`edgeshrink.prune`,
:mod:`edgeshrink.quant` and :mod:`edgeshrink.targets` for their configs; none of those
imports ``edgeshrink.study`` (``tests/unit/study/test_import_direction.py`` holds that).
Each module is imported on first use (they pull in torch).

Example:
    >>> from edgeshrink.study.plans.structured import structured_candidates
    >>> [s.name for s in structured_candidates(None)][-1]
    'channels-50mac+int8-static'
"""

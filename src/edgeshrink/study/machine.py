"""What machine a measurement came from: CPU, cores, vector flags, package versions.

The CPU facts come from :mod:`edgeshrink.bench.machine` (what ``edgeshrink bench`` reports
on a device), so a study's ``results.json`` and a device's bench JSON name the same flags.
"""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata

from edgeshrink.bench.machine import cpu_flags
from edgeshrink.bench.machine import machine_info as _bench_machine_info

__all__ = ["machine_info", "cpu_flags"]


def machine_info() -> dict:
    """``{cpu, cores, flags, platform, python, versions}`` of this machine (``results.json``).

    Example:
        >>> machine_info()["cores"] >= 1
        True
    """
    versions = {}
    for pkg in ("torch", "onnxruntime", "onnx", "numpy", "edgeshrink"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    bench = _bench_machine_info()
    return {
        "cpu": bench["cpu_model"] or platform.machine(),
        "cores": os.cpu_count(),
        "flags": bench["cpu_flags"],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }

"""What machine a measurement came from: CPU, cores, vector flags, package versions."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from pathlib import Path

__all__ = ["machine_info", "cpu_flags"]

_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "fma", "neon",
          "asimddp")


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            have = set(line.split(":", 1)[1].split())
            return [f for f in _FLAGS if f in have]
    return []


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    versions = {}
    for pkg in ("torch", "onnxruntime", "onnx", "numpy", "edgeshrink"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "flags": cpu_flags(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }

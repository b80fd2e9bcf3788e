"""What machine a figure was measured on, and how much memory this process holds.

The CPU flags are the ones that decide which kernels ONNX Runtime can use: AVX2 /
AVX-512 / VNNI / BF16 / AMX on x86, NEON dot-product / i8mm / BF16 / SVE on Arm.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

__all__ = ["machine_info", "cpu_flags", "peak_rss_mb", "current_rss_mb", "versions"]

_INTERESTING_FLAGS = (
    # x86
    "sse4_2",
    "avx",
    "f16c",
    "fma",
    "avx2",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    # Arm (Features: line)
    "neon",
    "asimd",
    "asimdhp",
    "asimddp",
    "fphp",
    "i8mm",
    "bf16",
    "sve",
    "sve2",
)
_MIB = 1024 * 1024


def _cpuinfo() -> dict[str, str]:
    """First value of each key in /proc/cpuinfo (empty where there is none)."""
    out: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip().lower(), value.strip())
    return out


def cpu_flags(info: dict[str, str] | None = None) -> list[str]:
    """The kernel-relevant CPU flags present, in a fixed order (Linux; [] elsewhere)."""
    info = _cpuinfo() if info is None else info
    present = set((info.get("flags") or info.get("features") or "").split())
    return [f for f in _INTERESTING_FLAGS if f in present]


def _mem_total_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_info() -> dict[str, Any]:
    """Platform, CPU model, core count, kernel-relevant CPU flags and memory of this machine.

    Example:
        >>> machine_info()["cpu_count"] >= 1
        True
    """
    info = _cpuinfo()
    model = info.get("model name") or info.get("hardware") or info.get("model") or ""
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": model or platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_flags": cpu_flags(info),
        "mem_total_mb": _mem_total_mb(),
    }


def versions() -> dict[str, str]:
    """Versions of what the measurement ran on."""
    import numpy as np

    import edgeshrink
    from edgeshrink.bench.session import import_ort

    ort = import_ort()

    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "edgeshrink": edgeshrink.__version__,
    }


def _proc_status_mb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_mb() -> tuple[float | None, str]:
    """Peak resident memory of this process in MiB, and where the figure came from.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of *this* program's memory.
    Not ``ru_maxrss``: Linux carries a parent's peak over fork+exec into the child's
    ``ru_maxrss``, so a child started from a 2 GB process reports at least 2 GB.
    Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm, "VmHWM"
    try:
        import resource
    except ImportError:  # Windows
        return None, "unavailable"
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (maxrss / _MIB if sys.platform == "darwin" else maxrss / 1024), "ru_maxrss"


def current_rss_mb() -> float | None:
    """Resident memory of this process now, in MiB (Linux /proc; None elsewhere)."""
    return _proc_status_mb("VmRSS")

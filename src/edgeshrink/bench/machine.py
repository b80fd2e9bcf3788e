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

__all__ = ["machine_info", "cpu_flags", "arm_core_types", "peak_rss_mb", "current_rss_mb",
           "versions", "KNOWN_FLAGS"]

# the kernel-relevant flags reported (and the names a device profile's cpu_flags may use)
KNOWN_FLAGS = (
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
# Arm's "CPU part" numbers (implementer 0x41) in /proc/cpuinfo -> core names: how an aarch64
# Linux says which cores it has (it has no "model name"). Arm's Technical Reference Manuals,
# MIDR_EL1.PartNum of each core.
_ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE", "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2", "0xd49": "Neoverse-N2", "0xd4b": "Cortex-A78C", "0xd4d": "Cortex-A715",
    "0xd4e": "Cortex-X3", "0xd4f": "Neoverse-V2", "0xd80": "Cortex-A520", "0xd81": "Cortex-A720",
    "0xd82": "Cortex-X4",
}  # fmt: skip


def _cpuinfo_text() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def _cpuinfo(text: str | None = None) -> dict[str, str]:
    """First value of each key in /proc/cpuinfo (empty where there is none)."""
    out: dict[str, str] = {}
    for line in (_cpuinfo_text() if text is None else text).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip().lower(), value.strip())
    return out


def arm_core_types(text: str | None = None) -> list[str]:
    """The Arm core types of this machine, in /proc/cpuinfo order without repeats
    (``["Cortex-X3", "Cortex-A715", "Cortex-A510"]`` on a phone); [] elsewhere.

    Example:
        >>> arm_core_types("CPU implementer\t: 0x41\nCPU part\t: 0xd08\n")
        ['Cortex-A72']
    """
    out: list[str] = []
    implementer = ""
    for line in (_cpuinfo_text() if text is None else text).splitlines():
        key, _, value = (s.strip().lower() for s in line.partition(":"))
        if key == "cpu implementer":
            implementer = value
        elif key == "cpu part" and implementer == "0x41":
            name = _ARM_PARTS.get(value, f"Arm part {value}")
            if name not in out:
                out.append(name)
    return out


def cpu_flags(info: dict[str, str] | None = None) -> list[str]:
    """The kernel-relevant CPU flags present, in a fixed order (Linux; [] elsewhere)."""
    info = _cpuinfo() if info is None else info
    present = set((info.get("flags") or info.get("features") or "").split())
    return [f for f in KNOWN_FLAGS if f in present]


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
    text = _cpuinfo_text()
    info = _cpuinfo(text)
    cores = arm_core_types(text)
    model = (info.get("model name") or info.get("hardware") or info.get("model")
             or " + ".join(cores))
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": model or platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_flags": cpu_flags(info),
        "cpu_core_types": cores,
        "board": info.get("model", "") if cores else "",
        "mem_total_mb": _mem_total_mb(),
    }


def versions(runtimes=()) -> dict[str, str | None]:
    """Versions of what the measurement ran on: Python, numpy, edgeshrink and each runtime
    (a :class:`~edgeshrink.bench.session.Runtime`) under its package name."""
    import numpy as np

    import edgeshrink
    from edgeshrink.bench.session import runtime_version

    out = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "edgeshrink": edgeshrink.__version__,
    }
    for rt in runtimes:
        out[rt.package] = runtime_version(rt)
    return out


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

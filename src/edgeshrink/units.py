"""One unit convention for every figure edgeshrink shows: SI bytes, milliseconds, millijoules.

Sizes are shown in SI units (1 kB = 1,000 bytes, 1 MB = 1,000,000 bytes) everywhere: the
terminal table, the report's cards, tables and plots, and the advisor's reasons. The
command line also accepts IEC units (``512KiB`` = 524,288 bytes); they are converted to
bytes and shown in SI. Every formatter here is the only one for its quantity, so a number
about one candidate reads the same wherever it appears.

Example:
    >>> fmt_bytes(83_456), fmt_ms(0.12345), fmt_mj(0.0042)
    ('83.5 kB', '0.123 ms', '0.00420 mJ')
"""

from __future__ import annotations

import math

__all__ = ["fmt_bytes", "fmt_ms", "fmt_mj", "fmt_points", "fmt_interval", "bytes_scale",
           "SIZE_UNITS_HELP"]

SIZE_UNITS_HELP = ("SI units, as every size is shown: 200kB = 200,000 bytes, 1.5MB; "
                   "IEC 512KiB = 524,288 bytes is accepted too")


def bytes_scale(top: float) -> tuple[float, str]:
    """(divisor, unit) to show sizes up to ``top`` bytes: B, kB or MB (SI)."""
    if top >= 1e6:
        return 1e6, "MB"
    return (1e3, "kB") if top >= 1e3 else (1.0, "B")


def fmt_bytes(n: float | None) -> str:
    """``83456`` -> ``'83.5 kB'`` (SI: 1 kB = 1000 B); None -> ``'-'``."""
    if n is None:
        return "-"
    scale, unit = bytes_scale(abs(float(n)))
    if unit == "B":
        return f"{float(n):.0f} B"
    return f"{float(n) / scale:.1f} {unit}"


def _sig(v: float) -> str:
    """Three significant digits, never scientific notation for the usual range."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    digits = max(0, 2 - int(math.floor(math.log10(abs(v)))))
    return f"{v:.{digits}f}"


def fmt_ms(v: float | None) -> str:
    """Latency with three significant digits: ``'0.123 ms'``, ``'12.3 ms'``."""
    return "-" if v is None else f"{_sig(float(v))} ms"


def fmt_mj(v: float | None) -> str:
    """Energy per inference, three significant digits: ``'0.00420 mJ'``."""
    return "-" if v is None else f"{_sig(float(v))} mJ"


def fmt_points(v: float | None) -> str:
    """Metric drop in points, signed (positive = worse): ``'+0.12'``."""
    return "-" if v is None else f"{float(v):+.2f}"


def fmt_interval(ci: list[float] | tuple[float, float] | None, *, signed: bool = False) -> str:
    """A 95 % interval as ``'[+0.05, +0.31]'`` (empty text when there is none)."""
    if not ci:
        return ""
    lo, hi = (float(x) for x in ci)
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"[{f.format(lo)}, {f.format(hi)}]"

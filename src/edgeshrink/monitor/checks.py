"""What one check looks at besides the drift score, and the row it adds to the series.

Each condition is compared with its threshold; an alert is raised when it starts to hold
and re-armed when it stops (:class:`~edgeshrink.monitor.alerts.AlertBook`):

- ``drift``: the score (``-log10`` of the smallest p-value of the window's tests) above
  the profile's calibrated threshold;
- ``accuracy``: the Wilson upper bound of the labelled window's accuracy below the
  profile's accuracy minus ``max_drop``;
- ``agreement``: likewise for top-1 agreement (or cosine) with the uncompressed reference
  on the shadow samples;
- ``latency``: the window's p50 above ``latency_factor`` times the device's own baseline;
- ``memory``: resident memory above ``max_rss_mb``.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeshrink.monitor.stats import wilson_interval

if TYPE_CHECKING:
    from edgeshrink.monitor.core import Monitor

__all__ = ["run_checks"]


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or x != x or x in (np.inf, -np.inf) else round(float(x), digits)


def _condition(mon: Monitor, kind: str, holds: bool, **info: Any) -> list[dict]:
    if holds:
        return mon.alerts.fire(kind, mon.meta["samples"], **info)
    mon.alerts.clear(kind)
    return []


def _accuracy(mon: Monitor, row: dict) -> list[dict]:
    n = mon.meta["acc_fill"]
    if not n:
        return []
    correct = int(mon.buffers["acc"][:n].sum())
    lo, hi = wilson_interval(correct, n)
    row.update(acc=_r(correct / n), acc_lo=_r(lo), acc_hi=_r(hi), ph=_r(mon.ph.value))
    ref = mon.profile.accuracy
    if ref is None or n < mon.window:
        return []
    upper = wilson_interval(correct, n, mon.options.z)[1]
    return _condition(mon, "accuracy", upper < ref - mon.options.max_drop, value=correct / n,
                      threshold=ref - mon.options.max_drop, test="wilson")


def _agreement(mon: Monitor, row: dict) -> list[dict]:
    n = mon.meta["shadow_fill"]
    if not n:
        return []
    agree = mon.buffers["agree"][:n]
    row["agree"] = _r(float(agree.mean()))
    ref = mon.profile.agreement
    if ref is None or n < 50:
        return []
    if mon.classifier:
        upper = wilson_interval(int(agree.sum()), n, mon.options.z)[1]
    else:
        upper = float(agree.mean() + mon.options.z * agree.std() / np.sqrt(n))
    return _condition(mon, "agreement", upper < ref - mon.options.max_drop,
                      value=float(agree.mean()), threshold=ref - mon.options.max_drop,
                      test="wilson" if mon.classifier else "mean")


def _resources(mon: Monitor, row: dict) -> list[dict]:
    raised: list[dict] = []
    lat = mon.buffers["lat"]
    lat = lat[lat == lat]  # not NaN: samples that came with a latency
    if len(lat):
        p50 = float(np.partition(lat, len(lat) // 2)[len(lat) // 2])
        row["lat_p50"] = _r(p50)
        base = mon.meta["latency_baseline"]
        if len(base) < 3:
            base.append(p50)
        else:
            limit = mon.options.latency_factor * float(np.median(base))
            raised += _condition(mon, "latency", p50 > limit, value=p50, threshold=limit,
                                 test="p50")
    if mon.meta["checks"] % (4 * mon.options.row_every) == 1:
        mon.meta["rss_mb"] = rss_mb()
    rss = mon.meta.get("rss_mb")
    row["rss_mb"] = _r(rss)
    if rss is not None and mon.options.max_rss_mb is not None:
        raised += _condition(mon, "memory", rss > mon.options.max_rss_mb, value=rss,
                             threshold=mon.options.max_rss_mb, test="rss")
    return raised


def rss_mb() -> float | None:
    """Resident memory of this process in MiB from /proc/self/statm (one short line: far
    cheaper than /proc/self/status, which the kernel assembles field by field)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def run_checks(mon: Monitor, tests: dict, value: float, worst: str, *,
               full: bool = True) -> tuple[dict | None, list[dict]]:
    """``(series row or None, alerts raised)`` for the drift check just computed; the other
    checks and the row only when ``full`` or an alert was raised (they cost more than the
    drift check's own arithmetic at every step)."""
    threshold = mon.profile.thresholds["threshold"]
    raised = _condition(mon, "drift", value > threshold, value=value, threshold=threshold,
                        test=worst)
    if not (full or raised):
        return None, raised
    row: dict[str, Any] = {
        "n": mon.meta["samples"], "t": int(time.time()),
        "score": _r(value), "worst": worst,
        **{k: _r(v["value"]) for k, v in tests.items()},
    }
    raised += _accuracy(mon, row)
    raised += _agreement(mon, row)
    raised += _resources(mon, row)
    return row, raised

"""Monitoring a deployed (compressed) model on the device: drift, agreement, accuracy.

Everything imported here is the standard library, numpy and (to run models) onnxruntime,
so the monitor runs where the model runs: ``python3 edgeshrink-bench.pyz monitor ...``.
The reference profile comes from the study (``recommended/monitor-profile.json``) or from
:func:`build_profile` on any ONNX file and evaluation data.

Example:
    >>> from edgeshrink.monitor import Monitor, build_profile
    >>> build_profile("int8.onnx", x_eval, y_eval).save("profile.json")  # doctest: +SKIP
    >>> with Monitor("profile.json", state="monitor.sqlite") as mon:  # doctest: +SKIP
    ...     alerts = mon.observe(outputs, labels=y)
"""

from edgeshrink.monitor.core import Monitor, MonitorOptions
from edgeshrink.monitor.profile import (
    Calibration,
    Profile,
    build_profile,
    profile_from_sample,
    reference_sample,
)
from edgeshrink.monitor.stats import (
    PageHinkley,
    Sketch,
    chi2_sf,
    ks_pvalue,
    ks_statistic,
    psi,
    wilson_interval,
)

__all__ = [
    "Calibration",
    "Monitor",
    "MonitorOptions",
    "PageHinkley",
    "Profile",
    "Sketch",
    "build_profile",
    "chi2_sf",
    "ks_pvalue",
    "ks_statistic",
    "profile_from_sample",
    "psi",
    "reference_sample",
    "wilson_interval",
]

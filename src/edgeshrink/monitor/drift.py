"""One drift check: a window of per-sample summaries against the reference profile.

Each summary gets KS (shape of the distribution) and PSI (the customary binned index); the
predicted classes get a two-sample chi-square. Every test returns a p-value; the
check's score is ``-log10`` of the smallest, compared with the profile's calibrated
threshold. The same function runs on the device and in the calibration, so the threshold
is calibrated for exactly what runs.

Example:
    >>> tests = window_tests(sketches, class_counts, {"conf": c, "entropy": e}, cls)  # doctest: +SKIP
    >>> score(tests)  # doctest: +SKIP
    1.7
"""

from __future__ import annotations

import math

import numpy as np

from edgeshrink.monitor.stats import (
    Sketch,
    chi2_homogeneity,
    chi2_sf,
    ks_pvalue,
    psi_pvalue,
)

__all__ = ["window_tests", "score"]


def window_tests(
    sketches: dict[str, Sketch],
    class_counts: np.ndarray | None,
    columns: dict[str, np.ndarray],
    classes: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """``{test name: {"value": statistic, "p": p-value}}`` for one window.

    ``columns`` holds the window's per-sample summaries under the sketches' names;
    ``classes`` the predicted classes (classifier profiles).
    """
    out: dict[str, dict[str, float]] = {}
    for name, sk in sketches.items():
        w = columns[name]
        m = len(w)
        d, v = sk.compare(w)
        out[f"ks_{name}"] = {"value": d, "p": ks_pvalue(d, sk.n, m)}
        out[f"psi_{name}"] = {"value": v, "p": psi_pvalue(v, len(sk.fractions), sk.n, m)}
    if class_counts is not None and classes is not None:
        counts = np.bincount(classes, minlength=len(class_counts))[: len(class_counts)]
        stat, df = chi2_homogeneity(counts, class_counts)
        out["chi2_class"] = {"value": stat, "p": chi2_sf(stat, df)}
    return out


def score(tests: dict[str, dict[str, float]]) -> tuple[float, str]:
    """``(-log10 of the smallest p-value, the test that gave it)``."""
    name = min(tests, key=lambda k: tests[k]["p"])
    return -math.log10(max(tests[name]["p"], 1e-300)), name

"""Alarm thresholds for a false-alarm rate, from bootstrap streams of the reference data.

A drift check runs every ``step`` samples on the last ``window`` samples, and each check
runs several tests, so per-test p-values overstate the evidence. Two thresholds on the
check's score (``-log10`` of its smallest p-value) are computed:

- **Bonferroni**: ``fa_rate / (tests x checks per horizon)``, valid whatever the
  dependence between overlapping windows, and conservative;
- **bootstrap**: simulated clean streams of ``horizon`` samples drawn from the reference
  data; each stream is checked against a profile rebuilt from an independent resample of
  the same data (so the reference's own sampling noise is in the null, as on the device),
  and the threshold is the ``1 - fa_rate/2`` quantile of the streams' largest score.

The smaller of the two is used: both bound the chance that a clean ``horizon``-sample
stream raises any drift alarm by about ``fa_rate``. The Page-Hinkley threshold on
correctness is found the same way, on simulated Bernoulli streams at the reference error.

:func:`stream_scores` computes every check of a stream at once from per-block counts (the
device computes them one window at a time with :func:`edgeshrink.monitor.drift.window_tests`;
a test holds the two equal).
"""

from __future__ import annotations

import math

import numpy as np

from edgeshrink.monitor.stats import Sketch, chi2_sf, ks_pvalue, psi_pvalue

__all__ = ["drift_thresholds", "page_hinkley_lambda", "stream_scores"]


def _window_counts(bins: np.ndarray, n_bins: int, window: int, step: int) -> np.ndarray:
    """Counts per bin of every window ``[end - window, end)``, ``end = window, +step, ...``."""
    blocks = len(bins) // step
    flat = (np.arange(blocks * step) // step) * n_bins + bins[: blocks * step]
    per_block = np.bincount(flat, minlength=blocks * n_bins).reshape(blocks, n_bins)
    cum = np.vstack([np.zeros((1, n_bins), np.int64), np.cumsum(per_block, axis=0)])
    k = window // step
    return cum[k:] - cum[:-k]


def _sketch_tests(values: np.ndarray, sk: Sketch, window: int, step: int, idx=None):
    """KS D and PSI of every window of ``values[idx]`` against ``sk`` (arrays over checks).

    Bins are looked up on ``values`` and then indexed: a bootstrap stream repeats values."""
    uniq, right, left = sk._cdf
    u = len(uniq)
    pick = (lambda b: b) if idx is None else (lambda b: b[idx])  # noqa: E731
    le = np.cumsum(_window_counts(pick(np.searchsorted(uniq, values, "left")), u + 1, window,
                                  step), axis=1)[:, :u] / window  # #(w <= u_j) / m
    lt = np.cumsum(_window_counts(pick(np.searchsorted(uniq, values, "right")), u + 1, window,
                                  step), axis=1)[:, :u] / window  # #(w < u_j) / m
    d = np.maximum(np.abs(le - right).max(axis=1), np.abs(lt - left).max(axis=1))
    counts = _window_counts(pick(np.searchsorted(sk.edges, values, "right")),
                            len(sk.edges) + 1, window, step).astype(np.float64)
    nb = counts.shape[1]
    a = (counts + 0.5) / (window + 0.5 * nb)
    e = (sk.fractions * sk.n + 0.5) / (sk.n + 0.5 * nb)
    return d, np.sum((a - e) * np.log(a / e), axis=1)


def stream_scores(
    sketches: dict[str, Sketch],
    class_counts: np.ndarray | None,
    columns: dict[str, np.ndarray],
    classes: np.ndarray | None,
    *,
    window: int,
    step: int,
    idx: np.ndarray | None = None,
) -> np.ndarray:
    """The score (``-log10`` smallest p-value) of every check along one stream.

    The stream is ``columns[k][idx]`` (all of ``columns`` when ``idx`` is None)."""
    logp = []
    if idx is not None and classes is not None:
        classes = classes[idx]
    for name, sk in sketches.items():
        d, v = _sketch_tests(np.asarray(columns[name], np.float64), sk, window, step, idx)
        logp.append(np.log10(np.maximum(ks_pvalue(d, sk.n, window), 1e-300)))
        logp.append(np.log10(np.maximum(psi_pvalue(v, len(sk.fractions), sk.n, window), 1e-300)))
    if class_counts is not None and classes is not None:
        o = _window_counts(classes, len(class_counts), window, step).astype(np.float64)
        r = np.asarray(class_counts, np.float64)[None, :]
        used = (o + r) > 0
        k1, k2 = math.sqrt(r.sum() / window), math.sqrt(window / r.sum())
        stat = np.sum(np.where(used, (k1 * o - k2 * r) ** 2 / np.maximum(o + r, 1e-12), 0), axis=1)
        df = np.maximum(used.sum(axis=1) - 1, 1)
        logp.append(np.log10(np.maximum(chi2_sf(stat, df), 1e-300)))
    return -np.min(np.vstack(logp), axis=0)


def _checks(horizon: int, window: int, step: int) -> int:
    return max(1, (horizon - window) // step + 1)


def drift_thresholds(
    columns: dict[str, np.ndarray],
    classes: np.ndarray | None,
    n_classes: int | None,
    *,
    window: int,
    step: int,
    horizon: int,
    fa_rate: float,
    streams: int = 400,
    seed: int = 0,
) -> dict[str, float]:
    """``{"bonferroni", "bootstrap", "threshold"}`` on the score for this reference data."""
    n = len(next(iter(columns.values())))
    tests = 2 * len(columns) + (1 if classes is not None else 0)
    bonf = -math.log10(fa_rate / (tests * _checks(horizon, window, step)))
    rng = np.random.default_rng(seed)
    maxima = np.empty(streams)
    for s in range(streams):
        ref = rng.integers(0, n, n)
        sketches = {k: Sketch.of(v[ref]) for k, v in columns.items()}
        counts = np.bincount(classes[ref], minlength=n_classes) if classes is not None else None
        idx = rng.integers(0, n, horizon)
        maxima[s] = stream_scores(sketches, counts, columns, classes, window=window,
                                  step=step, idx=idx).max()
    boot = float(np.quantile(maxima, 1.0 - fa_rate / 2.0))
    return {"bonferroni": round(bonf, 4), "bootstrap": round(boot, 4),
            "threshold": round(min(bonf, boot), 4)}


def page_hinkley_lambda(
    error_rate: float,
    *,
    delta: float,
    horizon: int,
    fa_rate: float,
    streams: int = 400,
    seed: int = 0,
) -> float:
    """The Page-Hinkley threshold that a Bernoulli(``error_rate``) stream of ``horizon``
    samples crosses with probability about ``fa_rate / 2``."""
    rng = np.random.default_rng(seed)
    p = min(max(error_rate, 1e-3), 0.999)
    x = (rng.random((streams, horizon)) < p).astype(np.float64)
    n = np.arange(1, horizon + 1)
    cum = np.cumsum(x - np.cumsum(x, axis=1) / n - delta, axis=1)
    peaks = np.max(cum - np.minimum(np.minimum.accumulate(cum, axis=1), 0.0), axis=1)
    return round(float(np.quantile(peaks, 1.0 - fa_rate / 2.0)) + 1e-6, 4)

"""Uncertainty of a metric measured on a finite evaluation set, paired across candidates.

Every candidate is scored on the same evaluation samples, so the per-sample results are
persisted at measurement time (``RUN/samples/NAME.npz``, a few kB: correctness as a bit
set, other scores as float32) and compared *paired*:

* the metric's 95 % interval: exact Clopper-Pearson for an accuracy (each sample right or
  wrong), a percentile bootstrap of the mean otherwise;
* the drop against the baseline (or between two candidates), paired on the same samples:
  for accuracies Newcombe's hybrid score interval for paired proportions (Newcombe 1998,
  method 10: it stays honest when no sample changed, where a bootstrap collapses to
  [0, 0]) and the exact McNemar test (McNemar 1947; the binomial test on the discordant
  samples) whose p-value says whether the two are distinguishable at all; otherwise the
  paired bootstrap of the per-sample difference (Efron & Tibshirani 1993, ch. 13).

A metric is decomposed into per-sample scores by scoring each sample alone; a metric that
is not the mean of those (ROC AUC, a probe over a subset) gets no interval rather than a
wrong one.

Example:
    >>> base = np.array([1, 1, 0, 1] * 250, bool) * 100.0
    >>> cand = base.copy(); cand[:6] = 0.0
    >>> drop_interval(base, cand)["test"]
    'exact McNemar'
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["per_sample_scores", "save_scores", "load_scores", "metric_interval",
           "drop_interval", "compare", "record_intervals", "ALPHA", "samples_path"]

ALPHA = 0.05  # 95 % intervals; two candidates are distinguishable when p < ALPHA
BOOT = 4000  # bootstrap replicates
MAX_SAMPLES = 200_000  # above this the per-sample loop is not worth it: no interval


def per_sample_scores(metric, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
    """Each sample's score alone (``metric.fn`` on one row), or None where the metric is
    not the mean of these (then an interval over samples would not describe it)."""
    n = len(outputs)
    if n < 2 or n > MAX_SAMPLES or len(targets) != n:
        return None
    try:
        scores = np.array([float(metric.fn(outputs[i:i + 1], targets[i:i + 1]))
                           for i in range(n)], np.float64)
        whole = float(metric.fn(outputs, targets))
    except Exception:  # a metric that needs several samples at once
        return None
    if not np.all(np.isfinite(scores)) or not math.isclose(scores.mean(), whole,
                                                           rel_tol=1e-5, abs_tol=1e-6):
        return None
    return scores


def _binary_scale(scores: np.ndarray) -> float | None:
    """The value of a right answer when every score is 0 or that value (100 for %)."""
    values = np.unique(scores)
    if len(values) <= 2 and values.min() == 0 and values.max() > 0:
        return float(values.max())
    if len(values) == 1 and values[0] > 0:
        return float(values[0])
    return None


def samples_path(run_dir: Path | str, name: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-+._" else "_" for ch in name)
    return Path(run_dir) / "samples" / f"{safe}.npz"


def save_scores(path: Path, scores: np.ndarray) -> None:
    """Write per-sample scores compactly and atomically (a bit set when right/wrong)."""
    import io

    from edgeshrink.results import atomic_write_bytes

    buf = io.BytesIO()
    scale = _binary_scale(scores)
    if scale is not None:
        np.savez_compressed(buf, bits=np.packbits(scores > 0), n=len(scores), scale=scale)
    else:
        np.savez_compressed(buf, scores=scores.astype(np.float64))
    atomic_write_bytes(path, buf.getvalue())


def load_scores(path: Path | str) -> np.ndarray | None:
    """Per-sample scores written by :func:`save_scores`, or None if missing/unreadable."""
    try:
        with np.load(path) as z:
            if "bits" in z:
                n = int(z["n"])
                return np.unpackbits(z["bits"])[:n].astype(np.float64) * float(z["scale"])
            return z["scores"].astype(np.float64)
    except (OSError, ValueError, KeyError):
        return None


def metric_interval(scores: np.ndarray) -> dict[str, Any]:
    """95 % interval of the mean score: exact (Clopper-Pearson) for right/wrong samples."""
    n, scale = len(scores), _binary_scale(scores)
    if scale is not None:
        from scipy.stats import beta

        k = int(np.count_nonzero(scores))
        lo = 0.0 if k == 0 else float(beta.ppf(ALPHA / 2, k, n - k + 1))
        hi = 1.0 if k == n else float(beta.ppf(1 - ALPHA / 2, k + 1, n - k))
        return {"ci95": [lo * scale, hi * scale], "interval": "exact Clopper-Pearson", "n": n}
    boot = _bootstrap_means(scores)
    return {"ci95": _percentiles(boot), "interval": "bootstrap", "n": n}


def _bootstrap_means(d: np.ndarray, seed: int = 0) -> np.ndarray:
    """Means of ``BOOT`` resamples of ``d``; few distinct values: multinomial counts (exact
    same distribution, far cheaper than resampling indices)."""
    rng = np.random.default_rng(seed)
    values, counts = np.unique(d, return_counts=True)
    n = len(d)
    if len(values) <= 64:
        return rng.multinomial(n, counts / n, size=BOOT) @ values / n
    out = np.empty(BOOT)
    for start in range(0, BOOT, 100):  # chunks keep memory at 100 x n indices
        idx = rng.integers(0, n, size=(min(100, BOOT - start), n))
        out[start:start + len(idx)] = d[idx].mean(1)
    return out


def _percentiles(boot: np.ndarray) -> list[float]:
    lo, hi = np.percentile(boot, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return [float(lo), float(hi)]


def _mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value: binomial(b + c, 1/2) on the discordant pairs."""
    from scipy.stats import binomtest

    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def _newcombe_paired(base: np.ndarray, cand: np.ndarray, scale: float) -> list[float]:
    """95 % interval of ``mean(base) - mean(cand)`` for paired right/wrong samples
    (Newcombe 1998, method 10: Wilson marginals with the pairs' correlation)."""
    from scipy.stats import norm

    z, n = float(norm.ppf(1 - ALPHA / 2)), len(base)
    r1, r2 = base > 0, cand > 0
    a, b = int(np.sum(r1 & r2)), int(np.sum(r1 & ~r2))
    c, d = int(np.sum(~r1 & r2)), int(np.sum(~r1 & ~r2))
    p1, p2 = (a + b) / n, (a + c) / n
    (l1, u1), (l2, u2) = _wilson(a + b, n, z), _wilson(a + c, n, z)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    ad_bc = a * d - b * c  # Newcombe's correction of the correlation: 0 for |ad - bc| <= n/2
    corrected = ad_bc - n / 2 if ad_bc > n / 2 else min(ad_bc, 0)
    phi = corrected / math.sqrt(den) if den > 0 else 0.0
    lo = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    theta = p1 - p2
    return [(theta - lo) * scale, (theta + hi) * scale]


def drop_interval(base: np.ndarray, cand: np.ndarray, *,
                  higher_is_better: bool = True) -> dict[str, Any]:
    """Paired 95 % interval of the drop ``base - cand`` (positive = worse) and its test.

    Returns ``{"drop_ci95": [lo, hi], "drop_p": p, "test": name}``.
    """
    d = (base - cand) if higher_is_better else (cand - base)
    scale = _binary_scale(np.concatenate([base, cand]))
    if scale is not None:
        b = int(np.count_nonzero((base > 0) & (cand == 0)))
        c = int(np.count_nonzero((base == 0) & (cand > 0)))
        lo, hi = (_newcombe_paired(base, cand, scale) if higher_is_better
                  else [-x for x in _newcombe_paired(base, cand, scale)[::-1]])
        return {"drop_ci95": [lo, hi], "drop_p": _mcnemar_p(b, c), "test": "exact McNemar"}
    boot = _bootstrap_means(d)
    below, above = float(np.mean(boot <= 0)), float(np.mean(boot >= 0))
    p = min(1.0, 2 * min(below, above)) if d.any() else 1.0
    return {"drop_ci95": _percentiles(boot), "drop_p": p, "test": "paired bootstrap"}


def compare(a: np.ndarray, b: np.ndarray, *, higher_is_better: bool = True) -> float:
    """p-value that ``a`` and ``b`` (same samples) differ: small = distinguishable."""
    return float(drop_interval(a, b, higher_is_better=higher_is_better)["drop_p"])


def record_intervals(run_dir: Path, name: str, scores: np.ndarray | None, *,
                     baseline: str | None, higher_is_better: bool = True) -> dict[str, Any]:
    """Persist ``scores`` for ``name`` and return the interval fields of its metric record:
    ``n``, ``ci95``, ``interval``, ``samples``, and against the baseline's stored scores
    ``drop_ci95``, ``drop_p``, ``drop_test`` (``[0, 0]`` for the baseline itself)."""
    if scores is None:
        return {}
    path = samples_path(run_dir, name)
    save_scores(path, scores)
    out = {**metric_interval(scores), "samples": str(path.relative_to(run_dir))}
    if baseline is None:
        return {**out, "drop_ci95": [0.0, 0.0], "drop_p": 1.0, "drop_test": "baseline"}
    base = load_scores(samples_path(run_dir, baseline))
    if base is not None and len(base) == len(scores):
        got = drop_interval(base, scores, higher_is_better=higher_is_better)
        out.update(drop_ci95=got["drop_ci95"], drop_p=got["drop_p"], drop_test=got["test"])
    return out

"""The statistics of the monitor, in plain numpy: they must run on the device.

Per-sample summaries of a model's outputs (top-class confidence, entropy, predicted class;
norm and cosine for embeddings), two-sample tests against a stored reference (KS, PSI,
chi-square) with their p-values, the Wilson interval, and the Page-Hinkley change detector.
p-values use the textbook asymptotics: Kolmogorov's series with Stephens' small-sample
correction (Numerical Recipes 14.3) and Wilson-Hilferty for chi-square; the profile's
bootstrap calibration (:mod:`edgeshrink.monitor.calibrate`) corrects what they get wrong.

Example:
    >>> import numpy as np
    >>> conf, ent, cls = classifier_stats(np.array([[2.0, 0.0, -1.0]]))
    >>> int(cls[0]), round(float(ent[0]), 3)
    (0, 0.524)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "classifier_stats",
    "embedding_stats",
    "Sketch",
    "ks_statistic",
    "ks_pvalue",
    "psi",
    "psi_pvalue",
    "chi2_homogeneity",
    "chi2_sf",
    "wilson_interval",
    "PageHinkley",
]


def is_probabilities(outputs: np.ndarray) -> bool:
    """Whether rows are probabilities already (non-negative, summing to 1), not logits."""
    x = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    return bool(x.min(initial=0.0) >= 0.0 and np.allclose(x.sum(axis=1), 1.0, atol=1e-3))


def classifier_stats(
    outputs: np.ndarray, probabilities: bool | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(confidence_nats, entropy, predicted_class)`` per row of logits or probabilities.

    Confidence is reported as ``-log(1 - p_top)`` in nats, computed without cancellation:
    a confident model's ``p_top`` rounds to 1.0 in float32 for most samples, where this
    still separates them. It is monotone in ``p_top``, so KS on it is KS on confidence.
    ``probabilities`` says what the rows are (None: look, see :func:`is_probabilities`).
    """
    x = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if probabilities is None:
        probabilities = is_probabilities(x)
    if probabilities:  # log p are logits of the same softmax
        x = np.log(np.maximum(x, 1e-300))
    rows = np.arange(len(x))
    top = x.argmax(axis=1)
    z = x - x[rows, top][:, None]  # <= 0, and 0 at the top class
    e = np.exp(z)
    e[rows, top] = 0.0
    rest = e.sum(axis=1)  # (1 - p_top) / p_top
    lse = np.log1p(rest)  # -log(p_top)
    conf = lse - np.log(np.maximum(rest, 1e-300))
    entropy = lse - (e * z).sum(axis=1) / (1.0 + rest)
    return conf.astype(np.float32), entropy.astype(np.float32), top.astype(np.int16)


def embedding_stats(outputs: np.ndarray, centroid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(norm, cosine to centroid)`` per embedding row; ``centroid`` is unit length."""
    x = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    norm = np.linalg.norm(x, axis=1)
    cos = (x @ centroid) / np.maximum(norm, 1e-12)
    return norm.astype(np.float32), cos.astype(np.float32)


@dataclass(frozen=True)
class Sketch:
    """A reference distribution kept small: quantiles for KS, decile bins for PSI.

    ``quantiles[j]`` is the reference's ``j/(len-1)`` quantile; ``edges`` are the inner PSI
    bin edges (reference deciles, duplicates removed) and ``fractions`` the reference's share
    of each bin; ``n`` is the reference sample size (it enters the two-sample p-values).
    """

    quantiles: np.ndarray
    edges: np.ndarray
    fractions: np.ndarray
    n: int

    @classmethod
    def of(cls, values: np.ndarray, *, points: int = 201, bins: int = 10) -> Sketch:
        v = np.sort(np.asarray(values, dtype=np.float64))
        q = np.quantile(v, np.linspace(0.0, 1.0, points))
        edges = np.unique(np.quantile(v, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)
        return cls(q, edges, counts / len(v), len(v))

    def to_dict(self) -> dict:
        return {"quantiles": [float(f"{x:.6g}") for x in self.quantiles],
                "edges": [float(f"{x:.6g}") for x in self.edges],
                "fractions": [round(float(x), 6) for x in self.fractions], "n": self.n}

    @classmethod
    def from_dict(cls, d: dict) -> Sketch:
        return cls(np.asarray(d["quantiles"], np.float64), np.asarray(d["edges"], np.float64),
                   np.asarray(d["fractions"], np.float64), int(d["n"]))

    def __post_init__(self) -> None:
        # The CDF at the distinct quantile points, right- and left-continuous (ties
        # collapsed): computed once, since every check compares against it.
        q = self.quantiles
        p = np.linspace(0.0, 1.0, len(q))
        uniq, first = np.unique(q, return_index=True)
        last = len(q) - 1 - np.unique(q[::-1], return_index=True)[1]
        object.__setattr__(self, "_cdf", (uniq, p[last], np.where(first == 0, 0.0, p[first])))
        bins = len(self.edges) + 1
        e = (self.fractions * self.n + 0.5) / (self.n + 0.5 * bins)
        object.__setattr__(self, "_psi_ref", (e, np.log(e)))

    def compare(self, window: np.ndarray, *, eps: float = 0.5) -> tuple[float, float]:
        """``(KS D, PSI)`` of ``window`` against this reference, from one sort.

        D is evaluated at the reference quantiles, so it is within ``1/(len(quantiles)-1)``
        of the exact two-sample statistic. PSI is ``sum((a - e) * ln(a / e))`` over the
        decile bins with ``eps`` added to every count (an empty bin costs a finite amount);
        0.1 / 0.25 are the customary "watch" / "act" levels.
        """
        w = np.sort(window)
        m = len(w)
        uniq, right, left = self._cdf
        d = max(np.abs(np.searchsorted(w, uniq, "right") / m - right).max(),
                np.abs(np.searchsorted(w, uniq, "left") / m - left).max())
        bounds = np.empty(len(self.edges) + 2)
        bounds[0], bounds[-1] = 0.0, m
        bounds[1:-1] = np.searchsorted(w, self.edges, "right")
        a = (bounds[1:] - bounds[:-1] + eps) / (m + eps * (len(bounds) - 1))
        e, log_e = self._psi_ref if eps == 0.5 else (None, None)
        if e is None:
            e = (self.fractions * self.n + eps) / (self.n + eps * (len(bounds) - 1))
            log_e = np.log(e)
        return float(d), float(np.dot(a - e, np.log(a) - log_e))


def ks_statistic(window: np.ndarray, reference: Sketch | np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov D of ``window`` against ``reference``.

    With a raw array as reference this is exactly ``scipy.stats.ks_2samp(...).statistic``;
    with a :class:`Sketch` see :meth:`Sketch.compare`.
    """
    if isinstance(reference, Sketch):
        return reference.compare(np.asarray(window, dtype=np.float64))[0]
    w = np.sort(np.asarray(window, dtype=np.float64))
    r = np.sort(np.asarray(reference, dtype=np.float64))
    z = np.concatenate([w, r])
    fr = np.searchsorted(r, z, side="right") / len(r)
    fw = np.searchsorted(w, z, side="right") / len(w)
    return float(np.abs(fw - fr).max())


def ks_pvalue(d, n: int, m: int):
    """Asymptotic two-sided p-value of a two-sample KS ``d`` (scalar or array) for sample
    sizes ``n`` and ``m``: Kolmogorov's series at Stephens' corrected argument."""
    en = math.sqrt(n * m / (n + m))
    if np.ndim(d) == 0:  # one check on the device: the series converges in a few terms
        lam = (en + 0.12 + 0.11 / en) * float(d)
        if lam < 0.2:
            return 1.0
        total, sign = 0.0, 1.0
        for k in range(1, 101):
            term = math.exp(-2.0 * k * k * lam * lam)
            total += sign * term
            if term <= 1e-12 * abs(total):
                break
            sign = -sign
        return min(1.0, max(0.0, 2.0 * total))
    lam = (en + 0.12 + 0.11 / en) * np.asarray(d, dtype=np.float64)
    k = np.arange(1, 101, dtype=np.float64)
    terms = (-1.0) ** (k - 1) * np.exp(-2.0 * np.multiply.outer(lam * lam, k * k))
    p = np.clip(2.0 * terms.sum(axis=-1), 0.0, 1.0)
    p = np.where(lam < 0.2, 1.0, p)
    return float(p) if p.ndim == 0 else p


def psi(window: np.ndarray, reference: Sketch) -> float:
    """Population stability index of ``window`` over the reference's decile bins."""
    return reference.compare(np.asarray(window, dtype=np.float64))[1]


def psi_pvalue(value: float, bins: int, n: int, m: int) -> float:
    """PSI is a symmetrised KL divergence: under no shift ``value / (1/n + 1/m)`` is about
    chi-square with ``bins - 1`` degrees of freedom."""
    return chi2_sf(value / (1.0 / n + 1.0 / m), max(bins - 1, 1))


def chi2_homogeneity(window_counts: np.ndarray, ref_counts: np.ndarray) -> tuple[float, int]:
    """Two-sample chi-square of two histograms of unequal totals (Numerical Recipes'
    ``chstwo``): ``(statistic, degrees of freedom)``."""
    o = np.asarray(window_counts, dtype=np.float64)
    r = np.asarray(ref_counts, dtype=np.float64)
    used = (o + r) > 0
    o, r = o[used], r[used]
    k1, k2 = math.sqrt(r.sum() / o.sum()), math.sqrt(o.sum() / r.sum())
    stat = float(np.sum((k1 * o - k2 * r) ** 2 / (o + r)))
    return stat, max(int(used.sum()) - 1, 1)


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def chi2_sf(x, df):
    """Survival function of chi-square (scalar or array), Wilson-Hilferty approximation."""
    if np.ndim(x) == 0 and np.ndim(df) == 0:
        x, df = float(x), float(df)
        if x <= 0:
            return 1.0
        t = 2.0 / (9.0 * df)
        return 0.5 * math.erfc(((x / df) ** (1 / 3) - (1.0 - t)) / math.sqrt(t) / math.sqrt(2.0))
    x = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
    df = np.asarray(df, dtype=np.float64)
    t = 2.0 / (9.0 * df)
    z = ((x / df) ** (1.0 / 3.0) - (1.0 - t)) / np.sqrt(t)
    p = np.where(x <= 0, 1.0, 0.5 * np.asarray(_ERFC(z / math.sqrt(2.0)), np.float64))
    return float(p) if p.ndim == 0 else p


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (Wilson 1927); ``(0, 1)`` with no data."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    den = 1.0 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


@dataclass
class PageHinkley:
    """Page-Hinkley test for an increase of a stream's mean (Page 1954; Hinkley 1971).

    ``m_t = sum_i (x_i - mean_i - delta)``; a change is declared when ``m_t - min m > lam``.
    Fed the error indicator (1 = wrong), it detects an accuracy drop of more than about
    ``delta``. Four numbers of state; :meth:`update` takes a whole batch.
    """

    delta: float = 0.025
    lam: float = 50.0
    n: int = 0
    mean: float = 0.0
    cum: float = 0.0
    min_cum: float = 0.0

    def update(self, x: np.ndarray) -> bool:
        """Add the values ``x``; whether the change threshold was crossed within them."""
        x = np.asarray(x, dtype=np.float64).ravel()
        if not len(x):
            return False
        n = self.n + np.arange(1, len(x) + 1)
        means = (self.mean * self.n + np.cumsum(x)) / n
        cum = self.cum + np.cumsum(x - means - self.delta)
        mins = np.minimum(np.minimum.accumulate(cum), self.min_cum)
        self.n, self.mean = int(n[-1]), float(means[-1])
        self.cum, self.min_cum = float(cum[-1]), float(mins[-1])
        return bool(np.any(cum - mins > self.lam))

    def reset(self) -> None:
        self.n, self.mean, self.cum, self.min_cum = 0, 0.0, 0.0, 0.0

    @property
    def value(self) -> float:
        return self.cum - self.min_cum

"""Activation-range calibrators on collected statistics: min-max, mean min-max, percentile,
entropy, MSE.

We compute the ranges ourselves (numpy) and hand them to ONNX Runtime's QDQ quantizer,
because ORT 1.31's own Entropy method, called through its public options, builds 128 bins
with 128 quantized levels: one candidate threshold, a file identical to MinMax
(shared/FIELD-NOTES.md).

Statistics are one histogram per tensor. For a non-negative tensor it spans ``[0, max]``
with ``bins`` bins; for a signed one it spans ``[-m, m]`` (``m = max|x|``) with ``2 * bins``
bins, so that folding it gives an exact ``bins``-bin histogram of ``|x|`` (what the
TensorRT entropy method works on).

Example:
    >>> stats = TensorStats.from_array(np.random.default_rng(0).standard_normal(10_000))
    >>> lo, hi = calibrate_range(stats, "percentile", percentile=99.9)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeshrink.config import check_choice

__all__ = [
    "TensorStats",
    "CALIBRATORS",
    "minmax_range",
    "mean_minmax_range",
    "percentile_range",
    "entropy_range",
    "mse_range",
    "calibrate_range",
    "collect_stats",
    "quant_mse",
    "expected_mse",
]

CALIBRATORS = ("minmax", "mean_minmax", "percentile", "entropy", "mse")
DEFAULT_BINS = 2048


@dataclass
class TensorStats:
    """Min, max and a histogram of one tensor over the calibration set.

    Attributes:
        lo, hi: the observed minimum and maximum.
        counts: histogram counts over ``[edge0, edge1]`` (see the module docstring).
        edge0, edge1: the histogram's span.
        samples, sample_lo_sum, sample_hi_sum: how many samples were seen and the sums of
            their own minima and maxima (for the mean min-max calibrator).
    """

    lo: float
    hi: float
    counts: np.ndarray
    edge0: float
    edge1: float
    zeros: int = 0
    at_lo: int = 0
    samples: int = 0
    sample_lo_sum: float = 0.0
    sample_hi_sum: float = 0.0

    @property
    def signed(self) -> bool:
        return self.lo < 0

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.edge0, self.edge1, len(self.counts) + 1)

    @property
    def centers(self) -> np.ndarray:
        e = self.edges
        return (e[:-1] + e[1:]) / 2

    def abs_counts(self) -> np.ndarray:
        """Histogram of ``|x|`` over ``[0, max|x|]`` (exact: the signed span is symmetric)."""
        if not self.signed:
            return self.counts
        half = len(self.counts) // 2
        return self.counts[half:] + self.counts[:half][::-1]

    @classmethod
    def empty(cls, lo: float, hi: float, bins: int = DEFAULT_BINS) -> TensorStats:
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        if lo < 0:
            m = max(-lo, hi) or 1.0
            return cls(lo, hi, np.zeros(2 * bins, np.int64), -m, m)
        return cls(lo, hi, np.zeros(bins, np.int64), 0.0, hi or 1.0)

    def add(self, x: np.ndarray) -> None:
        """Add the values of ``x`` to the histogram (``x`` within ``[lo, hi]``)."""
        n = len(self.counts)
        x = np.asarray(x, np.float64).ravel()
        idx = np.floor((x - self.edge0) * (n / (self.edge1 - self.edge0))).astype(np.int64)
        self.counts += np.bincount(np.clip(idx, 0, n - 1), minlength=n)
        self.zeros += int(np.count_nonzero(x == 0))
        self.at_lo += int(np.count_nonzero(x == self.lo)) if self.lo < 0 else 0

    def add_samples(self, x: np.ndarray) -> None:
        """Count the per-sample extremes of ``x`` (axis 0 is the sample axis)."""
        flat = np.asarray(x).reshape(len(x), -1) if np.ndim(x) > 1 else np.reshape(x, (1, -1))
        self.samples += flat.shape[0]
        self.sample_lo_sum += float(flat.min(axis=1).astype(np.float64).sum())
        self.sample_hi_sum += float(flat.max(axis=1).astype(np.float64).sum())

    @classmethod
    def from_array(cls, x: np.ndarray, bins: int = DEFAULT_BINS) -> TensorStats:
        """Stats of ``x`` whose axis 0 holds the samples."""
        x = np.asarray(x)
        stats = cls.empty(float(x.min()), float(x.max()), bins)
        stats.lo, stats.hi = float(x.min()), float(x.max())
        stats.add(x)
        stats.add_samples(x)
        return stats


# ---------------------------------------------------------------------------- calibrators


def minmax_range(stats: TensorStats) -> tuple[float, float]:
    """The observed extremes (always containing 0, as an affine int8 grid needs)."""
    return min(stats.lo, 0.0), max(stats.hi, 0.0)


def mean_minmax_range(stats: TensorStats) -> tuple[float, float]:
    """The mean over calibration samples of each sample's own minimum and maximum.

    NNCF's default for per-tensor activations (``RangeEstimatorParametersSet.MEAN_MINMAX``):
    a rare sample with an extreme value moves the range by 1/N of its excess instead of
    setting it, which spends the 256 levels on what typical inputs produce.
    """
    if stats.samples == 0:
        return minmax_range(stats)
    lo = stats.sample_lo_sum / stats.samples
    hi = stats.sample_hi_sum / stats.samples
    return min(lo, 0.0), max(hi, 0.0)


def _quantile(stats: TensorStats, q: float) -> float:
    """Value below which a fraction ``q`` of the samples lie (linear inside a bin)."""
    cdf = np.cumsum(stats.counts) / max(int(stats.counts.sum()), 1)
    i = int(np.searchsorted(cdf, q))
    i = min(i, len(cdf) - 1)
    below = cdf[i - 1] if i > 0 else 0.0
    frac = (q - below) / max(cdf[i] - below, 1e-12)
    e = stats.edges
    return float(e[i] + frac * (e[i + 1] - e[i]))


def percentile_range(stats: TensorStats, percentile: float = 99.99) -> tuple[float, float]:
    """Clip both tails at ``percentile`` (the low tail only where the tensor goes negative)."""
    hi = min(_quantile(stats, percentile / 100.0), stats.hi)
    lo = max(_quantile(stats, 1.0 - percentile / 100.0), stats.lo) if stats.signed else stats.lo
    return min(lo, 0.0), max(hi, 0.0)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _kl_for_threshold(hist: np.ndarray, i: int, levels: int) -> float:
    """KL(P || Q) where P is the histogram clipped at bin ``i`` (outliers into the last
    bin) and Q is P merged into ``levels`` bins and expanded back over P's non-empty bins.
    TensorRT's INT8 calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017)."""
    p = hist[:i].astype(np.float64)
    p[-1] += hist[i:].sum()
    nonzero = p > 0
    group = np.minimum(np.arange(i) * levels // i, levels - 1)
    sums = np.bincount(group, weights=hist[:i].astype(np.float64), minlength=levels)
    used = np.bincount(group, weights=nonzero.astype(np.float64), minlength=levels)
    q = np.where(nonzero, sums[group] / np.maximum(used[group], 1.0), 0.0)
    if p.sum() == 0 or q.sum() == 0:
        return np.inf
    p /= p.sum()
    q /= q.sum()
    q = np.where(nonzero & (q == 0), 1e-12, q)
    return _kl(p, q)


def _best_kl_bin(hist: np.ndarray, levels: int, first: int = 0) -> int:
    """Bin index (exclusive end, at least ``first``) whose clipping minimizes KL, over at
    most ~512 candidates."""
    n = len(hist)
    first = min(max(levels, first), n)
    step = max(1, (n - first) // 512)
    candidates = list(range(first, n + 1, step))
    if candidates[-1] != n:
        candidates.append(n)
    divs = [_kl_for_threshold(hist, i, levels) for i in candidates]
    return candidates[int(np.argmin(divs))]


SPIKE_WINDOW = 16  # bins each side whose median is a bin's local background
SPIKE_FACTOR = 8.0  # a bin this many times its background (plus 8 counts) is a spike
SPIKE_MIN_MASS = 1e-3  # ... and holding at least this fraction of the histogram


def _spikes(hist: np.ndarray) -> np.ndarray:
    """Indices of bins that stand far above their neighbourhood's median.

    A spike is one value repeated many times: a constant image background through a conv,
    BatchNorm and ReLU gives one per channel (ResNet-20/MNIST's stem: 49 % of the non-zero
    values in six spikes). It is quantized with one rounding error whatever the threshold,
    so it says nothing about the shape KL should match.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    w = SPIKE_WINDOW
    padded = np.pad(hist.astype(np.float64), w, mode="edge")
    background = np.median(sliding_window_view(padded, 2 * w + 1), axis=1)
    big = hist > SPIKE_FACTOR * background + 8
    return np.flatnonzero(big & (hist > SPIKE_MIN_MASS * max(hist.sum(), 1.0)))


def _without_spikes(
    stats: TensorStats, hist: np.ndarray, zero_bin: int, lo_bin: int | None = None
) -> tuple[np.ndarray, int]:
    """The histogram KL should match, and the first bin past its last spike.

    Exact zeros (ReLU outputs, padding) and, on an affine grid, values at the minimum
    (an image's background) sit on the grid and lose nothing; left in, their spike makes
    KL favour absurdly tight thresholds. Other spikes (:func:`_spikes`) are flattened to
    their background for the same reason, but the range must still reach past them:
    a threshold just above the spikes clipped the values that carry ResNet-20's digits
    (97.6 % -> 29.6 % accuracy).
    """
    hist = hist.astype(np.float64).copy()
    hist[zero_bin] = max(hist[zero_bin] - stats.zeros, 0.0)
    if lo_bin is not None:
        hist[lo_bin] = max(hist[lo_bin] - stats.at_lo, 0.0)
    spikes = _spikes(hist)
    if len(spikes) == 0:
        return hist, 0
    w = SPIKE_WINDOW
    padded = np.pad(hist, w, mode="edge")
    for i in spikes:
        around = np.concatenate([padded[i : i + w], padded[i + w + 1 : i + 2 * w + 1]])
        hist[i] = np.median(around)
    return hist, int(spikes.max()) + 1


def entropy_range(
    stats: TensorStats, levels: int = 128, *, symmetric: bool = False
) -> tuple[float, float]:
    """Range whose quantized distribution is closest (KL) to the FP32 one.

    ``symmetric``: TensorRT's method on ``|x|``, threshold ``t`` giving ``[-t, t]``.
    Otherwise (affine grids such as uint8 activations) the low end stays at the minimum
    and the high end is searched the same way over the histogram from the minimum up.
    Spikes (exact zeros, the minimum, a repeated value) do not count in the KL, and the
    range always reaches past the last of them (:func:`_without_spikes`).
    """
    lo, hi = minmax_range(stats)
    width = (stats.edge1 - stats.edge0) / len(stats.counts)
    if symmetric:
        hist, past_spikes = _without_spikes(stats, stats.abs_counts(), 0)
        start, origin = 0, 0.0
    else:
        zero_bin = min(int(-stats.edge0 / width), len(stats.counts) - 1)
        start = int(np.floor((lo - stats.edge0) / width))
        start = min(start, len(stats.counts) - 1)
        hist, past_spikes = _without_spikes(stats, stats.counts[start:], zero_bin - start, 0)
        origin = stats.edge0 + start * width
    if len(hist) <= levels or hist.sum() == 0:
        return lo, hi
    # Affine grid: the range must reach past zero (a threshold below it would clip every
    # positive value: seen on MobileNetV2's signed projection-conv outputs).
    first = 0 if symmetric else int(np.ceil(-origin / width)) + 1
    t = origin + _best_kl_bin(hist, levels, max(first, past_spikes)) * width
    if symmetric:
        return max(lo, -t), min(hi, t)
    return lo, max(min(hi, t), 0.0)


def quant_mse(
    values: np.ndarray, weights: np.ndarray | None, lo: float, hi: float, levels: int = 256
) -> float:
    """Mean squared error of affine-quantizing ``values`` to ``levels`` levels on [lo, hi]."""
    scale = max(hi - lo, 1e-12) / (levels - 1)
    zp = np.round(-lo / scale)
    q = (np.clip(np.round(values / scale) + zp, 0, levels - 1) - zp) * scale
    return float(np.average((values - q) ** 2, weights=weights))


def expected_mse(stats: TensorStats, lo: float, hi: float, levels: int = 256) -> float:
    """Expected squared error of affine quantization on [lo, hi], from the histogram.

    Values outside the range cost their clipping error (bin centre to the range end); values
    inside cost the uniform rounding noise ``step**2 / 12`` (Widrow's model, as in ACIQ,
    Banner et al. 2019), except exact zeros, which an affine grid represents exactly.
    """
    centers, counts = stats.centers, stats.counts.astype(np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    step = max(hi - lo, 1e-12) / (levels - 1)
    clipped = (centers < lo) | (centers > hi)
    clip_err = np.sum(counts[clipped] * (centers[clipped] - np.clip(centers[clipped], lo, hi)) ** 2)
    inside = counts[~clipped].sum() - stats.zeros
    return float((clip_err + max(inside, 0.0) * step**2 / 12) / total)


def mse_range(stats: TensorStats, levels: int = 256, grid: int = 200) -> tuple[float, float]:
    """Shrink [lo, hi] by a common factor in ``grid`` steps and keep the range with the least
    expected quantization error (:func:`expected_mse`)."""
    lo, hi = minmax_range(stats)
    if stats.counts.sum() == 0 or hi - lo <= 0:
        return lo, hi
    factors = np.linspace(1.0 / grid, 1.0, grid)
    errs = [expected_mse(stats, lo * a, hi * a, levels) for a in factors]
    a = float(factors[int(np.argmin(errs))])
    return lo * a, hi * a


def calibrate_range(
    stats: TensorStats,
    method: str,
    *,
    percentile: float = 99.99,
    levels: int = 256,
    entropy_levels: int = 128,
    symmetric: bool = False,
) -> tuple[float, float]:
    """The range ``method`` chooses for one tensor.

    ``levels`` is the integer grid size (MSE), ``entropy_levels`` the quantized bins of the
    KL search (128 as in TensorRT), ``symmetric`` whether the grid is centred on zero.
    """
    check_choice("calibrator", method, CALIBRATORS)
    if method == "minmax":
        return minmax_range(stats)
    if method == "mean_minmax":
        return mean_minmax_range(stats)
    if method == "percentile":
        return percentile_range(stats, percentile)
    if method == "entropy":
        return entropy_range(stats, levels=entropy_levels, symmetric=symmetric)
    return mse_range(stats, levels=levels)


# ---------------------------------------------------------------------------- collection


def _float_tensors(model) -> list[str]:
    """Names of every float activation (graph inputs and node outputs, no initializers)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    inits = {t.name for t in g.initializer}
    infos = list(g.input) + list(g.value_info) + list(g.output)
    floats = {v.name for v in infos if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    produced = [o for n in g.node for o in n.output]
    names = [v.name for v in g.input if v.name in floats and v.name not in inits]
    return names + [o for o in produced if o in floats and o not in inits]


MAX_VALUES = 1 << 18  # values kept per tensor for the histogram (min/max use all of them)
_CACHE: dict[tuple, dict[str, TensorStats]] = {}
_CACHE_SIZE = 8


def _digest(path: Path | str, batches: list, bins: int, max_values: int) -> tuple:
    """Cache key: the model file's sha256, the calibration data's sha1, the settings."""
    import hashlib

    data = hashlib.sha1()
    for batch in batches:
        for a in batch:
            a = np.ascontiguousarray(a)
            data.update(f"{a.dtype}{a.shape}".encode())
            data.update(a.data)
    model = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return model, data.hexdigest(), bins, max_values


def _subsample(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``k`` values of ``x``, drawn uniformly (with replacement, which is cheap)."""
    flat = x.reshape(-1)
    if flat.size <= k:
        return flat.astype(np.float32, copy=True)
    return flat[rng.integers(0, flat.size, k)].astype(np.float32)


def collect_stats(
    onnx_path: Path | str,
    batches: Iterable[tuple[np.ndarray, ...]] | list,
    *,
    bins: int = DEFAULT_BINS,
    max_values: int = MAX_VALUES,
) -> dict[str, TensorStats]:
    """Run the FP32 model over ``batches`` once in ONNX Runtime and return a
    :class:`TensorStats` per float activation tensor.

    The extremes are exact (every value); the histogram is built from at most
    ``max_values`` values per tensor drawn uniformly at random (seeded), which keeps a
    MobileNetV2 calibration to seconds (a 2048-bin histogram of 262k draws estimates a
    99.99th percentile to within a few bins). Results are cached within the process by
    the model file's sha256 and the data's digest, so the calibrators of one study share
    one collection. Returned stats are shared: treat them as read-only.
    """
    batches = list(batches)
    key = _digest(onnx_path, batches, bins, max_values)
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _collect(onnx_path, batches, bins, max_values)
    return _CACHE[key]


def _collect(onnx_path, batches: list, bins: int, max_values: int) -> dict[str, TensorStats]:
    import onnx

    model = onnx.load(str(onnx_path))
    names = _float_tensors(model)
    outputs = {o.name for o in model.graph.output}
    for name in names:
        if name not in outputs:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    sess = ort_session_from_bytes(model.SerializeToString())
    inputs = [i.name for i in sess.get_inputs()]
    rng = np.random.default_rng(0)
    per_batch = -(-max_values // max(len(batches), 1))
    lo = dict.fromkeys(names, np.inf)
    hi = dict.fromkeys(names, -np.inf)
    kept: dict[str, list[np.ndarray]] = {n: [] for n in names}
    per_sample: dict[str, TensorStats] = {n: TensorStats.empty(0.0, 0.0, 1) for n in names}
    for batch in batches:
        values = sess.run(names, dict(zip(inputs, batch, strict=True)))
        for name, value in zip(names, values, strict=True):
            if value.size == 0:
                continue
            lo[name] = min(lo[name], float(value.min()))
            hi[name] = max(hi[name], float(value.max()))
            kept[name].append(_subsample(value, per_batch, rng))
            if value.ndim > 1 and value.shape[0] == len(batch[0]):  # has a sample axis
                per_sample[name].add_samples(value)
    stats = {}
    for n in names:
        if not kept[n]:
            continue
        s = TensorStats.empty(lo[n], hi[n], bins)
        s.lo, s.hi = lo[n], hi[n]
        s.add(np.concatenate(kept[n]))
        p = per_sample[n]
        s.samples, s.sample_lo_sum, s.sample_hi_sum = p.samples, p.sample_lo_sum, p.sample_hi_sum
        stats[n] = s
    return stats


def ort_session_from_bytes(data: bytes, threads: int = 2):
    """An ONNX Runtime CPU session over a serialized model."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])

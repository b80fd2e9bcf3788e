"""Body coding of one flat float32 vector: which values travel (all or top-k) and how.

Every encoder returns the body bytes *and* the vector the receiver will reconstruct from
them, computed from the encoder's own integers; :func:`decode_body` recomputes it from the
bytes alone, and the tests hold the two equal bit for bit.

Value coders (Alistarh et al. 2017 QSGD; Bernstein et al. 2018 / Karimireddy et al. 2019
scaled sign; Sattler et al. 2019 STC):

- ``fp32``/``fp16``: the values, little-endian.
- ``q`` (b bits): per bucket of ``bucket`` values a float32 scale ``max|v|`` and levels
  ``l = sign(v) * floor(|v| / scale * s + u)``, ``u ~ U[0, 1)``, ``s = 2**(b-1) - 1``: unbiased
  stochastic rounding. Levels go as fixed b-bit fields or, where it is shorter, as a
  Rice code of their zigzag form (small levels dominate, so it usually pays).
  Decoded: ``l * (scale / s)`` in float32.
- ``sign``/``ternary``: one float32 ``mu = mean|v|`` per segment and one sign bit per value;
  decoded ``+-mu``. With top-k this is STC's ternary code.

Top-k positions go as Rice-coded gaps between sorted indices (STC's Golomb position code).
"""

from __future__ import annotations

import numpy as np

from edgeshrink.federated.bits import (
    WireError,
    best_rice_k,
    pack_fixed,
    rice_decode,
    rice_encode,
    total_unary_bits,
    unpack_fixed,
    unzigzag,
    zigzag,
)
from edgeshrink.federated.spec import CompressorSpec
from edgeshrink.federated.wire import Reader, Writer

__all__ = ["encode_body", "decode_body", "topk_count"]

RAW = 255  # mode byte of fixed-width levels; otherwise the byte is the Rice parameter
MAX_GAP_K = 24


def topk_count(n: int, density: float) -> int:
    return n if density >= 1.0 else max(1, min(n, int(round(density * n))))


def _encode_q(w: Writer, v: np.ndarray, spec: CompressorSpec, rng: np.random.Generator) -> np.ndarray:
    s = 2 ** (spec.bits - 1) - 1
    n, b = len(v), spec.bucket
    nb = -(-n // b)
    padded = np.zeros(nb * b, dtype=np.float32)
    padded[:n] = v
    buckets = padded.reshape(nb, b)
    scale = np.abs(buckets).max(axis=1).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    ratio = np.abs(buckets) / safe[:, None] * np.float32(s)
    mag = np.minimum(np.floor(ratio + rng.random(ratio.shape, dtype=np.float32)), s)
    levels = (np.sign(buckets) * mag).astype(np.int64).ravel()[:n]
    w.array(scale, "f4")
    u = zigzag(levels)
    k = best_rice_k(u, spec.bits)
    if spec.bits * n <= total_unary_bits(u, k) + k * n:
        w.pack("B", RAW)
        w.blob(pack_fixed((levels + s).astype(np.uint64), spec.bits))
    else:
        w.pack("BI", k, total_unary_bits(u, k))
        w.blob(rice_encode(u, k))
    step = scale / np.float32(s)
    return _dequantize(levels, step, b)


def _dequantize(levels: np.ndarray, step: np.ndarray, bucket: int) -> np.ndarray:
    return levels.astype(np.float32) * np.repeat(step, bucket)[: len(levels)]


def _decode_q(r: Reader, n: int, spec: CompressorSpec) -> np.ndarray:
    s = 2 ** (spec.bits - 1) - 1
    nb = -(-n // spec.bucket)
    scale = r.array(nb, "f4")
    if not np.all(np.isfinite(scale)) or np.any(scale < 0):
        raise WireError("message carries a negative or non-finite quantization scale.")
    (mode,) = r.unpack("B")
    if mode == RAW:
        levels = unpack_fixed(r.blob(), n, spec.bits).astype(np.int64) - s
    elif mode <= spec.bits:
        (unary_bits,) = r.unpack("I")
        if unary_bits > 8 * len(r.body):
            raise WireError("message has a malformed level code.")
        levels = unzigzag(rice_decode(r.blob(), n, mode, unary_bits))
    else:
        raise WireError(f"message has an unknown level coding mode {mode}.")
    if n and np.abs(levels).max() > s:
        raise WireError(f"message carries a level outside [-{s}, {s}].")
    return _dequantize(levels, scale / np.float32(s), spec.bucket)


def _encode_sign(w: Writer, v: np.ndarray, segments: list[int]) -> np.ndarray:
    bounds = np.cumsum([0, *segments])
    mu = np.array([np.abs(v[a:b]).mean() if b > a else 0.0
                   for a, b in zip(bounds[:-1], bounds[1:], strict=True)], dtype=np.float32)
    neg = v < 0
    w.array(mu, "f4")
    w.blob(np.packbits(neg).tobytes())
    return _signed(neg, mu, segments)


def _signed(neg: np.ndarray, mu: np.ndarray, segments: list[int]) -> np.ndarray:
    mags = np.repeat(mu, segments)
    return np.where(neg, -mags, mags).astype(np.float32)


def _decode_sign(r: Reader, n: int, segments: list[int]) -> np.ndarray:
    mu = r.array(len(segments), "f4")
    if not np.all(np.isfinite(mu)) or np.any(mu < 0):
        raise WireError("message carries a negative or non-finite sign scale.")
    blob = r.blob()
    if len(blob) != (n + 7) // 8:
        raise WireError(f"sign field is {len(blob)} bytes, expected {(n + 7) // 8}.")
    neg = np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=n).astype(bool)
    return _signed(neg, mu, segments)


def _encode_values(w, v, segments, spec, rng) -> np.ndarray:
    if spec.values == "fp32":
        w.array(v, "f4")
        return v.astype(np.float32)
    if spec.values == "fp16":
        w.array(v, "f2")
        return v.astype(np.float16).astype(np.float32)
    if spec.values == "q":
        return _encode_q(w, v, spec, rng)
    return _encode_sign(w, v, segments)


def _decode_values(r: Reader, n: int, segments: list[int], spec: CompressorSpec) -> np.ndarray:
    if spec.values == "fp32":
        out = r.array(n, "f4")
    elif spec.values == "fp16":
        out = r.array(n, "f2").astype(np.float32)
    elif spec.values == "q":
        return _decode_q(r, n, spec)
    else:
        return _decode_sign(r, n, segments)
    if not np.all(np.isfinite(out)):
        raise WireError("message carries non-finite values.")
    return out


def encode_body(v: np.ndarray, segments: list[int], spec: CompressorSpec, *,
                density: float, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """(body, what the receiver reconstructs) for the flat vector ``v`` split into ``segments``."""
    n = len(v)
    w = Writer()
    k = topk_count(n, density)
    if k == n:
        w.pack("I", n)
        out = _encode_values(w, v, segments, spec, rng) if n else v.astype(np.float32)
        return w.bytes(), out
    idx = np.sort(np.argpartition(np.abs(v), n - k)[n - k:])
    gaps = np.diff(idx, prepend=-1).astype(np.uint64) - np.uint64(1)
    rk = best_rice_k(gaps, MAX_GAP_K)
    w.pack("IBI", k, rk, total_unary_bits(gaps, rk))
    w.blob(rice_encode(gaps, rk))
    values = _encode_values(w, v[idx], [k], spec, rng)
    out = np.zeros(n, dtype=np.float32)
    out[idx] = values
    return w.bytes(), out


def decode_body(body: bytes, n: int, segments: list[int], spec: CompressorSpec) -> np.ndarray:
    """The vector of length ``n`` a body encodes; any inconsistency raises :class:`WireError`."""
    r = Reader(body)
    (k,) = r.unpack("I")
    if k == n:
        out = _decode_values(r, n, segments, spec) if n else np.zeros(0, np.float32)
        r.finish()
        return out
    if not 0 < k < n or spec.density >= 1.0:
        raise WireError(f"message selects {k} of {n} values, which this spec does not allow.")
    rk, unary_bits = r.unpack("BI")
    if rk > MAX_GAP_K or unary_bits > 8 * len(body):
        raise WireError("message has a malformed position code.")
    idx = np.cumsum(rice_decode(r.blob(), k, rk, unary_bits).astype(np.int64) + 1) - 1
    if idx[-1] >= n:
        raise WireError(f"message names position {idx[-1]} of a {n}-value update.")
    values = _decode_values(r, k, [k], spec)
    r.finish()
    out = np.zeros(n, dtype=np.float32)
    out[idx] = values
    return out

"""Bit-level coding for update messages: fixed-width packing and Golomb-Rice codes (numpy only).

Rice codes (Golomb codes with a power-of-two parameter ``2**k``; Golomb 1966, Rice 1979)
write ``u >> k`` in unary and the low ``k`` bits verbatim. Here the two parts go in two
separate bit streams, which costs exactly the same bits as the interleaved code but lets
both encoding and decoding run as whole-array numpy operations: the unary stream's
terminating zeros are found with one ``flatnonzero``.

Example:
    >>> u = np.array([0, 3, 9, 1], dtype=np.uint64)
    >>> k = best_rice_k(u, max_k=8)
    >>> blob = rice_encode(u, k)
    >>> rice_decode(blob, len(u), k, total_unary_bits(u, k)).tolist()
    [0, 3, 9, 1]
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "WireError", "pack_fixed", "unpack_fixed", "best_rice_k", "total_unary_bits",
    "rice_bits", "rice_encode", "rice_decode", "zigzag", "unzigzag",
]


class WireError(ValueError):
    """A message that cannot be decoded (truncated, corrupted, or not for this model).

    Decoding raises it instead of returning anything, so a bad message is never applied.
    """


def _nbytes(bits: int) -> int:
    return (bits + 7) // 8


def _container(width: int) -> np.dtype:
    """The smallest big-endian unsigned type that holds ``width`` bits."""
    return np.dtype(">u" + str(next(b for b in (1, 2, 4, 8) if 8 * b >= width)))


def pack_fixed(values: np.ndarray, width: int) -> bytes:
    """``values`` (unsigned, each < 2**width) as ``width``-bit big-endian fields, MSB first."""
    if width == 0 or len(values) == 0:
        return b""
    dt = _container(width)
    raw = np.ascontiguousarray(values, dtype=dt).view(np.uint8).reshape(len(values), dt.itemsize)
    bits = np.unpackbits(raw, axis=1)[:, 8 * dt.itemsize - width:]
    return np.packbits(bits.ravel()).tobytes()


def unpack_fixed(blob: bytes, count: int, width: int) -> np.ndarray:
    """Inverse of :func:`pack_fixed`; raises :class:`WireError` if ``blob`` is the wrong size."""
    if len(blob) != _nbytes(count * width):
        raise WireError(f"packed field is {len(blob)} bytes, expected {_nbytes(count * width)}.")
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.uint64)
    dt = _container(width)
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=count * width)
    full = np.zeros((count, 8 * dt.itemsize), dtype=np.uint8)
    full[:, 8 * dt.itemsize - width:] = bits.reshape(count, width)
    return np.packbits(full, axis=1).view(dt).ravel().astype(np.uint64)


def zigzag(levels: np.ndarray) -> np.ndarray:
    """Signed integers to unsigned (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...)."""
    s = levels.astype(np.int64)
    return ((s << 1) ^ (s >> 63)).astype(np.uint64)


def unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.int64)
    return (u >> 1) ^ -(u & 1)


def total_unary_bits(u: np.ndarray, k: int) -> int:
    """Bits of the unary stream of a Rice(k) code of ``u``: sum of quotients + one stop bit each."""
    return int(np.sum(u.astype(np.uint64) >> np.uint64(k))) + len(u)


def rice_bits(u: np.ndarray, k: int) -> int:
    """Total bits of the Rice(k) code of ``u`` (both streams, before byte padding)."""
    return total_unary_bits(u, k) + k * len(u)


def best_rice_k(u: np.ndarray, max_k: int) -> int:
    """The Rice parameter in [0, max_k] that codes ``u`` in the fewest bits."""
    if len(u) and int(u.max()) < 1 << 16:  # small alphabet (quantization levels): one histogram
        counts = np.bincount(u.astype(np.int64))
        values = np.arange(len(counts), dtype=np.int64)
        costs = [int(counts @ (values >> k)) + len(u) * (k + 1) for k in range(max_k + 1)]
        return int(np.argmin(costs))
    return min(range(max_k + 1), key=lambda k: rice_bits(u, k))


def rice_encode(u: np.ndarray, k: int) -> bytes:
    """The unary stream (padded to a byte) followed by the packed k-bit remainders."""
    u = u.astype(np.uint64)
    q = (u >> np.uint64(k)).astype(np.int64)
    stops = np.cumsum(q + 1) - 1
    unary = np.ones(int(stops[-1]) + 1 if len(u) else 0, dtype=np.uint8)
    unary[stops] = 0
    rem = u & np.uint64((1 << k) - 1)
    return np.packbits(unary).tobytes() + pack_fixed(rem, k)


def rice_decode(blob: bytes, count: int, k: int, unary_bits: int) -> np.ndarray:
    """Inverse of :func:`rice_encode`; every inconsistency raises :class:`WireError`."""
    head = _nbytes(unary_bits)
    if unary_bits < count or len(blob) != head + _nbytes(count * k):
        raise WireError("Rice-coded field has the wrong length for its value count.")
    if count == 0:
        return np.zeros(0, dtype=np.uint64)
    bits = np.unpackbits(np.frombuffer(blob[:head], dtype=np.uint8), count=unary_bits)
    stops = np.flatnonzero(bits == 0)
    if len(stops) != count or stops[-1] != unary_bits - 1:
        raise WireError(f"Rice-coded field holds {len(stops)} values, expected {count}.")
    q = np.diff(stops, prepend=-1).astype(np.uint64) - np.uint64(1)
    return (q << np.uint64(k)) | unpack_fixed(blob[head:], count, k)

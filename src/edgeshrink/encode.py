"""Encoded storage for sparse and/or weight-shared tensors (Han et al. 2016, Deep Compression).

Each tensor is stored in whichever of these forms is smallest:

* ``raw``: its bytes (FP32 values that FP16 represents exactly are stored as FP16);
* ``codebook``: the distinct values once, then a canonical-Huffman code of every entry's
  index into them (what k-means weight sharing produces: 2^b distinct values);
* ``row codebook``: per row (output channel, or the last axis), the row's distinct values
  once and every entry as a fixed-width index into them, bit-packed: what per-channel
  low-bit quantization (INT2-INT8 grids, binary, ternary) produces;
* ``row grid``: per row, a float32 step and an integer offset, every entry exactly
  ``float32((code + offset) * step)`` with a fixed-width code: a uniform quantizer's own
  grid (``(q - zero_point) * scale``), 8 bytes a row instead of a codebook;
* ``sparse``: only the non-zeros, each with the gap to the previous one as a ``b``-bit
  relative index (a filler zero entry bridges gaps longer than ``2^b - 1``, as in Deep
  Compression), the gaps Huffman-coded and the values either raw or codebook-coded.

The Huffman coder is canonical (code lengths only are stored, at most 15 bits) and written
here in numpy: no library does it for arbitrary alphabets. ``decode`` returns exactly the
arrays that were encoded (``-0.0`` becomes ``0.0``).

Example:
    >>> blob = encode({"w": np.array([0, 0, 1.5, 0, -2.0], np.float32)})
    >>> decode(blob)["w"].tolist()
    [0.0, 0.0, 1.5, 0.0, -2.0]
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable

import numpy as np

__all__ = [
    "encode",
    "decode",
    "encoded_size",
    "encode_model_weights",
    "huffman_lengths",
    "huffman_encode",
    "huffman_decode",
]

MAGIC = b"ESK1"
MAXLEN = 15
RAW, DENSE_CB, SPARSE_CB, SPARSE_RAW, ROW_CB, ROW_AFFINE = 0, 1, 2, 3, 4, 5
MAX_ROW_BITS = 8  # per-row codebooks of at most 256 values (per-channel quantization grids)
INDEX_BITS = (2, 3, 4, 5, 6, 8)
MAX_CODEBOOK = 4096


# ---- canonical Huffman ---------------------------------------------------------------------
def huffman_lengths(freqs: np.ndarray) -> np.ndarray:
    """Code length per symbol (0 for absent ones), at most 15 bits."""
    freqs = np.asarray(freqs, dtype=np.int64)
    while True:
        lengths = _lengths(freqs)
        if lengths.max(initial=0) <= MAXLEN:
            return lengths
        # Flatten the distribution until the longest code fits (rarely needed).
        freqs = np.where(freqs > 0, (freqs + 1) // 2, 0)


def _lengths(freqs: np.ndarray) -> np.ndarray:
    present = np.flatnonzero(freqs)
    lengths = np.zeros(len(freqs), np.int64)
    if len(present) == 1:
        lengths[present] = 1
        return lengths
    heap = [(int(freqs[s]), i, [int(s)]) for i, s in enumerate(present)]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        f1, _, a = heapq.heappop(heap)
        f2, _, b = heapq.heappop(heap)
        lengths[a + b] += 1
        heapq.heappush(heap, (f1 + f2, tie, a + b))
        tie += 1
    return lengths


def _canonical_codes(lengths: np.ndarray) -> np.ndarray:
    codes = np.zeros(len(lengths), np.int64)
    code, prev = 0, 0
    for sym in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[sym]) - prev
        codes[sym] = code
        prev = int(lengths[sym])
        code += 1
    return codes


def _pack_lengths(lengths: np.ndarray) -> bytes:
    nib = lengths.astype(np.uint8)
    if len(nib) % 2:
        nib = np.append(nib, 0)
    return ((nib[0::2] << 4) | nib[1::2]).astype(np.uint8).tobytes()


def _unpack_lengths(buf: bytes, n: int) -> np.ndarray:
    b = np.frombuffer(buf, np.uint8)
    return np.stack([b >> 4, b & 15], 1).reshape(-1)[:n].astype(np.int64)


def huffman_encode(symbols: np.ndarray, alphabet: int) -> bytes:
    """Canonical Huffman block: alphabet size, packed code lengths, count, payload."""
    symbols = np.asarray(symbols, np.int64)
    lengths = huffman_lengths(np.bincount(symbols, minlength=alphabet))
    codes = _canonical_codes(lengths)
    c, ln = codes[symbols], lengths[symbols]
    width = int(ln.max(initial=0))
    shifts = ln[:, None] - 1 - np.arange(width)[None, :]
    bits = (c[:, None] >> np.maximum(shifts, 0)) & 1
    payload = np.packbits(bits[shifts >= 0].astype(np.uint8)).tobytes()
    head = struct.pack("<HII", alphabet, len(symbols), len(payload))
    return head + _pack_lengths(lengths) + payload


def huffman_decode(buf: bytes, offset: int = 0) -> tuple[np.ndarray, int]:
    """Decode a block written by :func:`huffman_encode`; returns (symbols, next offset)."""
    alphabet, count, nbytes = struct.unpack_from("<HII", buf, offset)
    offset += 10
    lengths = _unpack_lengths(buf[offset : offset + (alphabet + 1) // 2], alphabet)
    offset += (alphabet + 1) // 2
    payload = np.frombuffer(buf, np.uint8, nbytes, offset)
    offset += nbytes
    if count == 0:
        return np.zeros(0, np.int64), offset
    width = int(lengths.max())
    table_sym = np.zeros(1 << width, np.int64)
    table_len = np.zeros(1 << width, np.int64)
    for sym, code in enumerate(_canonical_codes(lengths)):
        ln = int(lengths[sym])
        if ln:  # every width-bit window starting with this code decodes to sym
            lo = int(code) << (width - ln)
            table_sym[lo : lo + (1 << (width - ln))] = sym
            table_len[lo : lo + (1 << (width - ln))] = ln
    bits = np.concatenate([np.unpackbits(payload), np.zeros(width, np.uint8)]).astype(np.int64)
    windows = np.zeros(len(bits) - width, np.int64)
    for j in range(width):
        windows = (windows << 1) | bits[j : j + len(windows)]
    win, tsym, tlen = windows.tolist(), table_sym.tolist(), table_len.tolist()
    out, pos = [0] * count, 0
    for i in range(count):
        v = win[pos]
        out[i] = tsym[v]
        pos += tlen[v]
    return np.asarray(out, np.int64), offset


# ---- tensors -------------------------------------------------------------------------------
def _codebook_block(values: np.ndarray) -> bytes | None:
    book, symbols = np.unique(values, return_inverse=True)
    if len(book) > MAX_CODEBOOK:
        return None
    return struct.pack("<H", len(book)) + book.tobytes() + huffman_encode(symbols, len(book))


def _relative_index(flat: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(gaps, values) with filler zeros where a gap exceeds ``2^bits - 1`` (Han et al.)."""
    pos = np.flatnonzero(flat)
    gaps = np.diff(pos, prepend=-1) - 1
    span = 1 << bits
    fillers = gaps // span
    n = len(pos) + int(fillers.sum())
    out_gaps = np.full(n, span - 1, np.int64)
    out_vals = np.zeros(n, flat.dtype)
    last = np.cumsum(fillers + 1) - 1  # where each real entry lands
    out_gaps[last] = gaps - fillers * span
    out_vals[last] = flat[pos]
    return out_gaps, out_vals


def _sparse_forms(flat: np.ndarray) -> Iterable[bytes]:
    for bits in INDEX_BITS:
        gaps, vals = _relative_index(flat, bits)
        head = struct.pack("<B", bits) + huffman_encode(gaps, 1 << bits)
        yield struct.pack("<B", SPARSE_RAW) + head + vals.tobytes()
        book = _codebook_block(vals)
        if book is not None:
            yield struct.pack("<B", SPARSE_CB) + head + book


def _row_block(arr: np.ndarray, axis: int) -> bytes | None:
    """Per-row codebooks and bit-packed indices (rows along ``axis``: 0 first, 1 last)."""
    if arr.ndim < 2:
        return None
    m = arr.reshape(arr.shape[0], -1) if axis == 0 else arr.reshape(-1, arr.shape[-1]).T
    books, idx = [], np.empty(m.shape, np.int64)
    for r, row in enumerate(m):
        book, idx[r] = np.unique(row, return_inverse=True)
        if len(book) > 1 << MAX_ROW_BITS:
            return None
        books.append(book)
    bits = max(1, int(np.ceil(np.log2(max(len(b) for b in books)))))
    planes = (idx[..., None] >> np.arange(bits - 1, -1, -1)) & 1
    head = struct.pack("<BIB", axis, m.shape[0], bits)
    counts = np.array([len(b) for b in books], "<u2").tobytes()
    return (head + counts + np.concatenate(books).tobytes()
            + np.packbits(planes.astype(np.uint8).reshape(-1)).tobytes())


def _rows_view(arr: np.ndarray, axis: int) -> np.ndarray:
    return arr.reshape(arr.shape[0], -1) if axis == 0 else arr.reshape(-1, arr.shape[-1]).T


def _grid_row(row: np.ndarray) -> tuple[np.float32, int, np.ndarray] | None:
    """(step, offset, codes) with ``row == float32((codes + offset) * step)`` exactly.

    The codes come from the smallest gap between values; the step is the one float32 (of
    the few around ``value / code`` of the largest code) that reproduces every entry."""
    u = np.unique(row)
    gap = float(np.diff(u).min()) if len(u) > 1 else abs(float(u[0])) or 1.0
    if not np.isfinite(gap) or gap <= 0:
        return None
    k = np.rint(row.astype(np.float64) / gap)
    if np.abs(k).max(initial=0) >= 1 << 24:
        return None
    k = k.astype(np.int64)
    j = int(np.argmax(np.abs(k)))
    if k[j] == 0:
        return (np.float32(1.0), 0, k) if not row.any() else None
    step = np.float32(float(row[j]) / float(k[j]))
    kf = k.astype(np.float32)
    for _ in range(5):  # the step itself, then its float32 neighbours
        for cand in (step, np.nextafter(step, np.float32(np.inf))):
            if np.array_equal(kf * cand, row):
                return cand, int(k.min()), k - k.min()
        step = np.nextafter(step, np.float32(-np.inf))
    return None


def _affine_block(arr: np.ndarray, axis: int) -> bytes | None:
    """Per-row grids and bit-packed codes (float32 tensors whose rows are uniform grids)."""
    if arr.ndim < 2 or arr.dtype != np.float32:
        return None
    m = _rows_view(arr, axis)
    steps, offsets, codes = np.empty(len(m), "<f4"), np.empty(len(m), "<i4"), []
    for r, row in enumerate(m):
        got = _grid_row(row)
        if got is None or got[2].max(initial=0) >= 1 << MAX_ROW_BITS:
            return None
        steps[r], offsets[r] = got[0], got[1]
        codes.append(got[2])
    idx = np.stack(codes)
    bits = max(1, int(idx.max(initial=0)).bit_length())
    planes = (idx[..., None] >> np.arange(bits - 1, -1, -1)) & 1
    return (struct.pack("<BIB", axis, len(m), bits) + steps.tobytes() + offsets.tobytes()
            + np.packbits(planes.astype(np.uint8).reshape(-1)).tobytes())


def _read_affine(buf: bytes, off: int, dtype: np.dtype, size: int) -> tuple[np.ndarray, int]:
    axis, rows, bits = struct.unpack_from("<BIB", buf, off)
    off += 6
    steps = np.frombuffer(buf, "<f4", rows, off).astype(np.float32)
    offsets = np.frombuffer(buf, "<i4", rows, off + 4 * rows).astype(np.int64)
    off += 8 * rows
    cols = size // max(rows, 1)
    nbits = rows * cols * bits
    planes = np.unpackbits(np.frombuffer(buf, np.uint8, (nbits + 7) // 8, off))[:nbits]
    off += (nbits + 7) // 8
    idx = planes.reshape(rows, cols, bits).astype(np.int64) @ (1 << np.arange(bits - 1, -1, -1))
    m = (idx + offsets[:, None]).astype(np.float32) * steps[:, None]
    return (m if axis == 0 else m.T).reshape(-1).astype(dtype), off


def _read_rows(buf: bytes, off: int, dtype: np.dtype, size: int) -> tuple[np.ndarray, int]:
    axis, rows, bits = struct.unpack_from("<BIB", buf, off)
    off += 6
    counts = np.frombuffer(buf, "<u2", rows, off).astype(np.int64)
    off += 2 * rows
    values = np.frombuffer(buf, dtype, int(counts.sum()), off)
    off += values.nbytes
    cols = size // max(rows, 1)
    nbits = rows * cols * bits
    planes = np.unpackbits(np.frombuffer(buf, np.uint8, (nbits + 7) // 8, off))[:nbits]
    off += (nbits + 7) // 8
    idx = planes.reshape(rows, cols, bits).astype(np.int64) @ (1 << np.arange(bits - 1, -1, -1))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    m = values[idx + starts[:, None]]
    return (m if axis == 0 else m.T).reshape(-1).copy(), off


def _encode_tensor(arr: np.ndarray) -> bytes:
    flat = np.ascontiguousarray(arr).reshape(-1)
    # FP32 values that FP16 holds exactly (rounded codebooks, biases) are stored as FP16.
    half = flat.dtype == np.float32 and np.array_equal(flat.astype(np.float16), flat)
    if half:
        flat = flat.astype(np.float16)
    forms = [struct.pack("<B", RAW) + flat.tobytes()]
    if flat.dtype.kind == "f" and flat.size:
        book = _codebook_block(flat)
        if book is not None:
            forms.append(struct.pack("<B", DENSE_CB) + book)
        if not flat.all():
            forms.extend(_sparse_forms(flat))
        shaped = flat.reshape(arr.shape)
        for axis in (0, 1):
            for mode, block in ((ROW_CB, _row_block), (ROW_AFFINE, _affine_block)):
                rows = block(shaped, axis)
                if rows is not None:
                    forms.append(struct.pack("<B", mode) + rows)
    return struct.pack("<B", int(half)) + min(forms, key=len)


def _header(name: str, arr: np.ndarray) -> bytes:
    raw_name, dt = name.encode(), arr.dtype.str.encode()
    dims = struct.pack(f"<{arr.ndim}I", *arr.shape)
    return (struct.pack("<H", len(raw_name)) + raw_name + struct.pack("<B", len(dt)) + dt
            + struct.pack("<B", arr.ndim) + dims)


def encode(arrays: dict[str, np.ndarray]) -> bytes:
    """Encode named arrays into the smallest of the forms above, tensor by tensor."""
    parts = [MAGIC, struct.pack("<H", len(arrays))]
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        parts += [_header(name, arr), _encode_tensor(arr)]
    return b"".join(parts)


def encoded_size(arrays: dict[str, np.ndarray]) -> int:
    """Bytes of :func:`encode`'s output."""
    return len(encode(arrays))


def _read_codebook(buf: bytes, off: int, dtype: np.dtype) -> tuple[np.ndarray, int]:
    (k,) = struct.unpack_from("<H", buf, off)
    book = np.frombuffer(buf, dtype, k, off + 2)
    symbols, off = huffman_decode(buf, off + 2 + k * dtype.itemsize)
    return book[symbols], off


def _decode_tensor(buf: bytes, off: int, dtype: np.dtype, size: int) -> tuple[np.ndarray, int]:
    if buf[off]:  # stored as FP16, exactly
        flat, off = _decode_body(buf, off + 1, np.dtype(np.float16), size)
        return flat.astype(dtype), off
    return _decode_body(buf, off + 1, dtype, size)


def _decode_body(buf: bytes, off: int, dtype: np.dtype, size: int) -> tuple[np.ndarray, int]:
    mode = buf[off]
    off += 1
    if mode == RAW:
        return np.frombuffer(buf, dtype, size, off).copy(), off + size * dtype.itemsize
    if mode == DENSE_CB:
        return _read_codebook(buf, off, dtype)
    if mode == ROW_CB:
        return _read_rows(buf, off, dtype, size)
    if mode == ROW_AFFINE:
        return _read_affine(buf, off, dtype, size)
    gaps, off = huffman_decode(buf, off + 1)  # skip the index width: gaps carry fillers
    if mode == SPARSE_CB:
        vals, off = _read_codebook(buf, off, dtype)
    else:
        vals = np.frombuffer(buf, dtype, len(gaps), off)
        off += len(gaps) * dtype.itemsize
    flat = np.zeros(size, dtype)
    flat[np.cumsum(gaps + 1) - 1] = vals
    return flat, off


def decode(blob: bytes) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode`: the named arrays, exactly."""
    if blob[:4] != MAGIC:
        raise ValueError("not an edgeshrink encoded blob")
    (count,) = struct.unpack_from("<H", blob, 4)
    off, out = 6, {}
    for _ in range(count):
        (n,) = struct.unpack_from("<H", blob, off)
        name = blob[off + 2 : off + 2 + n].decode()
        off += 2 + n
        dt = np.dtype(blob[off + 1 : off + 1 + blob[off]].decode())
        off += 1 + blob[off]
        ndim = blob[off]
        shape = struct.unpack_from(f"<{ndim}I", blob, off + 1)
        off += 1 + 4 * ndim
        flat, off = _decode_tensor(blob, off, dt, int(np.prod(shape, dtype=np.int64)))
        out[name] = flat.reshape(shape)
    return out


def encode_model_weights(model) -> bytes:
    """Encode every tensor of ``model.state_dict()`` (pruned FP32, k-means shared, ...)."""
    return encode({k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})

"""The frame around every update message: a versioned header, the body, a CRC-32.

Layout (little-endian), version 1::

    offset  size  field
    0       4     magic  b"ESFU"
    4       1     version (1)
    5       1     direction (0 = client upload, 1 = server broadcast)
    6       2     spec length L (ASCII bytes)
    8       4     layout fingerprint (CRC-32 of the tensor shapes)
    12      4     round number
    16      4     body length B
    20      L     spec: the wire part of the compressor spec, e.g. ``topk:0.01+q8``
    20+L    B     body (written by :mod:`edgeshrink.federated.codecs`)
    20+L+B  4     CRC-32 (zlib) of every byte before it

A message whose length, magic, version, CRC, layout or spec does not match is refused with
a :class:`~edgeshrink.federated.bits.WireError` before any of its body is read.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from edgeshrink.federated.bits import WireError

__all__ = ["MAGIC", "VERSION", "HEADER", "Frame", "write_frame", "read_frame", "Reader", "Writer"]

MAGIC = b"ESFU"
VERSION = 1
HEADER = struct.Struct("<4sBBHIII")
CRC_BYTES = 4


@dataclass(frozen=True)
class Frame:
    """A message's header fields and its body bytes."""

    direction: int
    spec: str
    fingerprint: int
    round: int
    body: bytes


def write_frame(frame: Frame) -> bytes:
    spec = frame.spec.encode("ascii")
    head = HEADER.pack(MAGIC, VERSION, frame.direction, len(spec), frame.fingerprint,
                       frame.round, len(frame.body))
    data = head + spec + frame.body
    return data + struct.pack("<I", zlib.crc32(data))


def read_frame(message: bytes) -> Frame:
    """Parse and check a frame; raises :class:`WireError` naming what is wrong."""
    data = bytes(message)
    if len(data) < HEADER.size + CRC_BYTES:
        raise WireError(f"message is truncated: {len(data)} bytes, shorter than a header.")
    magic, version, direction, spec_len, fingerprint, rnd, body_len = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise WireError(f"not an edgeshrink update message (magic {magic!r}).")
    if version != VERSION:
        raise WireError(f"message format version {version} is not supported (this is {VERSION}).")
    expected = HEADER.size + spec_len + body_len + CRC_BYTES
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise WireError(f"message is {what}: {len(data)} bytes, header says {expected}.")
    (crc,) = struct.unpack_from("<I", data, len(data) - CRC_BYTES)
    if zlib.crc32(data[:-CRC_BYTES]) != crc:
        raise WireError("message is corrupted: CRC-32 does not match.")
    try:
        spec = data[HEADER.size:HEADER.size + spec_len].decode("ascii")
    except UnicodeDecodeError:
        raise WireError("message spec is not ASCII.") from None
    body = data[HEADER.size + spec_len:-CRC_BYTES]
    return Frame(direction, spec, fingerprint, rnd, body)


class Writer:
    """Appends fields to a body."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def pack(self, fmt: str, *values) -> None:
        self.parts.append(struct.pack("<" + fmt, *values))

    def blob(self, data: bytes) -> None:
        """A length-prefixed (u32) byte string."""
        self.pack("I", len(data))
        self.parts.append(data)

    def array(self, a: np.ndarray, dtype: str) -> None:
        self.parts.append(np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<")).tobytes())

    def bytes(self) -> bytes:
        return b"".join(self.parts)


class Reader:
    """Reads fields from a body; running past its end raises :class:`WireError`."""

    def __init__(self, body: bytes) -> None:
        self.body, self.pos = body, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.body):
            raise WireError(f"message body is malformed: a field needs {n} bytes at offset "
                            f"{self.pos}, the body has {len(self.body)}.")
        out = self.body[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size))

    def blob(self) -> bytes:
        (n,) = self.unpack("I")
        return self.take(n)

    def array(self, count: int, dtype: str) -> np.ndarray:
        dt = np.dtype(dtype).newbyteorder("<")
        return np.frombuffer(self.take(count * dt.itemsize), dtype=dt).astype(dtype)

    def finish(self) -> None:
        if self.pos != len(self.body):
            raise WireError(f"message body has {len(self.body) - self.pos} unread trailing bytes.")

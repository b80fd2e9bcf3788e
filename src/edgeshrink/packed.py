"""Packed ONNX files: the graph as it is, every weight in :mod:`edgeshrink.encode`'s storage.

A format no runtime executes (INT3, ternary, k-means codebooks, ...) or a sparse model is
shipped as one ``.eskp`` file: the ONNX graph without its initializers, then the weights
encoded (codebook + Huffman, relative-indexed sparse, bit-packed per-row codes). The device
decodes it once at load into the dense ONNX file its runtime runs (:func:`unpack_onnx`,
numpy + onnx only). The size the advisor and the report use for such a candidate is the
size of this file, written, and its round trip is checked when it is written: the decoded
weights equal the dense file's exactly.

Layout: ``b"ESKP"``, the graph's byte length (uint32 LE), the graph (``ModelProto`` with no
initializers), the :func:`edgeshrink.encode.encode` blob of the initializers in order.

Example:
    >>> path = pack_onnx("artifacts/int3.onnx")     # artifacts/int3.eskp
    >>> model = unpack_onnx(path)                   # onnx.ModelProto, weights restored
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

__all__ = ["pack_onnx", "unpack_onnx", "write_decoder", "PackError", "SUFFIX"]

MAGIC = b"ESKP"
SUFFIX = ".eskp"


class PackError(RuntimeError):
    """A packed file whose decoding does not give back the dense file's weights."""


def _split(model) -> tuple[bytes, dict[str, np.ndarray]]:
    from onnx import numpy_helper

    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    del model.graph.initializer[:]
    return model.SerializeToString(), arrays


def pack_onnx(src: Path | str, dest: Path | str | None = None) -> Path:
    """Write the packed form of the ONNX file ``src`` (default: beside it, ``.eskp``), check
    that it decodes to exactly the same weights, and return its path.

    Raises:
        PackError: the decoded weights differ from ``src``'s (nothing is left behind).
    """
    import onnx

    from edgeshrink.encode import encode
    from edgeshrink.results import atomic_write_bytes

    src = Path(src)
    dest = Path(dest) if dest else src.with_suffix(SUFFIX)
    graph, arrays = _split(onnx.load(str(src), load_external_data=True))
    blob = MAGIC + struct.pack("<I", len(graph)) + graph + encode(arrays)
    restored = {t.name: t for t in _decode(blob).graph.initializer}
    from onnx import numpy_helper

    for name, arr in arrays.items():
        back = numpy_helper.to_array(restored[name])
        if back.dtype != arr.dtype or not np.array_equal(back, arr):
            raise PackError(f"packed weights of {name!r} do not decode to the original.")
    atomic_write_bytes(dest, blob)
    return dest


def _decode(blob: bytes):
    import onnx
    from onnx import numpy_helper

    from edgeshrink.encode import decode

    if blob[:4] != MAGIC:
        raise PackError("not an edgeshrink packed ONNX file (bad magic).")
    (n,) = struct.unpack_from("<I", blob, 4)
    model = onnx.ModelProto.FromString(blob[8:8 + n])
    for name, arr in decode(blob[8 + n:]).items():
        # not np.ascontiguousarray: it turns a 0-d zero point into shape (1,)
        model.graph.initializer.append(numpy_helper.from_array(np.array(arr, order="C"), name))
    return model


def unpack_onnx(path: Path | str, dest: Path | str | None = None):
    """Decode a packed file into the dense ONNX model (and write it to ``dest`` if given).

    Example:
        >>> unpack_onnx("int3.eskp", "int3.onnx")  # doctest: +SKIP
    """
    model = _decode(Path(path).read_bytes())
    if dest is not None:
        from edgeshrink.results import atomic_write_bytes

        atomic_write_bytes(dest, model.SerializeToString())
    return model


_DECODER_MAIN = """

# ---- edgeshrink packed ONNX (.eskp) -> dense ONNX: python3 unpack_eskp.py IN.eskp OUT.onnx
def unpack(src, dest):
    import onnx
    from onnx import numpy_helper

    with open(src, "rb") as fh:
        blob = fh.read()
    if blob[:4] != b"ESKP":
        raise SystemExit(f"{src} is not an edgeshrink packed ONNX file")
    (n,) = struct.unpack_from("<I", blob, 4)
    model = onnx.ModelProto.FromString(blob[8:8 + n])
    for name, arr in decode(blob[8 + n:]).items():
        model.graph.initializer.append(numpy_helper.from_array(np.array(arr, order="C"), name))
    onnx.save(model, dest)


if __name__ == "__main__":
    import sys

    unpack(sys.argv[1], sys.argv[2])
"""


def write_decoder(dest: Path | str) -> Path:
    """Write a one-file decoder (numpy + onnx only) that turns a packed file back into the
    dense ONNX file on the device: ``python3 unpack_eskp.py model.eskp model.onnx``."""
    import inspect

    from edgeshrink import encode
    from edgeshrink.results import atomic_write_text

    atomic_write_text(dest, inspect.getsource(encode) + _DECODER_MAIN)
    return Path(dest)

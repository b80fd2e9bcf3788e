"""Run a ``.tflite`` file with LiteRT's interpreter behind ONNX Runtime's session API.

Device side: imports only numpy and ``ai_edge_litert`` (no torch), so that ``edgeshrink
bench`` can time a ``.tflite`` where only the runtime is installed. :func:`open_session`
returns an object with ``get_inputs()``, ``get_outputs()`` and ``run(names, feeds)`` like
``onnxruntime.InferenceSession``; arrays go in and come out in the file's own dtypes (a
full-integer file with int8 I/O takes and returns int8: see :func:`quantize` and
:func:`dequantize`).

A ``.tflite`` is converted at a fixed batch (1 from our builder): a larger batch runs as a
loop over slices of that size, because resizing the input does not resize the constant
shapes of the file's RESHAPE ops.

Example:
    >>> sess = open_session("model.tflite", threads=2)
    >>> out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["open_session", "LiteRTSession", "TensorArg", "quantize", "dequantize",
           "MISSING"]

MISSING = ("the LiteRT runtime is not installed: pip install ai-edge-litert "
           "(edgeshrink[litert-runtime]; edgeshrink[litert] to build .tflite files too).")
_ORT_TYPES = {np.float32: "tensor(float)", np.float16: "tensor(float16)",
              np.int8: "tensor(int8)", np.uint8: "tensor(uint8)", np.int16: "tensor(int16)",
              np.int32: "tensor(int32)", np.int64: "tensor(int64)", np.bool_: "tensor(bool)"}


@dataclass(frozen=True)
class TensorArg:
    """One input or output, as ``onnxruntime.NodeArg`` describes it, plus its int8 scale."""

    name: str
    shape: list[int]
    type: str
    dtype: type
    index: int
    scale: float = 0.0
    zero_point: int = 0


def _interpreter(path: Path, threads: int):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise RuntimeError(MISSING) from exc
    # XNNPACK is LiteRT's default CPU delegate: it is applied when the file is loaded.
    return Interpreter(model_path=str(path), num_threads=max(1, int(threads)))


def _arg(detail: dict) -> TensorArg:
    scale, zero = detail.get("quantization", (0.0, 0))
    dtype = np.dtype(detail["dtype"]).type
    return TensorArg(detail["name"], [int(d) for d in detail["shape"]],
                     _ORT_TYPES.get(dtype, f"tensor({np.dtype(dtype).name})"), dtype,
                     int(detail["index"]), float(scale), int(zero))  # fmt: skip


class LiteRTSession:
    """A loaded ``.tflite``; see the module docstring."""

    def __init__(self, path: Path | str, threads: int = 1) -> None:
        self._it = _interpreter(Path(path), threads)
        self._it.allocate_tensors()
        self._inputs = [_arg(d) for d in self._it.get_input_details()]
        self._outputs = [_arg(d) for d in self._it.get_output_details()]
        self.batch = self._inputs[0].shape[0] if self._inputs and self._inputs[0].shape else 1

    def get_inputs(self) -> list[TensorArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[TensorArg]:
        return list(self._outputs)

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list:
        """The outputs named (all when ``None``), each stacked over the feeds' batch."""
        wanted = self._outputs if output_names is None else [self._output(n) for n in
                                                             output_names]
        arrays = [np.asarray(feeds[a.name]) for a in self._inputs]
        total = len(arrays[0]) if arrays and arrays[0].ndim else self.batch
        step = max(self.batch, 1)
        parts: list[list[np.ndarray]] = [[] for _ in wanted]
        for start in range(0, max(total, 1), step):
            for arg, arr in zip(self._inputs, arrays, strict=True):
                piece = arr[start:start + step]
                if len(piece) < step:  # the last slice: pad to the converted batch
                    pad = np.repeat(piece[-1:], step - len(piece), axis=0)
                    piece = np.concatenate([piece, pad])
                self._it.set_tensor(arg.index, np.ascontiguousarray(piece, dtype=arg.dtype))
            self._it.invoke()
            n = min(step, total - start)
            for out, arg in zip(parts, wanted, strict=True):
                out.append(self._it.get_tensor(arg.index)[:n].copy())
        return [np.concatenate(p) if len(p) > 1 else p[0] for p in parts]

    def _output(self, name: str) -> TensorArg:
        for arg in self._outputs:
            if arg.name == name:
                return arg
        raise KeyError(f"no output {name!r}; outputs: {[a.name for a in self._outputs]}")


def open_session(path: Path | str, threads: int = 1) -> LiteRTSession:
    """Load ``path`` in LiteRT's interpreter (XNNPACK, ``threads`` threads)."""
    return LiteRTSession(path, threads)


def quantize(x: np.ndarray, arg: TensorArg) -> np.ndarray:
    """Float ``x`` as the integer tensor ``arg`` takes (``round(x / scale) + zero_point``);
    other inputs are cast to the tensor's dtype."""
    if arg.scale and np.issubdtype(arg.dtype, np.integer):
        info = np.iinfo(arg.dtype)
        q = np.round(np.asarray(x, np.float32) / arg.scale) + arg.zero_point
        return np.clip(q, info.min, info.max).astype(arg.dtype)
    return np.asarray(x).astype(arg.dtype, copy=False)


def dequantize(y: np.ndarray, arg: TensorArg) -> np.ndarray:
    """An integer output back to float (``(y - zero_point) * scale``); float passes through."""
    if arg.scale and np.issubdtype(arg.dtype, np.integer):
        return (y.astype(np.float32) - arg.zero_point) * np.float32(arg.scale)
    return np.asarray(y, np.float32) if np.issubdtype(y.dtype, np.floating) else y

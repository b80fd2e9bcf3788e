"""An ExecuTorch ``.pte`` opened like an ONNX Runtime ``InferenceSession``.

``edgeshrink bench`` and the ExecuTorch target share this module, which runs on the device:
it imports numpy and ExecuTorch's Python runtime (``executorch.runtime``) only. That runtime
takes and returns ``torch`` tensors (its binding imports torch), so the Python route needs
torch beside ExecuTorch; on a phone or board without Python the same file runs through the
C++ ``executorch::extension::Module`` API instead.

A ``.pte`` has static shapes: the batch it was exported with (1 for files edgeshrink
builds). :meth:`ExecuTorchSession.run` splits a larger batch into those and concatenates
the outputs, so callers may pass any batch.

XNNPACK runs on ExecuTorch's one process-wide threadpool, sized with
``_unsafe_reset_threadpool``. A loaded method keeps the pool it was loaded with, and a
reset frees that pool: running such a method afterwards corrupts memory (seen here as
``malloc(): unaligned tcache chunk detected``). So a session resizes the pool *before* it
loads, and a session whose pool was resized since it loaded (by a session with another
thread count) resizes it back and reloads its method before running.

Example:
    >>> sess = open_session("model.pte", threads=1)  # doctest: +SKIP
    >>> sess.run(None, {sess.get_inputs()[0].name: x})[0].shape  # doctest: +SKIP
    (1, 10)
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeshrink.bench.session import BenchError
from edgeshrink.errors import UserError

__all__ = ["ExecuTorchSession", "open_session", "missing", "quiet_native"]

# ExecuTorch ScalarType codes -> (ONNX Runtime's type string, numpy dtype)
_TYPES = {
    0: ("tensor(uint8)", np.uint8), 1: ("tensor(int8)", np.int8),
    2: ("tensor(int16)", np.int16), 3: ("tensor(int32)", np.int32),
    4: ("tensor(int64)", np.int64), 5: ("tensor(float16)", np.float16),
    6: ("tensor(float)", np.float32), 7: ("tensor(double)", np.float64),
    11: ("tensor(bool)", np.bool_),
}  # fmt: skip


def missing() -> str | None:
    """``None`` when ExecuTorch's runtime can be imported, else what to install."""
    if importlib.util.find_spec("executorch") is None or importlib.util.find_spec("torch") is None:
        return ("ExecuTorch is not installed; install it with `pip install edgeshrink[executorch]` "
                "(its Python runtime needs torch too).")  # fmt: skip
    return None


@contextlib.contextmanager
def quiet_native():
    """Silence ExecuTorch's native log lines (cpuinfo, threadpool) on fd 2 and its Python
    import chatter; what was said comes back if the block raises anything but a
    one-sentence :class:`~edgeshrink.errors.UserError`."""
    sys.stderr.flush()
    saved = os.dup(2)
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException as exc:
            os.dup2(saved, 2)
            if not isinstance(exc, UserError):  # a one-sentence error needs no log
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace")[-4000:])
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


_POOL = {"generation": 0}  # bumped by every resize of ExecuTorch's threadpool


def _size_pool(lib, threads: int) -> int:
    """Make ExecuTorch's threadpool ``threads`` wide; the pool's generation after it."""
    if lib._threadpool_get_thread_count() != threads:
        with quiet_native():
            lib._unsafe_reset_threadpool(threads)
        _POOL["generation"] += 1
    return _POOL["generation"]


@dataclass(frozen=True)
class NodeArg:
    """One input or output, as ONNX Runtime's ``NodeArg`` describes it."""

    name: str
    shape: list[int]
    type: str


def _args(meta, count: int, info, prefix: str) -> list[NodeArg]:
    out = []
    for i in range(count):
        t = info(i)
        out.append(NodeArg(prefix if i == 0 else f"{prefix}_{i}", list(t.sizes()),
                           _TYPES.get(int(t.dtype()), (f"tensor({t.dtype()})", None))[0]))
    return out


class ExecuTorchSession:
    """A loaded ``.pte`` method (``forward``) with ONNX Runtime's session interface."""

    def __init__(self, path: str | os.PathLike, threads: int = 1) -> None:
        why = missing()
        if why:
            raise BenchError(why)
        path = Path(path)
        if not path.is_file():
            raise BenchError(f"model file {path} does not exist; give the path of a .pte file.")
        with quiet_native():
            import executorch.extension.pybindings.portable_lib as lib
            import torch
            from executorch.runtime import Runtime

            self._lib, self._torch, self.threads = lib, torch, max(1, int(threads))
            self._generation = _size_pool(lib, self.threads)
            self._path, self._runtime = path, Runtime.get()
            try:
                self._method = self._load()
            except RuntimeError as exc:
                raise BenchError(f"ExecuTorch cannot load {path.name}: {exc}") from None
        meta = self._method.metadata
        self._inputs = _args(meta, meta.num_inputs(), meta.input_tensor_meta, "input")
        self._outputs = _args(meta, meta.num_outputs(), meta.output_tensor_meta, "output")
        self._batch = self._inputs[0].shape[0] if self._inputs and self._inputs[0].shape else 1

    def get_inputs(self) -> list[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._outputs)

    def _load(self):
        # a fresh Program each time: Program.load_method caches the Method it made first
        return self._runtime.load_program(self._path).load_method("forward")

    def _set_threads(self) -> None:
        generation = _size_pool(self._lib, self.threads)
        if generation != self._generation:  # loaded with a pool that has been freed since
            with quiet_native():
                self._method = self._load()
            self._generation = generation

    def _execute(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        tensors = [self._torch.from_numpy(np.ascontiguousarray(x)) for x in xs]
        # copies: the runtime reuses its planned output buffers on the next call
        return [np.array(o.numpy()) for o in self._method.execute(tensors)]

    def run(self, output_names, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs (all, or those named) for ``feeds`` (input name -> array, any batch)."""
        missing_names = [a.name for a in self._inputs if a.name not in feeds]
        if missing_names:
            raise BenchError(f"no value given for input {missing_names[0]!r}; the .pte takes "
                             f"{[a.name for a in self._inputs]}.")  # fmt: skip
        xs = [np.asarray(feeds[a.name]) for a in self._inputs]
        self._set_threads()
        n, b = len(xs[0]), self._batch
        if n == b:
            outs = self._execute(xs)
        else:  # the file's batch is static: run it chunk by chunk, padding the last chunk
            parts = []
            for start in range(0, n, b):
                chunk = [x[start : start + b] for x in xs]
                pad = b - len(chunk[0])
                if pad:
                    chunk = [np.concatenate([c, np.zeros((pad, *c.shape[1:]), c.dtype)]) for c in chunk]
                parts.append([o[: b - pad] for o in self._execute(chunk)])
            outs = [np.concatenate(p) for p in zip(*parts, strict=True)]
        if output_names is None:
            return outs
        index = {a.name: i for i, a in enumerate(self._outputs)}
        return [outs[index[name]] for name in output_names]


def open_session(path: str | os.PathLike, threads: int = 1) -> ExecuTorchSession:
    """Load ``path`` (a ``.pte``) in ExecuTorch's runtime with ``threads`` XNNPACK threads."""
    return ExecuTorchSession(path, threads)

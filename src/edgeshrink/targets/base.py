"""The contract every runtime target meets (see :mod:`edgeshrink.targets`)."""

from __future__ import annotations

import abc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.errors import UserError

__all__ = ["Target", "TargetError", "Runner"]

# numpy inputs (one array per model input, batch first) -> the model's first output
Runner = Callable[..., np.ndarray]


class TargetError(UserError):
    """A model or setting a target cannot handle, said in one sentence that names the
    target and, where one is to blame, the op (e.g. "LiteRT cannot convert aten::foo").
    A study records it for that candidate and goes on with the other targets."""


class Target(abc.ABC):
    """One runtime.

    Attributes:
        name: registry name (``onnxruntime``, ``openvino``, ``litert``, ``executorch``,
            ``tensorrt``).
        label: what a person reads ("LiteRT (.tflite)").
        suffix: the shipped file's suffix.
        extra: the pip extra that installs it (``pip install edgeshrink[EXTRA]``), if any.
        precisions: weight precisions the runtime executes natively (not emulated).
        measured_here: whether this machine can time the file (TensorRT: no).
    """

    name: str = ""
    label: str = ""
    suffix: str = ""
    extra: str | None = None
    precisions: frozenset[str] = frozenset({"fp32"})
    measured_here: bool = True

    def missing(self) -> str | None:
        """``None`` when the runtime imports here, else one sentence saying what to install."""
        return None

    def require(self) -> None:
        """Raise :class:`TargetError` with :meth:`missing`'s sentence if the runtime is absent."""
        why = self.missing()
        if why:
            raise TargetError(why)

    @abc.abstractmethod
    def load(self, path: Path, threads: int = 1) -> Runner:
        """Open ``path`` in the runtime; the returned callable runs one batch."""

    def shipped_files(self, art) -> list[Path]:
        """Every file that must be copied to the device (IR .xml + .bin, .tflite + .h, ...)."""
        return [Path(art.path)]

    def outputs(self, art, data, batch_size: int = 128) -> np.ndarray:
        """The first output of the shipped file over ``data`` (an edgeshrink Dataset)."""
        run = self.load(Path(art.path), threads=2)
        return np.concatenate([run(*xs) for xs in data.numpy_batches(batch_size)])

    def file_figures(self, art) -> dict[str, Any]:
        """``{"path", "size", "compressed", "sha256"}`` of the shipped files together (the
        bytes that go to the device, deflated at level 9, and their hash)."""
        import hashlib

        blob = b"".join(p.read_bytes() for p in self.shipped_files(art))
        return {"path": Path(art.path), "size": len(blob),
                "compressed": len(zlib.compress(blob, 9)),
                "sha256": hashlib.sha256(blob).hexdigest()}

    def figures(self, art, inputs: tuple[np.ndarray, ...], threads: tuple[int, ...],
                budget_s: float = 1.0) -> dict[str, Any]:
        """``{"path", "size", "compressed", "sha256", "by_threads": {str(t): latency stats},
        "peak_mb"}`` of the shipped file, measured in this runtime, and optionally
        ``"notes"``: runtime facts the record keeps (ORT: ``onnx_nodes``)."""
        from edgeshrink.bench.timing import summarize, time_interleaved

        by_threads = {}
        for t in threads:
            run = self.load(Path(art.path), threads=t)
            samples = time_interleaved({"m": lambda run=run: run(*inputs)}, warmup=10,
                                       runs=None, budget_s=budget_s)["m"]
            stats = summarize(samples)
            by_threads[str(t)] = {k: stats[k] for k in ("p50", "p90", "p99", "min", "mean",
                                                        "count")}
        return {**self.file_figures(art), "by_threads": by_threads,
                "peak_mb": self.peak_memory_mb(art, inputs, max(threads))}

    def peak_memory_mb(self, art, inputs: tuple[np.ndarray, ...], threads: int) -> float | None:
        """Peak RSS of a fresh process that loads and runs the file (``None`` if unknown)."""
        return None

    def fresh_peak_mb(self, script: str, path: Path, inputs: tuple[np.ndarray, ...],
                      *args: str) -> float:
        """Peak RSS (MiB) of ``python -c SCRIPT PATH NPZ ARGS...`` in a fresh process, where
        the script loads the file at ``PATH`` and runs it on the inputs in ``NPZ``
        (:mod:`edgeshrink.bench.fresh`); a child that fails raises :class:`TargetError`
        with its last line."""
        from edgeshrink.bench.fresh import INPUTS, fresh_peak_mb

        runtime = self.label.split(" (")[0] or self.name

        def fail(_code: int, last: str) -> TargetError:
            return TargetError(f"{runtime} could not run {Path(path).name} in a fresh "
                               f"process: {last}")

        return fresh_peak_mb(script, [str(path), INPUTS, *args], inputs, fail=fail)

    def loading_code(self, art, *, file_name: str) -> str:
        """A short, runnable snippet that loads ``file_name`` on the device and runs it
        (goes into ``recommended/README.md``)."""
        return ""

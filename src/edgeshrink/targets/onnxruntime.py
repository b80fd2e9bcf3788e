"""ONNX Runtime target (being moved here: see :mod:`edgeshrink.targets.base`)."""

from __future__ import annotations

from pathlib import Path

from edgeshrink.targets.base import Target


class OnnxRuntimeTarget(Target):
    name = "onnxruntime"
    label = "ONNX Runtime (.onnx)"
    suffix = ".onnx"
    precisions = frozenset({"fp32", "fp16", "int8"})

    def load(self, path: Path, threads: int = 1):
        from edgeshrink.export import ort_session, run_onnx

        session = ort_session(path, threads)
        return lambda *xs: run_onnx(session, xs)


TARGET = OnnxRuntimeTarget()

"""TensorRT target (being built: see the Target contract in :mod:`edgeshrink.targets.base`)."""

from __future__ import annotations

from pathlib import Path

from edgeshrink.targets.base import Target, TargetError


class TensorRTTarget(Target):
    name = "tensorrt"
    label = "TensorRT"

    def load(self, path: Path, threads: int = 1):
        raise TargetError("the TensorRT target is not built yet.")


TARGET = TensorRTTarget()

"""ExecuTorch target (being built: see the Target contract in :mod:`edgeshrink.targets.base`)."""

from __future__ import annotations

from pathlib import Path

from edgeshrink.targets.base import Target, TargetError


class ExecuTorchTarget(Target):
    name = "executorch"
    label = "ExecuTorch"

    def load(self, path: Path, threads: int = 1):
        raise TargetError("the ExecuTorch target is not built yet.")


TARGET = ExecuTorchTarget()

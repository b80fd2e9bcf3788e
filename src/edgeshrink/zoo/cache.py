"""Where zoo checkpoints are cached, and the deterministic train-once-then-load helper."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from edgeshrink.results import atomic_write_bytes

__all__ = ["cache_dir", "cached_state"]


def cache_dir() -> Path:
    """``$EDGESHRINK_CACHE``, else ``~/.cache/edgeshrink``."""
    root = os.environ.get("EDGESHRINK_CACHE") or Path.home() / ".cache" / "edgeshrink"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_state(key: str, model: nn.Module, train: Callable[[nn.Module], None]) -> nn.Module:
    """Load ``model``'s weights from the cache under ``key``, or train and cache them.

    ``key`` must change whenever the architecture, data split, seed or training recipe
    changes (callers put a version and the seed in it).
    """
    path = cache_dir() / "zoo" / f"{key}.pt"
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        train(model)
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        atomic_write_bytes(path, buf.getvalue())
    return model.eval()

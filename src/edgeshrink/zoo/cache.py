"""Where zoo checkpoints are cached, and the deterministic train-once-then-load helper.

Zoo baselines are trained under :func:`deterministic_training`: one intra-op thread and
``torch.use_deterministic_algorithms(True)``. A reduction split over N threads adds its
partial sums in an order that depends on N, so the same seed gave different weights on a
2-core CI runner and a 16-core workstation; on one thread the order is fixed, and the
weights are bitwise the same whatever ``torch.get_num_threads()`` the caller had (tested).
Across CPU models the vector kernels themselves differ (AVX2 vs AVX-512 oneDNN/MKL paths
sum in different orders), so bitwise equality is promised only on one CPU type; the
cache key carries ``TRAINING`` so that weights trained the old (thread-dependent) way
are never reused.

The weights of the trained zoo baselines also ship inside the package
(``edgeshrink/zoo/weights/KEY-TRAINING.pt``, trained under :func:`deterministic_training`),
so that every machine, whatever its CPU, starts from the same baselines and the figures
reproduce; training runs only for a key that neither the cache nor the package holds.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from edgeshrink.errors import UserError
from edgeshrink.results import atomic_write_bytes

__all__ = ["cache_dir", "cached_state", "deterministic_training", "TRAINING", "SHIPPED"]

TRAINING = "det1"  # the training regime, part of every cache key (see the module docstring)
SHIPPED = Path(__file__).resolve().parent / "weights"  # baselines trained once, same everywhere


@contextlib.contextmanager
def deterministic_training() -> Iterator[None]:
    """One intra-op thread and deterministic algorithms for the block; restored after."""
    threads = torch.get_num_threads()
    strict = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(strict)
        torch.set_num_threads(threads)


def cache_dir() -> Path:
    """``$EDGESHRINK_CACHE``, else ``~/.cache/edgeshrink``."""
    root = os.environ.get("EDGESHRINK_CACHE") or Path.home() / ".cache" / "edgeshrink"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _load_weights(path: Path, model: nn.Module) -> None:
    """Load a weights-only state dict into ``model``; anything else (a pickle with code, a
    damaged or foreign file) is refused without running it, in one sentence."""
    import warnings

    try:
        with warnings.catch_warnings():  # torch warns about the protocol of foreign pickles
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                                  for v in state.values()):
            raise TypeError("not a state dict of tensors")
        model.load_state_dict(state)
    except Exception as exc:
        detail = " ".join(str(exc).split())[:160]
        raise UserError(f"zoo cache file {path} is not a weights-only checkpoint of this model "
                        f"({type(exc).__name__}: {detail}); delete it and it is rebuilt.") from None


def cached_state(key: str, model: nn.Module, train: Callable[[nn.Module], None]) -> nn.Module:
    """Load ``model``'s weights from the cache or the package under ``key``, or train and
    cache them.

    ``key`` must change whenever the architecture, data split, seed or training recipe
    changes (callers put a version and the seed in it).
    """
    path = cache_dir() / "zoo" / f"{key}-{TRAINING}.pt"
    shipped = SHIPPED / path.name
    if path.is_file():
        _load_weights(path, model)
    elif shipped.is_file():
        _load_weights(shipped, model)
    else:
        with deterministic_training():
            train(model)
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        atomic_write_bytes(path, buf.getvalue())
    return model.eval()

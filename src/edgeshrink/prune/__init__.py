"""Pruning: ``prune(model, config) -> model``, dispatched on the config's class.

Example:
    >>> model = prune(model, UnstructuredConfig(sparsity=0.8, scope="global"))
"""

from __future__ import annotations

import copy

from torch import nn

from edgeshrink.errors import UserError
from edgeshrink.prune.layerwise import GroupStructuredConfig, LayerSparsityConfig
from edgeshrink.prune.nm import NMConfig
from edgeshrink.prune.obs import SparseGPTConfig, WandaConfig
from edgeshrink.prune.schedule import GradualConfig, IterativeConfig
from edgeshrink.prune.sensitivity import SensitivityConfig
from edgeshrink.prune.structured import StructuredConfig
from edgeshrink.prune.unstructured import UnstructuredConfig
from edgeshrink.transforms import HANDLERS, TransformContext

__all__ = [
    "prune",
    "UnstructuredConfig",
    "NMConfig",
    "SparseGPTConfig",
    "WandaConfig",
    "IterativeConfig",
    "GradualConfig",
    "SensitivityConfig",
    "StructuredConfig",
    "GroupStructuredConfig",
    "LayerSparsityConfig",
]


def prune(model: nn.Module, config, ctx: TransformContext | None = None) -> nn.Module:
    """A pruned copy of ``model`` according to ``config``; ``model`` itself is not changed
    (so it can still be the teacher of the fine-tuning and the baseline of a study)."""
    handler = HANDLERS.get(type(config))
    if handler is None or config.family != "pruning":
        raise UserError(f"{type(config).__name__} is not a pruning config.")
    return handler(config, copy.deepcopy(model), ctx)

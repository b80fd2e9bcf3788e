"""Layer helpers for the pretrained-model candidates (the list itself is
:func:`edgeshrink.study.plans.pretrained.pretrained_candidates`).

Example:
    >>> keep_fp32 = edge_layers(model)  # first and last Conv/Linear, anchored regexes
"""

from __future__ import annotations

import re

from torch import nn

__all__ = ["edge_layers", "narrowing_layers"]


def edge_layers(model: nn.Module) -> tuple[str, ...]:
    """Anchored regexes naming the first and last Conv/Linear layers (the usual sensitive
    ones: Zhou et al. 2016, Choi et al. 2018)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    if not names:
        return ()
    return tuple(f"^{re.escape(n)}$" for n in dict.fromkeys((names[0], names[-1])))


def narrowing_layers(model: nn.Module) -> tuple[str, ...]:
    """Anchored regexes naming the Linear layers with more inputs than outputs: in a
    transformer the FFN down projections, whose GELU inputs carry the activation outliers
    that per-tensor INT8 handles worst (Bondarenko et al. 2021)."""
    return tuple(f"^{re.escape(n)}$" for n, m in model.named_modules()
                 if isinstance(m, nn.Linear) and m.in_features > m.out_features)  # fmt: skip

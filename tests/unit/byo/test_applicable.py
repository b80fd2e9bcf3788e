"""Every registered technique either applies to a model kind or says why not."""

from __future__ import annotations

import pytest

from edgeshrink.byo.applicable import ONNX_KINDS, NotApplicable, check_applicable, reason
from edgeshrink.config import CONFIGS
from edgeshrink.transforms import load_handlers

load_handlers()


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_each_technique_applies_or_gives_a_reason(kind):
    assert reason(kind, "module") is None and reason(kind, "exported") is None
    for model_kind in ("onnx", "torchscript"):
        why = reason(kind, model_kind)
        assert (why is None) == (kind in ONNX_KINDS)
        if why:
            assert why.startswith(f"not applicable: {kind} ") and why.count(". ") == 0
            assert "--arch" in why and ".pt2" in why


def test_check_applicable_names_the_first_step_that_cannot_run():
    import torch

    from edgeshrink.prune import UnstructuredConfig
    from edgeshrink.quant import StaticInt8Config

    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    check_applicable([StaticInt8Config()], scripted)
    with pytest.raises(NotApplicable, match="not applicable: unstructured needs"):
        check_applicable([UnstructuredConfig(sparsity=0.5), StaticInt8Config()], scripted)
    check_applicable([UnstructuredConfig(sparsity=0.5)], torch.nn.Linear(2, 2))

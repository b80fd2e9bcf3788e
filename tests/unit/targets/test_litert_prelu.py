"""PReLU in a full-integer .tflite: int8 MINIMUM / MUL / ADD instead of a float island."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fit import fit
from torch import nn

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from edgeshrink.targets import get_target  # noqa: E402
from edgeshrink.targets.configs import LiteRTConfig  # noqa: E402
from edgeshrink.targets.tflite_file import (  # noqa: E402
    TFLM_BUILTIN_OPS,
    float_tensors,
    op_names,
)
from edgeshrink.task import Task  # noqa: E402
from edgeshrink.transforms import TransformContext, apply_recipe  # noqa: E402


class _PReLUNet(nn.Module):
    """Conv + PReLU + MaxPool + Linear + PReLU + Linear, O-Net's pattern on 8x8 digits."""

    def __init__(self):
        super().__init__()
        self.conv, self.prelu1 = nn.Conv2d(1, 8, 3), nn.PReLU(8)
        self.pool = nn.MaxPool2d(2)
        self.fc, self.prelu2 = nn.Linear(72, 32), nn.PReLU(32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(self.prelu1(self.conv(x))).flatten(1)
        return self.head(self.prelu2(self.fc(x)))


def _alphas(n: int) -> torch.Tensor:
    return torch.linspace(-0.5, 0.7, n)  # both signs, as O-Net's pretrained slopes


@pytest.fixture(scope="module")
def prelu_task(digits_task):
    torch.manual_seed(0)
    model = _PReLUNet()
    with torch.no_grad():
        model.prelu1.weight.copy_(_alphas(8))
        model.prelu2.weight.copy_(_alphas(32))
    for p in (model.prelu1.weight, model.prelu2.weight):
        p.requires_grad_(False)
    fit(model, digits_task.train, 60)
    return Task("prelu-digits", model, None, digits_task.calibration, digits_task.eval)


def _micro(task, tmp_path):
    cfg = LiteRTConfig(precision="int8", io="int8", micro=True)
    return apply_recipe([cfg], TransformContext(task=task, workdir=tmp_path, name="micro"))


def test_micro_file_computes_prelu_in_int8_and_agrees_with_pytorch(prelu_task, tmp_path):
    before = {k: v.clone() for k, v in prelu_task.model.state_dict().items()}
    art = _micro(prelu_task, tmp_path)
    data = art.path.read_bytes()
    ops = op_names(data)
    assert float_tensors(data) == []  # integer from input to output, constants included
    assert "DEQUANTIZE" not in ops
    assert set(ops) <= TFLM_BUILTIN_OPS
    assert ops.count("MINIMUM") == ops.count("MUL") == ops.count("ADD") == 2  # two PReLUs
    assert art.notes["arena_bytes"] < 4096

    out = get_target("litert").outputs(art, prelu_task.eval)
    with torch.no_grad():
        ref = prelu_task.model(torch.from_numpy(prelu_task.eval.inputs[0])).numpy()
    assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.98
    # the user's model is untouched: still nn.PReLU, same numbers
    assert isinstance(prelu_task.model.prelu1, nn.PReLU)
    assert all(torch.equal(before[k], v) for k, v in prelu_task.model.state_dict().items())


def test_decomposed_prelu_gives_prelu_numbers_for_either_sign_of_alpha():
    from edgeshrink.quant.pt2e_observer import decompose_prelu

    model = _PReLUNet().eval()
    with torch.no_grad():
        model.prelu1.weight.copy_(_alphas(8))
        model.prelu2.weight.copy_(torch.linspace(-1.5, 2.0, 32))  # beyond [0, 1] too
    x = torch.randn(16, 1, 8, 8)
    gm = torch.export.export(model, (x,)).module()
    assert decompose_prelu(gm) == 2
    targets = {n.target for n in gm.graph.nodes if n.op == "call_function"}
    assert torch.ops.aten.prelu.default not in targets
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-6)

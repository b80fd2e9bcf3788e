"""A residual net's tail in a full-integer .tflite: the ReLU after the last residual add and
the global average pool (MEAN) run in int8, not between DEQUANTIZE and QUANTIZE (issue 14)."""

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


class _ResidualNet(nn.Module):
    """Conv + BN + ReLU, a basic block (ReLU after the add), global average pool, Linear:
    ResNet-20's tail on 8x8 digits."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.conv1, self.bn1 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        x = self.relu(out + x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.fixture(scope="module")
def residual_task(digits_task):
    torch.manual_seed(0)
    model = _ResidualNet()
    fit(model, digits_task.train, 100)
    return Task("residual-digits", model, None, digits_task.calibration, digits_task.eval)


def test_micro_file_runs_the_residual_tail_in_int8_and_agrees_with_pytorch(residual_task,
                                                                          tmp_path):
    cfg = LiteRTConfig(precision="int8", io="int8", micro=True)
    art = apply_recipe([cfg], TransformContext(task=residual_task, workdir=tmp_path,
                                               name="micro"))
    data = art.path.read_bytes()
    ops = op_names(data)
    assert float_tensors(data) == []  # the ReLU after the add and the MEAN included
    assert "DEQUANTIZE" not in ops and "QUANTIZE" not in ops
    assert set(ops) <= TFLM_BUILTIN_OPS
    assert ops.count("MEAN") == 1 and ops.count("ADD") == 1

    out = get_target("litert").outputs(art, residual_task.eval)
    with torch.no_grad():
        ref = residual_task.model(torch.from_numpy(residual_task.eval.inputs[0])).numpy()
    assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.98

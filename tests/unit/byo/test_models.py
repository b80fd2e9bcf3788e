"""Model files: each format loads to a module that runs and takes eval(); what cannot be
loaded safely or correctly is one sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeshrink.byo.models import load_model, model_kind
from edgeshrink.errors import UserError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.bn(self.conv(x))), 1))


@pytest.fixture
def net():
    torch.manual_seed(0)
    m = Net().eval()
    m.bn.running_mean.uniform_(-1, 1)  # exported statistics must survive the rebuild
    return m


X = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_exported_program_becomes_an_editable_module_with_the_same_outputs(net, tmp_path):
    prog = torch.export.export(net, (X[:2],), dynamic_shapes=({0: torch.export.Dim("b")},))
    torch.export.save(prog, str(tmp_path / "m.pt2"))
    model, kind = load_model(tmp_path / "m.pt2")
    assert kind == "exported" and model_kind(model) == "exported"
    model.train()
    model.eval()  # ExportedProgram.module() raises here
    assert isinstance(model.conv, nn.Conv2d) and isinstance(model.fc, nn.Linear)
    assert isinstance(model.bn, nn.BatchNorm2d)
    torch.testing.assert_close(model(X), net(X))
    with torch.no_grad():  # the weights the graph reads are the modules' own
        model.fc.weight.zero_()
    torch.testing.assert_close(model(X), model.fc.bias.expand(5, 3))


def test_a_task_file_may_hand_over_an_exported_module(net):
    from edgeshrink.data import Dataset
    from edgeshrink.task import Task

    prog = torch.export.export(net, (X[:2],), dynamic_shapes=({0: torch.export.Dim("b")},))
    data = Dataset((X.numpy(),), np.zeros(5, np.int64))
    task = Task("t", prog.module(), data, data, data)  # used to raise in eval()
    torch.testing.assert_close(task.model(X), net(X))


def test_state_dict_loads_strictly_into_the_arch(net, tmp_path):
    (tmp_path / "arch.py").write_text(
        "import torch\nfrom torch import nn\n"
        "def make():\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))\n")
    torch.save(net.state_dict(), tmp_path / "w.pt")
    with pytest.raises(UserError, match="is a state dict .weights only.: pass --arch"):
        load_model(tmp_path / "w.pt")
    with pytest.raises(UserError, match="does not fit .*arch.py:make"):
        load_model(tmp_path / "w.pt", arch=f"{tmp_path / 'arch.py'}:make")
    with pytest.raises(UserError, match="has no class or function 'Nope'"):
        load_model(tmp_path / "w.pt", arch=f"{tmp_path / 'arch.py'}:Nope")


def test_torchscript_is_recognised_and_refuses_arch(net, tmp_path):
    torch.jit.trace(net, (X[:1],)).save(str(tmp_path / "ts.pt"))
    model, kind = load_model(tmp_path / "ts.pt")
    assert kind == "torchscript" and model_kind(model) == "torchscript"
    torch.testing.assert_close(model(X), net(X))
    with pytest.raises(UserError, match="is TorchScript and holds its architecture"):
        load_model(tmp_path / "ts.pt", arch="x.py:Y")


def test_onnx_fixed_batch_is_made_dynamic_and_runs_in_ort(net, tmp_path):
    torch.onnx.export(net, (X[:1],), str(tmp_path / "m.onnx"), dynamo=False)  # batch fixed at 1
    model, kind = load_model(tmp_path / "m.onnx")
    assert kind == "onnx" and model_kind(model) == "onnx"
    np.testing.assert_allclose(model(X).numpy(), net(X).detach().numpy(), atol=1e-5)
    assert sum(p.numel() for p in model.parameters()) == 4 * 9 + 4 + 144 * 3 + 3  # BN folded
    from edgeshrink.measure.model_stats import count_macs

    assert count_macs(model, (X[:1],))[0] == 4 * 36 * 9 + 144 * 3 == count_macs(net, (X[:1],))[0]
    from edgeshrink.quant.ort import matmul_dominated  # INT4 candidates: same answer

    assert matmul_dominated(model, 16) and matmul_dominated(net, 16)
    assert not matmul_dominated(model, 32) and not matmul_dominated(net, 32)  # 144 % 32
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError, match="is not a valid ONNX model"):
        load_model(tmp_path / "bad.onnx")


def test_unknown_file_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(UserError, match="is not a PyTorch file edgeshrink can read"):
        load_model(tmp_path / "junk.pt")

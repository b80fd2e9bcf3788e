"""The ONNX Runtime and OpenVINO targets: what measurement asks of a runtime."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.targets import TargetError, get_target, target_for
from edgeshrink.transforms import Artifact


@pytest.fixture(scope="module")
def art(tmp_path_factory) -> Artifact:
    from edgeshrink.export import export_onnx

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    path = export_onnx(model.eval(), (torch.randn(1, 1, 8, 8),),
                       tmp_path_factory.mktemp("ort") / "m.onnx")
    return Artifact(path=Path(path), model=model)


def _data(n: int = 10) -> Dataset:
    x = np.random.default_rng(0).normal(size=(n, 1, 8, 8)).astype(np.float32)
    return Dataset((x,), np.zeros(n, dtype=np.int64))


def test_outputs_match_pytorch_and_simulated_uses_its_simulation(art):
    target = target_for(art)
    assert target.name == "onnxruntime"
    data = _data()
    with torch.no_grad():
        ref = art.model(torch.from_numpy(data.inputs[0])).numpy()
    assert np.abs(target.outputs(art, data, batch_size=4) - ref).max() < 1e-4

    sim = Artifact(path=art.path, model=art.model, runtime="simulated",
                   simulate=lambda x: np.full((len(x), 3), 7.0, np.float32))
    assert target_for(sim) is target  # the dense decoded file runs in ORT
    assert (target.outputs(sim, data) == 7.0).all()  # the metric: from the simulation


def test_figures_are_the_files_own(art):
    x = (np.zeros((1, 1, 8, 8), np.float32),)
    fig = get_target("ort").figures(art, x, threads=(1,), budget_s=0.01)
    blob = art.path.read_bytes()
    assert fig["size"] == len(blob) and 0 < fig["compressed"] < len(blob)
    assert fig["sha256"] == hashlib.sha256(blob).hexdigest()
    assert fig["by_threads"]["1"]["count"] >= 50 and fig["by_threads"]["1"]["p50"] > 0
    assert fig["peak_mb"] > 1.0
    assert fig["notes"]["onnx_nodes"] in (2, 3, 4)  # Conv(+ReLU fused), Flatten/Reshape, Gemm


def test_loading_code_runs(art):
    code = get_target("onnxruntime").loading_code(art, file_name=str(art.path))
    assert "onnxruntime" in code
    ns: dict = {}
    exec(code, ns)  # the README snippet, as a user pastes it
    assert ns["outputs"].shape == (1, 3)


def test_moved_helpers_still_import_from_measure():
    from edgeshrink.measure.artifact import onnx_outputs, runtime_node_count
    from edgeshrink.targets import onnxruntime

    assert onnx_outputs is onnxruntime.onnx_outputs
    assert runtime_node_count is onnxruntime.runtime_node_count


def test_openvino_ships_the_ir_pair(tmp_path):
    ov = get_target("openvino")
    xml = tmp_path / "m.xml"
    art = Artifact(path=tmp_path / "m.onnx", model=nn.Identity(), runtime="openvino",
                   notes={"ir": str(xml)})
    assert ov.shipped_files(art) == [xml, tmp_path / "m.bin"]
    assert '"m.xml"' in ov.loading_code(art, file_name="m.xml")
    with pytest.raises(TargetError, match="no IR"):
        ov.shipped_files(Artifact(path=tmp_path / "m.onnx", model=nn.Identity()))
    if importlib.util.find_spec("openvino") is None:
        assert "pip install" in ov.missing()
        with pytest.raises(TargetError, match="OpenVINO is not installed"):
            ov.load(xml)
    else:
        assert ov.missing() is None


def test_openvino_runs_sizes_and_times_the_ir_it_ships(tmp_path):
    """Where OpenVINO is installed: the target's outputs are the build's own (same IR), and
    its figures are the .xml + .bin bytes."""
    pytest.importorskip("openvino")
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "quant"))
    from _tiny import ctx_for, tiny_task

    from edgeshrink.quant.openvino import OpenVinoInt8Config
    from edgeshrink.transforms import apply_recipe

    task = tiny_task()
    art = apply_recipe([OpenVinoInt8Config(calibration_samples=64)], ctx_for(task, tmp_path))
    target = target_for(art)
    assert target.name == "openvino"
    got = target.outputs(art, task.eval)
    built = np.concatenate([art.simulate(*xs) for xs in task.eval.numpy_batches(128)])
    assert np.abs(got - built).max() <= 1e-5 * max(1.0, float(np.abs(built).max()))
    fig = target.figures(art, (task.eval.inputs[0][:1],), threads=(1,), budget_s=0.01)
    xml, binary = target.shipped_files(art)
    assert fig["size"] == xml.stat().st_size + binary.stat().st_size
    assert fig["path"] == xml and fig["peak_mb"] > 1.0

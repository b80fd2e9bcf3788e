"""Bring your own model: ``edgeshrink study|prune --model FILE --data digits.npz`` on the
files a user has (ONNX, torch.export .pt2, TorchScript, state dict + --arch), built from
a small CNN trained here in seconds on sklearn's digits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeshrink.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from byo_files import digits, write_files  # noqa: E402

PLAN = """\
int8-static:
  - {kind: int8_static}
prune-50:
  - {kind: unstructured, sparsity: 0.5}
  - {kind: finetune, epochs: 1}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    out = write_files(folder)
    (folder / "plan.yaml").write_text(PLAN)
    out["plan"] = folder / "plan.yaml"
    return out


def _run(argv, capsys) -> tuple[int, str]:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code), capsys.readouterr().err
    return 0, capsys.readouterr().err


def _model_args(files, kind: str) -> list[str]:
    if kind == "state_dict":
        return ["--model", str(files["state_dict"]), "--arch", f"{files['arch']}:DigitsNet"]
    return ["--model", str(files[kind])]


@pytest.mark.parametrize("kind", ["onnx", "pt2", "torchscript", "state_dict"])
def test_study_completes_on_each_model_file(kind, files, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _run(["study", *_model_args(files, kind), "--data", str(files["npz"]),
                      "--plan", str(files["plan"]), "--threads", "1", "--out", str(out)], capsys)
    assert code == 0, err
    assert "eval 539 (stratified, seed 0), train 1,258, calibration 256" in err
    run = json.loads((out / "results.json").read_text())
    assert "eval 539 (stratified, seed 0), train 1,258, calibration 256" in run["description"]
    base = run["baseline"]["metric"]["value"]
    assert base > 80.0  # the trained net, evaluated on its held-out 30 %
    cands = {c["name"]: c for c in run["candidates"]}
    assert abs(cands["int8-static"]["metric"]["value"] - base) < 3.0
    assert cands["int8-static"]["precision"] == "int8"
    assert cands["int8-static"]["size_bytes"] < 0.5 * run["baseline"]["size_bytes"]
    if kind in ("onnx", "torchscript"):  # pruning needs PyTorch layers: said, not faked
        assert [f["name"] for f in run["failed"]] == ["prune-50"]
        assert run["failed"][0]["error"].startswith("not applicable: unstructured")
        assert "prune-50" not in cands
    else:
        assert run["failed"] == []
        assert cands["prune-50"]["sparsity"] == pytest.approx(0.5, abs=0.01)


def test_unlabelled_data_scores_agreement_with_the_original(files, tmp_path, capsys):
    out = tmp_path / "run"
    plan = tmp_path / "plan.yaml"
    plan.write_text("fp16:\n  - {kind: fp16}\n")
    code, err = _run(["study", "--model", str(files["onnx"]), "--data",
                      str(files["npz_unlabelled"]), "--plan", str(plan), "--threads", "1",
                      "--out", str(out)], capsys)
    assert code == 0, err
    run = json.loads((out / "results.json").read_text())
    assert run["metric"]["name"] == "top1_agreement"
    assert run["baseline"]["metric"]["value"] == 100.0  # the original agrees with itself
    assert run["candidates"][0]["metric"]["value"] > 98.0


def test_structured_pruning_writes_a_pt2_that_loads_without_the_class(files, tmp_path, capsys):
    out = tmp_path / "pruned.onnx"
    code, err = _run(["prune", *_model_args(files, "state_dict"), "--data", str(files["npz"]),
                      "--method", "structured", "--sparsity", "0.5", "--out", str(out)], capsys)
    assert code == 0, err
    assert not out.with_suffix(".pt").exists()  # shapes changed: it would not load anyway
    program = torch.export.load(str(out.with_suffix(".pt2")))  # no DigitsNet needed
    module = program.module()
    # half the channels, rounded to the kernels' block width: well under the 4,554 dense
    assert sum(p.numel() for p in module.parameters()) < 0.6 * 4554
    x = torch.from_numpy(digits()[0][:5])
    from edgeshrink.export import ort_session, run_onnx

    got = run_onnx(ort_session(out), (x.numpy(),))
    np.testing.assert_allclose(module(x).detach().numpy(), got, atol=1e-4)


def _assert_refused(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err


def test_torchscript_unstructured_pruning_is_refused(files, tmp_path, capsys):
    out = tmp_path / "p.onnx"
    code, err = _run(["prune", "--model", str(files["torchscript"]), "--data", str(files["npz"]),
                      "--method", "unstructured", "--sparsity", "0.5", "--out", str(out)],
                     capsys)
    _assert_refused(code, err, "not applicable: unstructured", "TorchScript", ".pt2")
    assert list(tmp_path.iterdir()) == []


def test_onnx_model_with_a_pytorch_only_technique_is_refused(files, tmp_path, capsys):
    out = tmp_path / "p.onnx"
    code, err = _run(["prune", "--model", str(files["onnx"]), "--data", str(files["npz"]),
                      "--method", "wanda", "--out", str(out)], capsys)
    _assert_refused(code, err, "not applicable: wanda", "ONNX")
    assert list(tmp_path.iterdir()) == []


def test_image_folder_that_does_not_fit_the_model_is_refused(files, tmp_path, capsys):
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(3):
            rgb = np.full((16, 16, 3), 40 * i, np.uint8)
            Image.fromarray(rgb).save(tmp_path / "imgs" / label / f"{i}.png")
    out = tmp_path / "run"
    code, err = _run(["study", "--model", str(files["onnx"]), "--data", str(tmp_path / "imgs"),
                      "--out", str(out)], capsys)
    _assert_refused(code, err, "shape (3, 16, 16)", "(1, 8, 8)")
    assert not out.exists()
    code, err = _run(["study", *_model_args(files, "pt2"), "--data", str(tmp_path / "imgs"),
                      "--out", str(out)], capsys)
    _assert_refused(code, err, "cannot run imgs's samples of shape (3, 16, 16)")
    assert not out.exists()


def test_whole_pickled_module_is_refused_with_the_reason(files, tmp_path, capsys):
    code, err = _run(["study", "--model", str(files["pickled"]), "--data", str(files["npz"]),
                      "--out", str(tmp_path / "run")], capsys)
    _assert_refused(code, err, "unpickling runs arbitrary code", "state_dict()", "--arch")
    assert not (tmp_path / "run").exists()


def test_image_folder_that_fits_scores_like_the_npz(files, tmp_path):
    from PIL import Image

    from edgeshrink.byo.build import byo_task
    from edgeshrink.measure.model_stats import torch_outputs

    x, y = digits()
    for i in range(0, len(y), 3):  # a third of the digits as 8x8 grey PNGs, by class
        (tmp_path / str(y[i])).mkdir(exist_ok=True)
        Image.fromarray(np.round(x[i, 0] * 255).astype(np.uint8)).save(tmp_path / f"{y[i]}/{i}.png")
    task = byo_task(files["onnx"], tmp_path)
    assert task.eval.inputs[0].shape[1:] == (1, 8, 8) and len(task.eval) == 180
    assert task.metric(torch_outputs(task.model, task.eval), task.eval.targets) > 80.0


REGRESSOR = """
from torch import nn


def make():
    return nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
"""


def test_regression_csv_study_fine_tunes_with_mse(tmp_path, capsys):
    """A state dict + arch regression model on a CSV: the metric is MSE against the target
    column, and pruning's fine-tuning minimises MSE (the task's loss), recovering accuracy."""
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(600, 3)).astype(np.float32)
    target = np.sin(feats[:, 0]) + feats[:, 1] * feats[:, 2]
    rows = ["a,b,c,target"] + [",".join(f"{v:.6f}" for v in (*f, t))
                               for f, t in zip(feats, target, strict=True)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "reg.py").write_text(REGRESSOR)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    xt, yt = torch.from_numpy(feats), torch.from_numpy(target[:, None].astype(np.float32))
    for _ in range(300):
        loss = torch.nn.functional.mse_loss(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    (tmp_path / "plan.yaml").write_text(
        "prune-70:\n  - {kind: unstructured, sparsity: 0.7}\n"
        "prune-70-ft:\n  - {kind: unstructured, sparsity: 0.7}\n  - {kind: finetune, epochs: 30}\n")
    out = tmp_path / "run"
    code, err = _run(["study", "--model", str(tmp_path / "w.pt"), "--arch",
                      f"{tmp_path / 'reg.py'}:make", "--data", str(tmp_path / "t.csv"),
                      "--plan", str(tmp_path / "plan.yaml"), "--threads", "1", "--out", str(out)],
                     capsys)
    assert code == 0, err
    assert "numeric labels" in err and "metric mse against the labels" in err
    run = json.loads((out / "results.json").read_text())
    assert run["metric"] == {"name": "mse", "unit": "", "higher_is_better": False}
    base = run["baseline"]["metric"]["value"]
    cands = {c["name"]: c["metric"]["value"] for c in run["candidates"]}
    assert base < 0.2 and cands["prune-70"] > base
    assert cands["prune-70-ft"] < cands["prune-70"]  # fine-tuned on MSE, not cross-entropy


def test_sensitivity_scan_on_an_onnx_model_is_refused(files, tmp_path, capsys):
    code, err = _run(["study", "--model", str(files["onnx"]), "--data", str(files["npz"]),
                      "--sensitivity", "--out", str(tmp_path / "run")], capsys)
    _assert_refused(code, err, "--sensitivity prunes and quantizes one PyTorch layer")
    assert not (tmp_path / "run").exists()

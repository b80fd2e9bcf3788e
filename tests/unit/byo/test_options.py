"""The --model options: every mistake is one sentence, exit 2, before any model is loaded."""

from __future__ import annotations

import pytest

from edgeshrink.cli import main


def _err(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "d.npz"], "--data go with --model FILE"),
    (["--model", "m.onnx"], "--model needs --data"),
    (["--task", "zoo:lenet5-digits", "--model", "m.onnx", "--data", "d.npz"],
     "give either --task or --model, not both"),
    (["--model", "m.onnx", "--data", "d.npz", "--metric", "f1"], "unknown --metric 'f1'"),
    (["--model", "m.onnx", "--data", "d.npz", "--input-size", "0,4"], "--input-size must be H,W"),
    (["--model", "m.onnx", "--data", "d.npz", "--mean", "a,b"], "--mean must be comma-separated"),
    (["--model", "m.onnx", "--data", "d.npz", "--mean", "0.5"],
     "--mean applies to a folder of images; d.npz is not one"),
    (["--model", "m.onnx", "--data", "d.npz", "--label-column", "y"],
     "--label-column applies to a .csv"),
    (["--model", "missing.onnx", "--data", "d.npz"], "model file missing.onnx does not exist"),
])
@pytest.mark.parametrize("command", ["study", "prune", "quantize"])
def test_option_mistakes_are_one_sentence(command, args, message, capsys, tmp_path,
                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = {"study": [], "prune": ["--method", "unstructured", "--out", "p.onnx"],
             "quantize": ["--method", "fp16", "--out", "q.onnx"]}[command]
    assert message in _err([command, *args, *extra], capsys)
    assert list(tmp_path.iterdir()) == []

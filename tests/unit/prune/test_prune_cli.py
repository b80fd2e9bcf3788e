"""``edgeshrink prune``: bad input is one sentence and exit 2; a real run writes ONNX + .pt."""

import textwrap

import numpy as np
import pytest
import torch

from edgeshrink.cli import main
from edgeshrink.export import ort_session, run_onnx

TASK_FILE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {here!r})
    from prune_helpers import mlp, task

    def make():
        return task(mlp())
""")


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "unstructured", "--sparsity", "1.0"], "--sparsity must be in [0.0, 1.0)"),
    (["--method", "unstructured", "--sparsity", "-0.1"], "--sparsity must be in"),
    (["--method", "magic"], "unknown pruning method 'magic'; choose one of"),
    (["--method", "unstructured", "--set", "bogus=1"], "unknown field(s) bogus"),
    (["--method", "unstructured", "--set", "novalue"], "--set expects key=value"),
    (["--method", "nm", "--sparsity", "0.5"], "nm has no sparsity setting"),
    (["--method", "wanda", "--set", "pattern=5:4"], "pattern must be"),
    (["--method", "unstructured", "--distill", "0.5"], "--distill needs --finetune-epochs"),
    (["--method", "int8_static"], "unknown pruning method"),
    (["--recipe", "missing.yaml"], "recipe file missing.yaml does not exist"),
])
def test_bad_input_exits_2_with_one_sentence(args, message, capsys, tmp_path):
    code, err = _run(["prune", *args, "--out", str(tmp_path / "m.onnx")], capsys)
    assert code == 2
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_out_must_be_onnx(capsys, tmp_path):
    code, err = _run(["prune", "--method", "unstructured", "--out", str(tmp_path / "m.pt")],
                     capsys)
    assert code == 2 and "--out must name an .onnx file" in err


def _task_spec(tmp_path):
    from pathlib import Path

    path = tmp_path / "task.py"
    path.write_text(TASK_FILE.format(here=str(Path(__file__).parent)))
    return f"{path}:make"


def test_prune_writes_onnx_and_state_dict(capsys, tmp_path):
    out = tmp_path / "sub" / "pruned.onnx"
    main(["prune", "--task", _task_spec(tmp_path), "--method", "nm", "--set", "n=1",
          "--finetune-epochs", "1", "--distill", "0.5", "--out", str(out)])
    text = capsys.readouterr().out
    assert "nm + finetune" in text and "75.0 %" in text and "ONNX Runtime" in text
    state = torch.load(out.with_suffix(".pt"), weights_only=True)
    w = state["1.weight"]
    assert int((w != 0).sum()) == w.numel() // 4
    x = np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32)
    assert run_onnx(ort_session(out, 1), (x,)).shape == (2, 4)


def test_prune_from_a_recipe(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("- {kind: wanda, sparsity: 0.5, pattern: '2:4'}\n")
    out = tmp_path / "r.onnx"
    main(["prune", "--task", _task_spec(tmp_path), "--recipe", str(recipe), "--out", str(out)])
    assert "wanda" in capsys.readouterr().out
    assert out.is_file() and out.with_suffix(".pt").is_file()


def test_every_pruning_kind_is_reachable_and_sparsity_maps_to_its_field():
    from edgeshrink.commands.prune import build_recipe, pruning_kinds

    kinds = pruning_kinds()
    assert {"unstructured", "nm", "wanda", "sparsegpt", "iterative", "gradual",
            "sensitivity"} <= set(kinds)
    for kind in kinds:
        (cfg,) = build_recipe(kind, None, [], 0, 0.0, None)
        assert cfg.kind == kind and cfg.family == "pruning"
    assert build_recipe("gradual", 0.7, [], 0, 0.0, None)[0].final == 0.7
    wanda, ft = build_recipe("wanda", 0.6, ["pattern=2:4"], 2, 0.5, None)
    assert (wanda.pattern, wanda.sparsity, ft.epochs, ft.distill) == ("2:4", 0.6, 2, 0.5)

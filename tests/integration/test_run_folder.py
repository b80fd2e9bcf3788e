"""The run folder (issue #15): never written over unless it is a run of the same task, never
a file deleted that the study did not write, and --resume trusts only files whose sha256
still matches the one recorded when they were written."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from edgeshrink.errors import UserError
from edgeshrink.quant import DynamicInt8Config
from edgeshrink.study import CandidateSpec, run_study
from edgeshrink.study.rundir import MANIFEST

PLAN = [CandidateSpec("int8-dyn", (DynamicInt8Config(),))]


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` -> sha256 of its bytes."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def study(task, out, **kw):
    return run_study(task, PLAN, out, threads=(1,), budget_s=0.02, **kw)


def cli(argv, capsys):
    from edgeshrink.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code, capsys.readouterr().err


@pytest.fixture
def foreign(tmp_path):
    out = tmp_path / "p"
    (out / "artifacts" / "figures").mkdir(parents=True)
    (out / "artifacts" / "figures" / "fig1.txt").write_text("x\n")
    (out / "notes.md").write_text("mine\n")
    return out


def test_a_foreign_folder_is_refused_and_left_as_it_was(foreign, capsys):
    before = tree(foreign)
    code, err = cli(["study", "--task", "zoo:lenet5-digits", "--out", str(foreign)], capsys)
    assert code == 2
    assert "is not an edgeshrink run" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert tree(foreign) == before


def test_out_naming_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "results.txt"
    out.write_text("keep\n")
    code, err = cli(["study", "--out", str(out)], capsys)
    assert code == 2 and "is a file" in err
    assert out.read_text() == "keep\n"


def test_force_writes_beside_foreign_files_and_replacing_deletes_only_its_own(
        digits_task, foreign):
    study(digits_task, foreign, force=True)
    assert (foreign / "artifacts" / "figures" / "fig1.txt").read_text() == "x\n"
    manifest = json.loads((foreign / MANIFEST).read_text())
    assert manifest["task"] == "zoo:lenet5-digits"
    assert set(manifest["foreign"]) == {"artifacts/figures/fig1.txt", "notes.md"}
    assert {"results.json", "artifacts/baseline.onnx", "artifacts/int8-dyn.onnx"} <= set(
        manifest["files"])
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((foreign / name).read_bytes()).hexdigest() == digest, name
    # a file the user adds to the run afterwards is theirs too
    (foreign / "artifacts" / "later.txt").write_text("later\n")
    stale = foreign / "artifacts" / "int8-dyn.onnx"
    run_study(digits_task, [], foreign, force=True, threads=(1,), budget_s=0.02)
    assert not stale.exists()  # the replaced run's own artifact is gone ...
    assert (foreign / "artifacts" / "later.txt").read_text() == "later\n"  # ... nothing else
    assert (foreign / "artifacts" / "figures" / "fig1.txt").read_text() == "x\n"
    assert (foreign / "notes.md").read_text() == "mine\n"


def test_force_refuses_to_overwrite_a_foreign_results_file(tmp_path, digits_task):
    out = tmp_path / "r"
    out.mkdir()
    (out / "results.json").write_text("{}")
    with pytest.raises(UserError, match="results.json, which edgeshrink did not write"):
        study(digits_task, out, force=True)
    assert (out / "results.json").read_text() == "{}"


def test_an_existing_run_needs_resume_or_force(digits_task, tmp_path, capsys):
    out = tmp_path / "run"
    study(digits_task, out)
    before = tree(out)
    with pytest.raises(UserError, match="already holds a run of zoo:lenet5-digits"):
        study(digits_task, out)
    code, err = cli(["study", "--task", "zoo:lenet5-digits", "--out", str(out)], capsys)
    assert code == 2 and "pass --resume to continue it, --force to replace it" in err
    assert tree(out) == before


def test_resume_refuses_another_task_and_other_weights(digits_task, mnist_task, tmp_path):
    out = tmp_path / "run"
    study(digits_task, out)
    before = tree(out)
    with pytest.raises(UserError, match="is a run of zoo:lenet5-digits, not zoo:lenet5-mnist"):
        study(mnist_task, out, resume=True)
    other = copy.copy(digits_task)
    other.model = copy.deepcopy(digits_task.model)
    with __import__("torch").no_grad():
        next(other.model.parameters()).add_(0.01)
    with pytest.raises(UserError, match="other model weights"):
        study(other, out, resume=True)
    assert tree(out) == before


def test_resume_rebuilds_a_truncated_artifact_and_says_so(digits_task, tmp_path):
    out = tmp_path / "run"
    first = study(digits_task, out)
    art = out / first.get("int8-dyn").artifact
    good = art.read_bytes()
    art.write_bytes(good[: len(good) // 2])
    said = []
    second = study(digits_task, out, resume=True, on_progress=lambda n, s: said.append((n, s)))
    assert ("int8-dyn", "rebuilding: artifacts/int8-dyn.onnx does not match the sha256 "
            "recorded when it was written") in said
    assert not any(s.startswith("rebuilding") for n, s in said if n == "baseline")
    assert art.read_bytes() == good  # rebuilt: the same deterministic file
    assert [c.name for c in second.candidates] == ["int8-dyn"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["files"]["artifacts/int8-dyn.onnx"] == hashlib.sha256(good).hexdigest()

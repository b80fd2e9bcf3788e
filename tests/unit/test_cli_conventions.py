"""CLI conventions (issues #15, #16): every option checked before any work, strict JSON,
--version, exit code 3 for "no candidate meets the budget", units in the help."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from edgeshrink.cli import main

sys.path.insert(0, str(Path(__file__).parent / "report"))
from sample_run import sample_run, write_sample_run  # noqa: E402


def run_cli(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def no_work(monkeypatch):
    """Loading a task is the first piece of work: a checked option never gets there."""
    import edgeshrink.task

    def fail(*_a, **_k):
        raise AssertionError("the study started work before refusing a bad option")

    monkeypatch.setattr(edgeshrink.task, "load_task", fail)


BAD = [
    (["--max-size", "-5MB"], "size '-5MB' is not a size"),
    (["--max-size", "0KB"], "max_size_bytes must be a positive finite number"),
    (["--max-drop", "-1"], "max_drop must be a finite number >= 0"),
    (["--max-drop", "nan"], "max_drop must be a finite number >= 0, got nan"),
    (["--max-drop", "inf"], "max_drop must be a finite number >= 0, got inf"),
    (["--priority", "fastest"], "--priority must be one of accuracy, size, speed, energy"),
    (["--max-latency", "5 parsecs"], "is not a duration"),
    (["--max-energy", "-2mJ"], "is not an energy"),
]


@pytest.mark.parametrize("device", [[], ["--device", "rpi4"]], ids=["no-device", "device"])
@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_study_refuses_bad_options_before_any_work(args, message, device, no_work, tmp_path,
                                                   capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["study", "--out", str(out), *device, *args], capsys)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(("args", "message"), BAD[2:6])
def test_recommend_refuses_bad_options(args, message, tmp_path, capsys):
    write_sample_run(tmp_path)
    before = (tmp_path / "results.json").read_bytes()
    code, _, err = run_cli(["recommend", str(tmp_path), "--device", "rpi4", *args], capsys)
    assert code == 2 and message in err
    assert (tmp_path / "results.json").read_bytes() == before
    assert not (tmp_path / "recommended").exists()


def test_no_candidate_meeting_the_budget_is_exit_3(tmp_path, capsys):
    write_sample_run(tmp_path)
    code, _, err = run_cli(["recommend", str(tmp_path), "--device", "rpi4", "--max-size", "1KB"],
                           capsys)
    assert code == 3, err
    assert "no candidate meets the constraints" in err and "max_size" in err


def test_results_json_is_strict_and_names_what_was_not_finite(tmp_path):
    from edgeshrink.results import load_run, save_run

    run = sample_run()
    run.candidates[0].metric["value"] = math.nan
    run.candidates[1].notes["max_abs_diff_vs_pytorch"] = math.inf
    save_run(run, tmp_path)
    text = (tmp_path / "results.json").read_text()

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    data = json.loads(text, parse_constant=refuse)  # strict: no NaN/Infinity tokens
    assert data["candidates"][0]["metric"]["value"] is None
    assert data["non_finite"] == [
        {"field": "candidates[0].metric.value", "value": "nan",
         "reason": "not a finite number; JSON has no NaN or infinity"},
        {"field": "candidates[1].notes.max_abs_diff_vs_pytorch", "value": "inf",
         "reason": "not a finite number; JSON has no NaN or infinity"}]
    assert math.isnan(load_run(tmp_path).candidates[0].value)


def test_version(capsys):
    from edgeshrink import __version__

    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"edgeshrink {__version__}"


def test_help_texts_give_units(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one option per line, its help unwrapped
    code, out, _ = run_cli(["study", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0
    for unit in ("200kB", "KiB = 1024 B", "5ms, 250us", "percentage points", "2mJ"):
        assert unit in text, unit


@pytest.mark.parametrize(("argv", "message"), [
    (["quantize", "--method", "lowbit", "--set", "bits=abc"], "lowbit: bits must be an integer, "
                                                             "got 'abc'"),
    (["prune", "--method", "unstructured", "--set", "sparsity=.nan"],
     "sparsity must be a finite number, got nan"),
    (["prune", "--method", "unstructured", "--set", "sparsity=.inf"],
     "sparsity must be a finite number, got inf"),
    (["prune"], "prune needs --method"),
])
def test_config_values_are_checked_by_type_and_finiteness(argv, message, tmp_path, no_work,
                                                         capsys):
    out = tmp_path / "x.onnx"
    code, _, err = run_cli([*argv, "--out", str(out)], capsys)
    assert code == 2 and message in err, err
    assert "not supported" not in err and "None" not in err
    assert not out.exists()

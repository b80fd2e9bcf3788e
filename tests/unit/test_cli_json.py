"""Machine-readable output (issue #16): ``--json`` on tasks, devices, recommend and study, one
schema version shared with results.json; shell completion; the ETA of a study's log lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from edgeshrink.cli import main
from edgeshrink.results import SCHEMA_VERSION

sys.path.insert(0, str(Path(__file__).parent / "report"))
from sample_run import write_sample_run  # noqa: E402


def _json(argv, capsys) -> dict:
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_tasks_and_devices_print_versioned_json(capsys):
    tasks = _json(["tasks", "--json"], capsys)
    assert tasks["schema_version"] == SCHEMA_VERSION
    assert "zoo:lenet5-digits" in {t["name"] for t in tasks["tasks"]}
    devices = _json(["devices", "--json"], capsys)
    by_name = {d["name"]: d for d in devices["devices"]}
    assert devices["schema_version"] == SCHEMA_VERSION
    assert by_name["cortex-m7"]["accelerates"]["int8"] is True
    assert by_name["cortex-m7"]["ram_mb"] > 0


def test_recommend_json_is_the_recommendation_written_into_results(tmp_path, capsys):
    write_sample_run(tmp_path)
    rec = _json(["recommend", str(tmp_path), "--device", "rpi4", "--max-drop", "5",
                 "--json"], capsys)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert rec["schema_version"] == saved["schema_version"] == SCHEMA_VERSION
    assert rec["candidate"] == saved["recommendation"]["candidate"]
    assert rec["reasons"] and rec["device"] == saved["recommendation"]["device"]


def test_study_json_prints_results_json_and_nothing_else(tmp_path, capsys):
    plan = tmp_path / "plan.yaml"
    plan.write_text("int8-dynamic:\n  - kind: int8_dynamic\n")
    out = tmp_path / "run"
    run = _json(["study", "--task", "zoo:lenet5-digits", "--plan", str(plan), "--threads", "1",
                 "--out", str(out), "--json"], capsys)
    assert run == json.loads((out / "results.json").read_text())
    assert run["schema_version"] == SCHEMA_VERSION
    assert [c["name"] for c in run["candidates"]] == ["int8-dynamic"]


def test_shell_completion_completes_command_names():
    env = {**os.environ, "_EDGESHRINK_COMPLETE": "complete_bash",
           "COMP_WORDS": "edgeshrink stu", "COMP_CWORD": "1"}
    script = Path(sys.executable).with_name("edgeshrink")  # the console script's own name
    got = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert got.stdout.split() == ["study"], got.stderr


def test_a_study_log_line_gives_the_eta_from_the_candidates_done():
    from edgeshrink.commands.study import _eta

    assert _eta(time.monotonic() - 30, 3, 4) in ("ETA 0m10s", "ETA 0m09s")
    assert _eta(time.monotonic(), 0, 4) == "" and _eta(time.monotonic() - 5, 4, 4) == ""

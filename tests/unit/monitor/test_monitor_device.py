"""The monitor as a device program: no torch (nor any of edgeshrink's host side), inside the
bench zipapp, JSON alert lines and exit codes, bad input is one sentence and exit 2 with
nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from monitor_models import inputs, make_classifier

from edgeshrink.bench.portable import write_pyz

SRC = Path(__file__).resolve().parents[3] / "src"

BLOCKER = """
import sys

FOREIGN = {"torch", "typer", "click", "rich", "onnx", "onnxscript", "yaml", "psutil",
           "sklearn", "torch_pruning", "plotly", "matplotlib", "scipy", "jinja2"}


class Blocker:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        ours_ok = name in ("edgeshrink", "edgeshrink.errors") or name.startswith(
            ("edgeshrink.bench", "edgeshrink.monitor")) and name != "edgeshrink.bench.merge"
        if top in FOREIGN or (top == "edgeshrink" and not ours_ok):
            raise ModuleNotFoundError(f"blocked on the device: {name}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""


@pytest.fixture(scope="module")
def device_env(tmp_path_factory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("device-site")
    (site / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(SRC)])}


def _run(args: list, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def _args(clf, state: Path, data: Path, *extra) -> list:
    return ["run", clf["model"], "--profile", clf["profile"], "--state", state, "--inputs",
            data, *extra]


def test_blocker_blocks_torch_and_the_host_side(device_env):
    probe = ("import importlib\nfor n in ('torch', 'edgeshrink.results', 'edgeshrink.report',"
             " 'edgeshrink.monitor.cli'):\n    try:\n        importlib.import_module(n); "
             "print(n, 'ok')\n    except ImportError:\n        print(n, 'blocked')\n")
    status = dict(line.split() for line in _run(["-c", probe], device_env).stdout.splitlines())
    assert status == {"torch": "blocked", "edgeshrink.results": "blocked",
                      "edgeshrink.report": "blocked", "edgeshrink.monitor.cli": "ok"}


def test_python_m_monitor_runs_without_torch_and_alerts(clf, device_env, tmp_path):
    np.savez(tmp_path / "clean.npz", X=inputs(400, seed=30), ids=np.arange(400))
    state = tmp_path / "s.sqlite"
    proc = _run(["-m", "edgeshrink.monitor", *_args(clf, state, tmp_path / "clean.npz")],
                device_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and state.stat().st_size <= 64 * 1024
    np.savez(tmp_path / "shifted.npz", X=inputs(400, seed=31, scale=0.3))
    alerts = tmp_path / "alerts"
    proc = _run(["-m", "edgeshrink.monitor", *_args(clf, state, tmp_path / "shifted.npz",
                                                     "--alert-dir", alerts)], device_env)
    assert proc.returncode == 3, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["alert"] == "drift" and lines[0]["samples"] > 400
    assert len(list(alerts.glob("alert-*.json"))) == len(lines)
    proc = _run(["-m", "edgeshrink.monitor", "status", "--profile", clf["profile"], "--state",
                 state], device_env)
    status = json.loads(proc.stdout)
    assert status["samples"] == 800 and status["alerts"][0]["alert"] == "drift"


def test_the_bench_zipapp_also_monitors_and_still_benches(clf, device_env, tmp_path):
    pyz = write_pyz(tmp_path / "edgeshrink-bench.pyz")
    env = {**device_env, "PYTHONPATH": device_env["PYTHONPATH"].split(os.pathsep)[0]}
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    np.savez(incoming / "001.npz", X=inputs(300, seed=32))
    state = tmp_path / "s.sqlite"
    proc = _run([pyz, "monitor", *_args(clf, state, incoming)], env)
    assert proc.returncode == 0, proc.stderr
    np.savez(incoming / "002.npz", X=inputs(300, seed=33))  # a folder: only the new file
    proc = _run([pyz, "monitor", *_args(clf, state, incoming)], env)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(_run([pyz, "monitor", "status", "--profile", clf["profile"],
                              "--state", state], env).stdout)
    assert status["samples"] == 600
    proc = _run([pyz, clf["model"], "--runs", "3", "--json"], env)
    assert proc.returncode == 0 and json.loads(proc.stdout)["latency_ms"]["count"] == 3


def test_late_labels_through_the_cli(clf, tmp_path, capsys):
    from edgeshrink.monitor.cli import main

    x = inputs(300, seed=34)
    np.savez(tmp_path / "x.npz", X=x, ids=np.arange(300))
    state = tmp_path / "s.sqlite"
    assert main([str(a) for a in _args(clf, state, tmp_path / "x.npz")]) == 0
    y = (x @ clf["w"]).argmax(1)
    np.savez(tmp_path / "y.npz", ids=np.arange(300), labels=y)
    common = ["--profile", str(clf["profile"]), "--state", str(state)]
    assert main(["label", *common, "--labels", str(tmp_path / "y.npz")]) == 0
    capsys.readouterr()
    assert main(["status", *common]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["accuracy"]["n"] == 300 and status["accuracy"]["value"] == 1.0


@pytest.mark.parametrize("case, message", [
    ("no_model", "does not exist"),
    ("no_inputs", "does not exist"),
    ("not_npz", "not a readable .npz"),
    ("wrong_width", "cannot run"),
    ("bad_profile", "not valid JSON"),
    ("bad_state", "not a usable SQLite"),
    ("bad_labels", "'ids' and 'labels'"),
    ("mismatched", "'labels' must be 50 integers"),
    ("other_model", "not the file the profile was made for"),
])  # fmt: skip
def test_bad_input_is_one_sentence_exit_2_and_nothing_written(case, message, clf, tmp_path,
                                                              capsys):
    from edgeshrink.monitor.cli import main

    good = tmp_path / "x.npz"
    np.savez(good, X=inputs(50, seed=35))
    state = tmp_path / "s.sqlite"
    args = _args(clf, state, good)
    if case == "no_model":
        args[1] = tmp_path / "gone.onnx"
    elif case == "no_inputs":
        args[-1] = tmp_path / "gone.npz"
    elif case == "not_npz":
        (tmp_path / "x.npz").write_text("hello")
    elif case == "wrong_width":
        np.savez(good, X=np.zeros((5, 7), np.float32))
    elif case == "bad_profile":
        (tmp_path / "p.json").write_text("{")
        args[3] = tmp_path / "p.json"
    elif case == "bad_state":
        state.write_bytes(b"garbage" * 200)
    elif case == "bad_labels":
        np.savez(tmp_path / "y.npz", labels=np.zeros(3, np.int64))
        args += ["--labels", tmp_path / "y.npz"]
    elif case == "other_model":
        args[1] = make_classifier(tmp_path / "other.onnx", seed=3, noise=0.5)
    elif case == "mismatched":
        np.savez(good, X=inputs(50, seed=35), labels=np.zeros(7, np.int64))
    before = state.read_bytes() if state.exists() else None
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert (state.read_bytes() if state.exists() else None) == before


def test_edgeshrink_monitor_on_the_host_is_the_same_program(clf, tmp_path):
    from edgeshrink.cli import main

    np.savez(tmp_path / "x.npz", X=inputs(300, seed=36, scale=0.3))
    with pytest.raises(SystemExit) as exc:
        main(["monitor", *map(str, _args(clf, tmp_path / "s.sqlite", tmp_path / "x.npz"))])
    assert exc.value.code == 3


def test_profile_subcommand_writes_a_profile(tmp_path):
    from edgeshrink.monitor.cli import main

    model = make_classifier(tmp_path / "m.onnx")
    ref = make_classifier(tmp_path / "ref.onnx", seed=5, noise=0.1)
    np.savez(tmp_path / "eval.npz", X=inputs(600, seed=37), labels=np.zeros(600, np.int64))
    assert main(["profile", str(model), "--inputs", str(tmp_path / "eval.npz"), "--reference",
                 str(ref), "--out", str(tmp_path / "p.json"), "--window", "100", "--step",
                 "20", "--horizon", "1000", "--streams", "50"]) == 0
    prof = json.loads((tmp_path / "p.json").read_text())
    assert prof["kind"] == "classifier" and 0.8 < prof["agreement"] < 1.0
    assert prof["calibration"]["window"] == 100 and prof["thresholds"]["threshold"] > 2

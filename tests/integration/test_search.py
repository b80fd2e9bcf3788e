"""`edgeshrink search` on a real zoo task: embedded storage, the CLI's refusals and exit 3,
and (where EDGESHRINK_TEST_PG names a PostgreSQL server, as `.ci/run` does) two workers and a
worker killed with -9 mid-trial."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from edgeshrink.config import config_from_dict
from edgeshrink.search import SearchSettings, open_storage, render_results, run_search
from edgeshrink.search.engine import create_search, trial_key

PG = os.environ.get("EDGESHRINK_TEST_PG")
TASK = "zoo:lenet5-digits"


def settings(out, trials=4, **kw):
    return SearchSettings(task=TASK, device="cortex-m7", trials=trials, out=str(out),
                          constraints={"max_drop": 2.0}, threads=(1,), budget_s=0.05,
                          max_epochs=0, initial=4, **kw)


def complete(study):
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def recipes(study):
    return sorted(json.dumps(t.user_attrs["record"]["recipe"]) for t in complete(study))


@pytest.fixture(scope="module")
def embedded(digits_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    run = run_search(settings(out, trials=4), task=digits_task)
    return run, out


def test_embedded_search_lands_in_results_json(embedded):
    run, out = embedded
    assert (out / "search.journal").is_file()
    data = json.loads((out / "results.json").read_text())
    assert data["baseline"]["name"] == "baseline" and len(data["candidates"]) == 4
    for c in data["candidates"]:
        path = out / c["artifact"]
        assert path.is_file() and c["size_bytes"] == path.stat().st_size  # measured on it
        recipe = tuple(config_from_dict(d) for d in c["recipe"])
        assert [d["kind"] for d in c["recipe"]] == [r.kind for r in recipe]
        s = c["notes"]["search"]
        assert s["metric_drop"] == c["metric_drop"]
        assert s["latency_source"] == "estimate"  # cortex-m7 is not this host
    # the first trial is the seed "plain INT8" (sensitivity seeds are enqueued first)
    assert [d["kind"] for d in data["candidates"][0]["recipe"]] == ["int8_static"]
    assert set(data["pareto"]) <= {c["name"] for c in [data["baseline"], *data["candidates"]]}


def test_embedded_study_has_exactly_the_trials_asked(embedded):
    import optuna

    _, out = embedded
    study = optuna.load_study(study_name="edgeshrink-search", storage=open_storage(None, out))
    keys = [trial_key(t) for t in complete(study)]
    assert sorted(keys) == list(range(4)) and len(set(recipes(study))) == 4


def cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "edgeshrink", "search", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.mark.parametrize("args, says", [
    (["--trials", "0"], "--trials"),
    (["--device", "toaster"], "unknown device"),
    (["--storage", "mongodb://db/x"], "--storage"),
    (["--storage", "postgresql://u@h/db"], "psycopg"),
    (["--join"], "--join needs the --storage"),
    (["--priority", "beauty"], "--priority"),
    (["--max-size", "big"], "not a size"),
    (["--workers", "0"], "--workers"),
    (["--bench-json", "no-such-bench.json"], "does not exist"),
    (["--resume"], "no search to continue"),
])
def test_bad_options_exit_2_before_any_work(tmp_path, args, says):
    out = tmp_path / "never"
    base = ["--device", "cortex-m7"] if "--device" not in args else []
    got = cli("--task", "zoo:nope-not-loaded", "--out", str(out), *base, *args)
    assert got.returncode == 2, got.stderr
    assert says in got.stderr and "Traceback" not in got.stderr
    assert len(got.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_trial_a_device_bench_measured_takes_its_latency(embedded, tmp_path):
    _, first = embedded
    bench = tmp_path / "pi.json"  # stands in for a file `edgeshrink bench` wrote on the device
    got = subprocess.run([sys.executable, "-m", "edgeshrink", "bench", "--runs", "20", "--out",
                          str(bench), str(first / "artifacts" / "trial-000.onnx")],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert got.returncode == 0, got.stderr[-2000:]
    data = json.loads(bench.read_text())
    p50 = data["latency_ms"]["p50"]
    # measured on this x86 host: for a Cortex-M7 it is another machine's latency and is left out
    out = tmp_path / "m"
    got = cli("--task", TASK, "--device", "cortex-m7", "--trials", "1", "--finetune-epochs",
              "0", "--max-drop", "2", "--bench-json", str(bench), "--out", str(out))
    assert got.returncode == 0, got.stderr[-2000:]
    (trial,) = json.loads((out / "results.json").read_text())["candidates"]
    assert trial["notes"]["search"]["latency_source"] == "estimate"
    # for an x86 device, a JSON without machine facts (as older benches wrote) is taken at
    # its word (with them, the CI host's CPU would decide)
    data.pop("machine")
    bench.write_text(json.dumps(data))
    out = tmp_path / "s"  # the same first trial (plain INT8) builds the same file again
    got = cli("--task", TASK, "--device", "x86-xeon-2vcpu", "--trials", "1", "--finetune-epochs",
              "0", "--max-drop", "2", "--bench-json", str(bench), "--out", str(out))
    assert got.returncode == 0, got.stderr[-2000:]
    (trial,) = json.loads((out / "results.json").read_text())["candidates"]
    assert trial["notes"]["search"]["latency_source"] == "pi.json"
    assert trial["notes"]["search"]["latency_ms"] == pytest.approx(p50)
    assert trial["latency_ms"]["source"] == "pi.json" and trial["latency_ms"]["p50"] == p50
    # built for the device's CPU (its profile's flags), as study --device builds
    assert trial["notes"]["int8_format"]["decided_by"] == "device x86-xeon-2vcpu"


def test_resume_fails_a_dead_workers_journal_trial_and_runs_it_again(digits_task, tmp_path):
    from edgeshrink.search.storage import mark_worker

    out = tmp_path / "r"
    storage = open_storage(None, out)
    study = create_search(settings(out, trials=2), storage, "edgeshrink-search", task=digits_task)
    from edgeshrink.search.space import SearchSpace, suggest

    dead = study.ask()  # the first seed, asked by a worker that then died (kill -9)
    suggest(dead, SearchSpace.from_dict(study.user_attrs["edgeshrink"]["space"]))
    mark_worker(dead)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout
    dead.set_user_attr("process", {**dead.user_attrs["process"], "pid": int(gone)})
    got = cli("--resume", "--out", str(out))
    assert got.returncode == 0, got.stderr[-2000:]
    import optuna

    study = optuna.load_study(study_name="edgeshrink-search", storage=open_storage(None, out))
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[dead.number] == "FAIL"
    assert sorted(trial_key(t) for t in complete(study)) == [0, 1]
    (retry,) = [t for t in complete(study) if t.system_attrs.get("failed_trial") == dead.number]
    assert retry.params["precision"] == "int8"  # the seed the dead worker had: plain INT8
    assert len(json.loads((out / "results.json").read_text())["candidates"]) == 2
    assert (out / "report.html").is_file()


def test_a_budget_no_trial_meets_exits_3_naming_the_limit_and_the_nearest(tmp_path):
    got = cli("--task", TASK, "--device", "cortex-m7", "--max-size", "2KB", "--trials", "1",
              "--finetune-epochs", "0", "--out", str(tmp_path / "s"))
    assert got.returncode == 3, got.stderr[-2000:]
    line = [x for x in got.stderr.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "max_size cannot be met" in line[0], got.stderr[-2000:]
    assert "nearest on size: trial-00" in line[0]
    assert json.loads((tmp_path / "s" / "results.json").read_text())["candidates"]


# ------------------------------------------------------------------ PostgreSQL workers

needs_pg = pytest.mark.skipif(not PG, reason="EDGESHRINK_TEST_PG is not set (.ci/run sets it)")


def join_cmd(name):
    return [sys.executable, "-m", "edgeshrink", "search", "--join", "--storage", PG,
            "--study-name", name, "--heartbeat", "1"]


def spawn(name):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(join_cmd(name), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


@needs_pg
def test_two_workers_finish_n_trials_together_none_lost_or_duplicated(digits_task, tmp_path):
    import optuna

    name = f"two-{uuid.uuid4().hex[:8]}"
    s = settings(tmp_path, trials=4)
    study = create_search(s, open_storage(PG, tmp_path, heartbeat_s=1), name, task=digits_task)
    workers = [spawn(name), spawn(name)]  # started together: neither finishes alone first
    assert [w.wait(timeout=400) for w in workers] == [0, 0], workers[0].stderr.read()[-2000:]
    study = optuna.load_study(study_name=name, storage=open_storage(PG, tmp_path))
    done = complete(study)
    assert sorted(trial_key(t) for t in done) == [0, 1, 2, 3]
    run = render_results(study, s.out)
    assert len(set(recipes(study))) == 4 and len(run.candidates) == 4
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both workers ran trials


@needs_pg
def test_kill_9_mid_trial_the_trial_is_retried_and_results_match_one_worker(
        digits_task, embedded, tmp_path):
    import optuna
    from optuna.trial import TrialState

    name = f"kill-{uuid.uuid4().hex[:8]}"
    s = settings(tmp_path / "pg", trials=4)
    storage = open_storage(PG, tmp_path, heartbeat_s=1)
    study = create_search(s, storage, name, task=digits_task)
    victim = spawn(name)
    deadline = time.time() + 180
    while time.time() < deadline:  # kill it while its first trial is being built/measured
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if "recipe" in t.user_attrs]  # set inside the trial, after its heartbeat began
        if running or victim.poll() is not None:
            break
        time.sleep(0.1)
    assert running, victim.stderr.read() if victim.poll() is not None else "no trial started"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed = running[0].number
    survivor = spawn(name)
    try:
        code = survivor.wait(timeout=400)
    except subprocess.TimeoutExpired:
        survivor.kill()
        code = "timeout"
    assert code == 0, survivor.stderr.read()[-3000:]
    study = optuna.load_study(study_name=name, storage=storage)
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    assert [t.number for t in failed] == [killed]
    retried = [t for t in complete(study) if t.system_attrs.get("failed_trial") == killed]
    assert len(retried) == 1 and retried[0].params == failed[0].params
    assert sorted(trial_key(t) for t in complete(study)) == [0, 1, 2, 3]
    # the same search with one worker and no kill (the embedded one) completed the same recipes
    import optuna as o

    ref = o.load_study(study_name="edgeshrink-search", storage=open_storage(None, embedded[1]))
    assert recipes(study) == recipes(ref)
    run = render_results(study, s.out)
    assert sorted(c.name for c in run.candidates) == [f"trial-{k:03d}" for k in range(4)]

"""The journal file has no heartbeat: a dead local worker's RUNNING trial is failed and
re-queued with its parameters by the next worker that looks."""

import os
import subprocess
import sys

import optuna
from optuna.trial import TrialState

from edgeshrink.search.engine import device_latency
from edgeshrink.search.storage import (
    fail_dead_local_trials,
    has_heartbeat,
    mark_worker,
    open_storage,
)


def test_dead_workers_trials_fail_and_are_requeued_live_ones_stay(tmp_path):
    storage = open_storage(None, tmp_path)
    assert not has_heartbeat(storage)  # optuna 5.0: JournalStorage implements no heartbeat
    study = optuna.create_study(storage=storage, study_name="s")
    dead, live = study.ask(), study.ask()
    dead.suggest_categorical("precision", ["fp32", "int8"])
    mark_worker(dead)
    mark_worker(live)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    proc = {**dead.user_attrs["process"], "pid": int(child.stdout)}  # that process is gone
    dead.set_user_attr("process", proc)
    assert fail_dead_local_trials(study) == [dead.number]
    by_number = {t.number: t for t in study.get_trials()}
    assert by_number[dead.number].state == TrialState.FAIL
    assert by_number[live.number].state == TrialState.RUNNING
    (retry,) = [t for t in by_number.values() if t.state == TrialState.WAITING]
    assert retry.system_attrs["failed_trial"] == dead.number
    assert retry.params == by_number[dead.number].params
    assert fail_dead_local_trials(study) == []  # nothing left to fail
    assert live.user_attrs["process"]["pid"] == os.getpid()


def test_a_reused_pid_is_not_the_worker():
    study = optuna.create_study()
    t = study.ask()
    mark_worker(t)
    t.set_user_attr("process", {**t.user_attrs["process"], "start": "1"})  # another process
    assert fail_dead_local_trials(study) == [t.number]


class _Rec:
    name = "trial-003"
    notes = {"sha256": "ab"}


def test_device_latency_only_for_the_file_the_bench_measured():
    bench = [{"sha256": "ab", "threads": 4, "p50": 2.0, "source": "pi4.json"},
             {"sha256": "ab", "threads": 1, "p50": 5.0, "source": "pi4-1t.json"},
             {"sha256": "cd", "threads": 1, "p50": 9.0, "source": "pi4.json"}]
    assert device_latency(_Rec(), bench, 1) == {"trial-003": (5.0, "pi4-1t.json")}
    # no bench at these threads: the last one that measured the file (as study's merge)
    assert device_latency(_Rec(), bench, 2) == {"trial-003": (5.0, "pi4-1t.json")}
    assert device_latency(_Rec(), bench[2:], 1) == {}

"""The monitor on synthetic and real streams: alarms when it should, quiet when it should
not, bounded and atomic state, late labels, the shadow check."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from monitor_models import inputs

from edgeshrink.errors import UserError
from edgeshrink.monitor import Monitor, MonitorOptions, Profile
from edgeshrink.monitor.state import StateStore


def _logits(clf, x):
    return x @ clf["w"]


def _feed(mon, clf, x, labels=None, batch=1, ids=None):
    alerts = []
    for s in range(0, len(x), batch):
        y = None if labels is None else labels[s:s + batch]
        i = None if ids is None else ids[s:s + batch]
        alerts += [(mon.meta["samples"], a)
                   for a in mon.observe(_logits(clf, x[s:s + batch]), labels=y, ids=i)]
    return alerts


def test_clean_stream_is_quiet_and_a_shift_is_caught_within_500_samples(clf, tmp_path):
    mon = Monitor(clf["profile"], tmp_path / "s.sqlite")
    assert _feed(mon, clf, inputs(2000, seed=10)) == []  # unseen clean data: no alert
    alerts = _feed(mon, clf, inputs(600, seed=11, scale=0.6))  # weaker inputs: less confident
    kinds = [a["alert"] for _, a in alerts]
    assert kinds.count("drift") == 1, alerts  # raised once while the shift lasts
    at = alerts[kinds.index("drift")][0]
    assert at - 2000 <= 500
    assert alerts[0][1]["value"] > alerts[0][1]["threshold"] == mon.profile.thresholds["threshold"]
    mon.close()


def test_class_prior_shift_is_caught_by_the_class_histogram(clf, tmp_path):
    mon = Monitor(clf["profile"])
    x = inputs(4000, seed=12)
    pred = _logits(clf, x).argmax(1)
    skewed = np.concatenate([x[pred == 0][:150], x[pred != 0][:150]])[
        np.random.default_rng(0).permutation(300)]  # class 0: ~20 % -> 50 %
    _feed(mon, clf, inputs(500, seed=13))
    alerts = _feed(mon, clf, skewed, batch=10)
    assert [a["test"] for _, a in alerts if a["alert"] == "drift"][0].endswith("class")


def test_state_stays_small_and_continues_across_processes(clf, tmp_path):
    path = tmp_path / "s.sqlite"
    mon = Monitor(clf["profile"], path)
    x = inputs(20_000, seed=14)
    _feed(mon, clf, x, batch=50, ids=np.arange(20_000))
    mon.close()
    assert path.stat().st_size <= 64 * 1024
    again = Monitor(clf["profile"], path)
    assert again.meta["samples"] == 20_000 and len(again.series) <= 100
    assert again.series[0]["n"] < 2_000 and again.series[-1]["n"] == 20_000  # thinned history
    _feed(again, clf, inputs(100, seed=15), batch=50)
    again.close()
    assert Monitor(clf["profile"], path).meta["samples"] == 20_100


def test_a_save_that_fails_leaves_the_previous_state(clf, tmp_path):
    path = tmp_path / "s.sqlite"
    mon = Monitor(clf["profile"], path)
    _feed(mon, clf, inputs(300, seed=16), batch=50)
    mon.close()
    before = StateStore(path).load()
    _feed(mon, clf, inputs(300, seed=17), batch=50)
    mon.series.append({"bad": object()})  # not JSON: the save fails halfway through
    with pytest.raises(TypeError):
        mon.flush()
    after = StateStore(path).load()
    assert after["series"] == before["series"] and after["meta"] == before["meta"]
    assert all(after["buffers"][k].tobytes() == v.tobytes() for k, v in before["buffers"].items())
    assert not (tmp_path / "s.sqlite-journal").exists()
    assert StateStore(path).load()["meta"]["samples"] == 300


def test_late_labels_feed_accuracy_and_the_change_detector(clf, tmp_path):
    opts = MonitorOptions(max_drop=0.05)
    mon = Monitor(clf["profile"], tmp_path / "s.sqlite", opts)
    x = inputs(3000, seed=18)
    truth = _logits(clf, x).argmax(1)
    _feed(mon, clf, x[:1000], batch=20, ids=np.arange(1000))
    assert mon.label(np.arange(1000), truth[:1000]) == []
    # only the last `pending` predictions wait for labels: the state stays bounded
    assert mon.meta["labelled"] == opts.pending == mon.meta["correct"]
    wrong = (truth[1000:] + 1) % 5  # the model is now wrong on everything it sees
    alerts = _feed(mon, clf, x[1000:1600], labels=wrong[:600], batch=20)
    kinds = {a["alert"] for _, a in alerts}
    assert {"accuracy", "accuracy_change"} <= kinds, kinds
    assert mon.label(np.array([10**9]), np.array([0])) == []  # an id never seen: ignored


def test_shadow_disagreement_raises_agreement_alert(clf, tmp_path):
    prof = Profile.load(clf["profile"])
    prof.agreement = 0.99
    mon = Monitor(prof)
    x = inputs(600, seed=19)
    lg = _logits(clf, x)
    alerts = []
    for s in range(0, 600, 10):
        ref = lg[s:s + 10][:, ::-1]  # a reference that disagrees
        alerts += mon.observe(lg[s:s + 10], reference=ref)
    assert "agreement" in {a["alert"] for a in alerts}


def test_alert_files_are_dropped(clf, tmp_path):
    mon = Monitor(clf["profile"], alert_dir=tmp_path / "alerts")
    _feed(mon, clf, inputs(400, seed=20, scale=0.3), batch=20)
    files = sorted((tmp_path / "alerts").glob("alert-*.json"))
    assert files and json.loads(files[0].read_text())["alert"] == "drift"


def test_state_of_another_profile_or_a_damaged_one_is_refused(clf, tmp_path):
    path = tmp_path / "s.sqlite"
    mon = Monitor(clf["profile"], path)
    _feed(mon, clf, inputs(100, seed=21), batch=50)
    mon.close()
    other = Profile.load(clf["profile"])
    other.thresholds = {**other.thresholds, "threshold": 1.0}
    with pytest.raises(UserError, match="another profile"):
        Monitor(other, path)
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(UserError, match="not a usable SQLite"):
        Monitor(clf["profile"], bad)
    with pytest.raises(UserError, match="not an edgeshrink monitor profile"):
        Profile.from_dict({"kind": "classifier"})
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_profile_round_trips_through_json(clf):
    prof = Profile.load(clf["profile"])
    again = Profile.from_dict(json.loads(json.dumps(prof.to_dict())))
    assert again.to_dict() == prof.to_dict()
    assert prof.kind == "classifier" and 0.85 < prof.accuracy < 0.95
    assert set(prof.thresholds) >= {"threshold", "bonferroni", "bootstrap", "page_hinkley"}

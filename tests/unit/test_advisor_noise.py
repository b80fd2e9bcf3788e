"""The advisor and the noise of a finite evaluation set; sizes of what ships; failed picks."""

from __future__ import annotations

import numpy as np
import pytest
from test_advisor import LENET, cand, study

from edgeshrink.advisor import Constraints, advise_run, recommend, ship_size
from edgeshrink.devices import load_profile
from edgeshrink.errors import UserError
from edgeshrink.measure.intervals import record_intervals
from edgeshrink.results import RunRecord, load_run, save_run

N = 1000


def _scores(lost: int, gained: int) -> np.ndarray:
    """Right on 950 of 1000 samples like the baseline, minus ``lost``, plus ``gained``."""
    s = np.zeros(N)
    s[:950] = 100.0
    s[:lost] = 0.0
    s[N - gained:] = 100.0
    return s


def _noisy_study(tmp_path, lost_a: int, gained_a: int, lost_b: int, gained_b: int) -> RunRecord:
    """Two int8 candidates of nearly the same size: ``a`` 1 % larger, ``b`` smaller."""
    base = cand("baseline", drop=0.0, **{k: LENET[k] for k in ("params", "macs")})
    a = cand("int8-a", drop=0.0, params=61_706, macs=416_000, precision="int8")
    b = cand("int8-b", drop=0.0, params=61_000, macs=416_000, precision="int8")
    for c, scores in ((base, _scores(0, 0)), (a, _scores(lost_a, gained_a)),
                      (b, _scores(lost_b, gained_b))):
        extra = record_intervals(tmp_path, c.name, scores,
                                 baseline=None if c is base else "baseline")
        c.metric.update(value=float(scores.mean()), **extra)
        c.metric_drop = 95.0 - float(scores.mean())
        (tmp_path / c.artifact).write_bytes(c.name.encode())
    run = RunRecord(task="t", metric={"name": "accuracy", "higher_is_better": True},
                    baseline=base, candidates=[a, b])
    save_run(run, tmp_path)
    return run


def test_candidates_inside_the_noise_are_tied_and_the_priority_decides(tmp_path):
    # a loses 1 sample, b loses 8 and wins 1 back: 0.6 points apart, exact McNemar p = 0.07
    _noisy_study(tmp_path, 1, 0, 8, 1)
    rec = advise_run(tmp_path, "rpi4", Constraints(max_drop=2.0), "size")
    assert rec["candidate"] == "int8-b"  # the smaller one: before, the 0.6 points decided
    assert [t["name"] for t in rec["tied"]] == ["int8-a"]
    assert rec["tied"][0]["p"] == pytest.approx(0.0703, abs=1e-3)
    assert rec["reasons"][1].startswith("Tied on accuracy") and "decided on size" in rec["reasons"][1]
    why = {a["name"]: a["why_not"] for a in rec["alternatives"]}
    assert why["int8-a"].startswith("tied on accuracy with int8-b (exact McNemar p = 0.07")


def test_a_difference_outside_the_noise_still_decides(tmp_path):
    _noisy_study(tmp_path, 1, 0, 30, 0)  # 2.9 points apart: p < 1e-6
    rec = advise_run(tmp_path, "rpi4", Constraints(max_drop=5.0), "size")
    assert rec["candidate"] == "int8-a" and rec["tied"] == []


def test_priority_accuracy_breaks_a_tie_on_size(tmp_path):
    _noisy_study(tmp_path, 1, 0, 3, 0)
    rec = advise_run(tmp_path, "rpi4", Constraints(max_drop=2.0), "accuracy")
    assert rec["candidate"] == "int8-b"  # the smallest of those the samples cannot tell apart
    assert {t["name"] for t in rec["tied"]} == {"baseline", "int8-a"}


def test_max_drop_checks_the_upper_end_of_the_interval_unless_told_otherwise(tmp_path):
    run = _noisy_study(tmp_path, 1, 0, 8, 1)  # b: drop 0.7, interval up to ~1.2
    hi = run.get("int8-b").metric["drop_ci95"][1]
    assert 0.7 < hi < 1.5
    upper = recommend(run, "rpi4", Constraints(max_drop=0.8), "size")
    assert upper["candidate"] == "int8-a"
    point = recommend(run, "rpi4", Constraints(max_drop=0.8, drop_estimate="point"), "size")
    assert point["candidate"] == "int8-b"
    with pytest.raises(UserError, match="drop_estimate"):
        Constraints(drop_estimate="median")


def test_packed_size_counts_only_when_the_file_was_written_and_weights_live_in_ram():
    c = cand("int3", drop=0.5, params=61_706, macs=416_000, runtime="simulated", encoded=30_000)
    pi, mcu = load_profile("rpi4"), load_profile("cortex-m7")
    assert ship_size(c, pi) == (c.size_bytes, "file")  # a computed size: no file backs it
    c.notes["packed_artifact"] = "artifacts/int3.eskp"
    assert ship_size(c, pi) == (30_000, "packed file")
    assert ship_size(c, mcu) == (c.size_bytes, "file")  # executes from flash: dense file


def test_failed_recommend_clears_the_old_pick_and_records_the_nearest(tmp_path):
    run = study(**LENET)
    for c in run.all_candidates():
        (tmp_path / c.artifact).write_bytes(c.name.encode())
    save_run(run, tmp_path)
    advise_run(tmp_path, "rpi4", Constraints(max_drop=1.0))
    assert (tmp_path / "recommended").is_dir()
    with pytest.raises(UserError, match="max_size cannot be met"):
        advise_run(tmp_path, "rpi4", Constraints(max_size_bytes=1_000, max_latency_ms=1e-6))
    assert not (tmp_path / "recommended").exists()
    stored = load_run(tmp_path).recommendation
    assert stored["candidate"] is None and "max_size" in stored["error"]
    nearest = {n["constraint"]: n for n in stored["nearest"]}
    assert set(nearest) == {"max_size", "max_latency"}
    assert nearest["max_size"]["candidate"] == "structured-50-int8"
    assert nearest["max_size"]["value"] == min(
        e["size_bytes"] for e in stored["estimates"].values())


def test_a_packed_pick_ships_its_packed_file_and_decoder(tmp_path):
    run = study(**LENET)
    small = run.get("unstructured-90")
    small.notes["packed_artifact"] = "unstructured-90.eskp"
    small.size_encoded_bytes = 5_000  # smaller than any dense file
    for c in run.all_candidates():
        (tmp_path / c.artifact).write_bytes(c.name.encode())
    (tmp_path / "unstructured-90.eskp").write_bytes(b"ESKP packed")
    save_run(run, tmp_path)
    rec = advise_run(tmp_path, "rpi4", Constraints(max_drop=None), "size")
    assert rec["candidate"] == "unstructured-90"
    assert rec["estimates"]["unstructured-90"]["size_bytes"] == small.size_encoded_bytes
    shipped = sorted(p.name for p in (tmp_path / "recommended").iterdir())
    assert shipped == ["README.md", "unpack_eskp.py", "unstructured-90.eskp",
                       "unstructured-90.onnx"]

import json
import os

import pytest

from edgeshrink.errors import UserError
from edgeshrink.results import CandidateRecord, RunRecord, load_run, pareto_front, save_run


def rec(name, value, stored, p50):
    return CandidateRecord(
        name=name, recipe=[], family="pruning", metric={"name": "accuracy", "value": value},
        metric_drop=0.0, size_bytes=stored * 2, size_compressed_bytes=stored,
        latency_ms={"p50": p50, "p90": p50, "threads": 2}, peak_memory_mb=1.0, params=1,
        sparsity=0.0, runtime="onnxruntime", artifact=f"artifacts/{name}.onnx",
    )


def brute_force_front(records):
    def dominates(a, b):
        ge = a.value >= b.value and a.stored_bytes <= b.stored_bytes and a.p50 <= b.p50
        gt = a.value > b.value or a.stored_bytes < b.stored_bytes or a.p50 < b.p50
        return ge and gt

    return [r.name for r in records if not any(dominates(o, r) for o in records)]


def test_pareto_front_matches_brute_force():
    import random

    rng = random.Random(0)
    records = [rec(f"c{i}", rng.randint(90, 99), rng.randint(1, 20), rng.randint(1, 9))
               for i in range(60)]
    front = pareto_front(records)
    assert front == brute_force_front(records)
    assert 0 < len(front) < len(records)


def test_pareto_front_simple_case():
    records = [rec("a", 99, 100, 5), rec("b", 98, 10, 5), rec("c", 97, 50, 6), rec("d", 99, 100, 5)]
    # c is dominated by b; a and d tie (neither strictly dominates the other).
    assert pareto_front(records) == ["a", "b", "d"]
    # lower-is-better metric flips the first objective
    assert pareto_front(records, higher_is_better=False) == ["b", "c"]


def test_run_round_trip_and_atomic_save(tmp_path):
    run = RunRecord(task="zoo:x", metric={"name": "accuracy"}, baseline=rec("baseline", 99, 5, 1),
                    candidates=[rec("p", 98, 2, 1)], pareto=["baseline", "p"])
    path = save_run(run, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left
    assert oct(os.stat(path).st_mode & 0o044) != "0o0"  # readable by others (not mkstemp's 0600)
    back = load_run(tmp_path)
    assert back.to_dict() == run.to_dict()
    assert json.loads(path.read_text())["candidates"][0]["name"] == "p"


def test_load_run_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_run(tmp_path / "missing")
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(UserError, match="not a valid edgeshrink results file"):
        load_run(tmp_path)

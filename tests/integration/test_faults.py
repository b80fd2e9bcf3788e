"""Fault injection (issue #15): a study killed with SIGKILL during training, export,
measurement or the write of results, resumed again and again, ends with exactly the
planned candidates and no file it recorded lost; a full disk leaves the previous state
intact with one sentence.

The kill points are drawn at random from the range each point is reached in this study
(seed: $EDGESHRINK_FAULT_SEED, default 15; the draw is printed). Every killed run is
killed for real (exit -9) and its non-interactive log is not empty.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PLAN = """\
int8-dyn:
  - {kind: int8_dynamic}
fp16:
  - {kind: fp16}
p50:
  - {kind: unstructured, sparsity: 0.5}
  - {kind: finetune, epochs: 1}
"""
EXPECTED = ["baseline", "int8-dyn", "fp16", "p50"]


def draw_chain(rng: random.Random) -> list[str]:
    """Kill points, each drawn from the occurrences still ahead after the previous kills.

    A clean run of PLAN writes results.json 4 times (once per candidate), measures each
    built candidate once, exports each at least once, and fine-tunes p50 in 19 optimizer
    steps (EDGESHRINK_FAULT=point:0 counts them). Killed at the r-th results write, the
    resumed run rebuilds candidates r..4; killed measuring the m-th of those, candidate
    k = r - 1 + m and the ones after it are left, each with an export; p50 is then never
    finished, so its fine-tuning always runs again.
    """
    r = rng.randint(1, 4)
    m = rng.randint(1, 5 - r)
    k = r - 1 + m
    return [f"results:{r}", f"measure:{m}", f"export:{rng.randint(1, 5 - k)}",
            f"train:{rng.randint(1, 19)}"]


def study_args(out: Path, plan: Path) -> list[str]:
    return ["study", "--task", "zoo:lenet5-digits", "--plan", str(plan), "--out", str(out),
            "--threads", "1", "--resume"]


def run_with_fault(args: list[str], fault: str | None, log: Path) -> int:
    env = {**os.environ, "EDGESHRINK_FAULT_BUDGET": "0.02",
           "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}
    env.pop("EDGESHRINK_FAULT", None)
    if fault:
        env["EDGESHRINK_FAULT"] = fault
    with open(log, "w") as err:
        return subprocess.run([sys.executable, str(HERE / "faults.py"), *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=err, timeout=600).returncode


def check_nothing_lost(out: Path) -> list[str]:
    """Every candidate results.json lists has every file the manifest recorded for it,
    byte for byte; results.json is strict JSON. Returns the candidate names."""
    manifest = json.loads((out / "edgeshrink-run.json").read_text())
    path = out / "results.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    names = [c["name"] for c in [data["baseline"], *data["candidates"]] if c]
    for name in names:
        assert manifest["candidates"][name], name
        for rel in manifest["candidates"][name]:
            digest = hashlib.sha256((out / rel).read_bytes()).hexdigest()
            assert digest == manifest["files"][rel], f"{rel} of {name} lost"
    return names


@pytest.fixture(scope="module")
def chained(tmp_path_factory):
    """Kill, resume-and-kill, ... then a last clean resume (what a user would do)."""
    tmp = tmp_path_factory.mktemp("faults")
    plan, out = tmp / "plan.yaml", tmp / "run"
    plan.write_text(PLAN)
    seed = int(os.environ.get("EDGESHRINK_FAULT_SEED", "15"))
    rng = random.Random(seed)
    faults = draw_chain(rng)
    print(f"fault chain (seed {seed}): {faults}")
    logs = []
    for i, fault in enumerate(faults):
        log = tmp / f"kill{i}.log"
        code = run_with_fault(study_args(out, plan), fault, log)
        assert code == -9, f"{fault}: exit {code}, not killed: {log.read_text()[-2000:]}"
        logs.append(log.read_text())
        check_nothing_lost(out)
    code = run_with_fault(study_args(out, plan), None, tmp / "final.log")
    assert code == 0, (tmp / "final.log").read_text()[-3000:]
    return out, plan, faults, logs, (tmp / "final.log").read_text()


def test_killed_study_resumes_to_the_planned_candidates_without_duplicates(chained):
    out, _, faults, logs, final = chained
    names = check_nothing_lost(out)
    assert names == EXPECTED  # each once, in plan order
    data = json.loads((out / "results.json").read_text())
    assert data["failed"] == []
    manifest = json.loads((out / "edgeshrink-run.json").read_text())
    assert sorted(manifest["candidates"]) == sorted(EXPECTED)
    leftovers = [p.name for p in out.rglob(".*")]
    assert leftovers == [], leftovers  # no temporary file of a killed write is left behind
    # every killed run's log says how far it got (flushed lines, not an empty file)
    for fault, log in zip(faults, logs, strict=True):
        assert "loaded; 3 candidates to build" in log, fault
        assert len(log.strip().splitlines()) >= 2, fault
    assert "done" in final


@pytest.mark.parametrize("full", ["results.json", "/artifacts/", "everything"])
def test_a_full_disk_leaves_the_previous_state_intact(full, chained, tmp_path, monkeypatch,
                                                      capsys):
    import edgeshrink.study.runner as runner
    from edgeshrink.cli import main

    src, plan, *_ = chained
    out = tmp_path / "run"
    shutil.copytree(src, out)
    plan2 = tmp_path / "plan2.yaml"
    plan2.write_text(PLAN + "int8-static:\n  - {kind: int8_static}\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    old_manifest = json.loads((out / "edgeshrink-run.json").read_text())
    monkeypatch.setitem(runner.run_study.__kwdefaults__, "budget_s", 0.02)
    monkeypatch.delenv("EDGESHRINK_DEBUG", raising=False)
    real_write = os.write

    def full_write(fd, data):  # as on a full disk: writes into the run folder fail
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target.startswith(str(out)) and (full == "everything" or full in target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_write)
    with pytest.raises(SystemExit) as info:
        main(study_args(out, plan2))
    monkeypatch.undo()
    err = capsys.readouterr().err
    errors = [x for x in err.splitlines() if x.startswith("error:")]
    assert info.value.code == 2, err[-2000:]
    assert len(errors) == 1 and "no space left on the device" in errors[0], err
    assert "Traceback" not in err
    for path, data in before.items():
        if path.name != "edgeshrink-run.json":  # the bookkeeping may have moved on ...
            assert path.read_bytes() == data, f"{path} changed"
    manifest = json.loads((out / "edgeshrink-run.json").read_text())
    for name in EXPECTED:  # ... but still vouches for every previous candidate's files
        for rel in old_manifest["candidates"][name]:
            assert manifest["files"][rel] == old_manifest["files"][rel]
    assert check_nothing_lost(out) == EXPECTED
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporary file left

"""Issue #15's fuzz suite: >= 200 generated bad inputs through every command, each ending
in exit code 2 and one sentence, with nothing written, no input modified, and no pickle
executed. Most run in-process (``edgeshrink.cli.main``); a handful as real processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_corpus import MARKER, Case, build  # noqa: E402

PLACEHOLDER = Path("/SANDBOX")
CASES = build(PLACEHOLDER)
SUBPROCESS = CASES[::45]  # a handful through the console entry point


def test_the_corpus_is_large_and_covers_every_command():
    assert len(CASES) >= 200
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {c.argv[0] for c in CASES}
    assert {"study", "prune", "quantize", "bench", "recommend", "report", "devices",
            "tasks"} <= commands


def _fill(text: str, d: Path) -> str:
    return text.replace("{d}", str(d))


def materialize(case: Case, d: Path) -> None:
    for rel, content in case.files.items():
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        else:
            path.write_bytes(content.encode() if isinstance(content, str) else content)


def tree(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def check(case: Case, d: Path, before: dict, code, err: str) -> None:
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2, f"{case.id}: exit {code}\n{err[-3000:]}"
    assert "Traceback" not in err, f"{case.id}\n{err[-3000:]}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{case.id}: {lines}"
    assert not (d / MARKER).exists(), f"{case.id}: a pickle was executed"
    assert tree(d) == before, f"{case.id}: the sandbox changed"


class WorkStarted(BaseException):
    """A bad input got as far as building candidates: fail the case at once."""


def guard_work(monkeypatch) -> None:
    import edgeshrink.study
    import edgeshrink.transforms

    def refuse(*_a, **_k):
        raise WorkStarted("a bad input was not refused before the work started")

    monkeypatch.setattr(edgeshrink.study, "run_study", refuse)
    monkeypatch.setattr(edgeshrink.transforms, "apply_recipe", refuse)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_exit_2_one_sentence_nothing_written(case, tmp_path, monkeypatch, capsys):
    from edgeshrink.cli import main

    guard_work(monkeypatch)
    materialize(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGESHRINK_DEBUG", raising=False)
    monkeypatch.delenv("EDGESHRINK_DEVICES", raising=False)
    for key, value in case.env.items():
        monkeypatch.setenv(key, _fill(value, tmp_path))
    before = tree(tmp_path)
    try:
        main([_fill(a, tmp_path) for a in case.argv])
        code = 0
    except SystemExit as exc:
        code = exc.code
    except WorkStarted as exc:
        pytest.fail(f"{case.id}: {exc}")
    check(case, tmp_path, before, code, capsys.readouterr().err)


@pytest.mark.parametrize("case", SUBPROCESS, ids=[c.id for c in SUBPROCESS])
def test_bad_input_through_the_console_script(case, tmp_path):
    materialize(case, tmp_path)
    env = {k: v for k, v in os.environ.items()
           if k not in ("EDGESHRINK_DEBUG", "EDGESHRINK_DEVICES")}
    env.update({k: _fill(v, tmp_path) for k, v in case.env.items()})
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2] / "src"),
                                         env.get("PYTHONPATH", "")])
    before = tree(tmp_path)
    result = subprocess.run([sys.executable, "-m", "edgeshrink",
                             *[_fill(a, tmp_path) for a in case.argv]],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    check(case, tmp_path, before, result.returncode, result.stderr)

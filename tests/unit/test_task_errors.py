"""A user's task file that fails (issue #15): one sentence naming the file, the line and the
exception, exit code 2, nothing written; --debug shows the traceback."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from edgeshrink.cli import main

PROGRESS = re.compile(r"\[\d\d:\d\d:\d\d\] ")  # progress lines of a non-interactive log

CASES = {
    "syntax": ("x = 1\ndef make(:\n    pass\n", "line 2: SyntaxError"),
    "import": ("import os\nimport no_such_module_xyz\n",
               "line 2: ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    "raises": ("def make():\n    x = 1\n    raise ValueError('bad data in make')\n",
               "running make(): line 3: ValueError: bad data in make"),
    "deep": ("def helper():\n    return {}['k']\n\ndef make():\n    return helper()\n",
             "line 2: KeyError: 'k'"),
    "exits": ("import sys\ndef make():\n    sys.exit(4)\n", "line 3: SystemExit: 4"),
    "arguments": ("def make(size, *, seed):\n    pass\n",
                  "task function make in {path} needs argument(s) size, seed"),
    "not-a-task": ("def make():\n    return 42\n", "returned int, not an edgeshrink Task"),
}


@pytest.mark.parametrize("case", CASES)
def test_task_file_errors_are_one_sentence_and_exit_2(case, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EDGESHRINK_DEBUG", raising=False)
    source, message = CASES[case]
    path = tmp_path / "mytask.py"
    path.write_text(source)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main(["study", "--task", f"{path}:make", "--out", str(out)])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert message.format(path=path) in err, err
    assert str(path) in err
    lines = [x for x in err.splitlines() if x.strip() and not PROGRESS.match(x)]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    assert not out.exists()
    assert path.read_text() == source


def test_debug_shows_the_traceback(tmp_path):
    path = tmp_path / "mytask.py"
    path.write_text(CASES["raises"][0])
    result = subprocess.run([sys.executable, "-m", "edgeshrink", "--debug", "study", "--task",
                             f"{path}:make", "--out", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: bad data in make" in result.stderr

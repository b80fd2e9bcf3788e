"""The README's quick start runs as printed: its Python block writes digits.npz and my.pt2,
and the files it writes are a task edgeshrink can study."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_quickstart_code_runs_and_its_files_make_a_task(tmp_path, monkeypatch):
    text = README.read_text()
    quick = text[text.index("## Quick start"):]
    code = re.search(r"```python\n(.*?)```", quick, re.S).group(1)
    assert len(code.strip().splitlines()) <= 16  # the promised ~15-line example
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})  # our own README, not user input
    command = re.search(r"```\n(edgeshrink study --model .*?)\n```", quick).group(1).split()
    from edgeshrink.byo.build import byo_task

    model = command[command.index("--model") + 1]
    data = command[command.index("--data") + 1]
    task = byo_task(tmp_path / model, tmp_path / data)
    from edgeshrink.measure.model_stats import torch_outputs

    assert task.metric.name == "accuracy"
    assert task.metric(torch_outputs(task.model, task.eval), task.eval.targets) > 90.0
    for link in re.findall(r"\]\(([^)#]+)", text):  # the README links only inside the repo
        assert not link.startswith(("..", "/")) and (README.parent / link).exists(), link

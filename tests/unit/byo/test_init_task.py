"""``edgeshrink init-task``: the template it writes is a task that loads and scores."""

from __future__ import annotations

import pytest

from edgeshrink.cli import main


def test_init_task_writes_a_runnable_template_and_never_overwrites(tmp_path, capsys):
    path = tmp_path / "my_task.py"
    main(["init-task", str(path)])
    assert f"edgeshrink study --task {path}:make_task" in capsys.readouterr().out
    from edgeshrink.measure.model_stats import torch_outputs
    from edgeshrink.task import load_task

    task = load_task(f"{path}:make_task")
    assert task.metric(torch_outputs(task.model, task.eval), task.eval.targets) > 80.0
    assert set(task.eval.targets.tolist()) == set(range(10))
    before = path.read_text()
    with pytest.raises(SystemExit) as exc:
        main(["init-task", str(path)])
    assert exc.value.code == 2 and "will not overwrite" in capsys.readouterr().err
    assert path.read_text() == before

"""Start a search (and its local workers), or join one; render its results.

Example:
    >>> run = run_search(settings, workers=2)                       # embedded journal file
    >>> run = run_search(settings, storage_url="postgresql+psycopg://me@db/optuna")
    >>> join_search("postgresql+psycopg://me@db/optuna", "edgeshrink-search")  # elsewhere
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from edgeshrink.search.engine import (
    SearchSettings,
    create_search,
    load_search,
    render_results,
    work,
)
from edgeshrink.search.storage import JOURNAL, open_storage

__all__ = ["run_search", "join_search", "clean_search_dir", "worker_command"]


def clean_search_dir(out: Path | str) -> None:
    """Remove a previous search's results, artifacts and journal from ``out``."""
    out = Path(out)
    for name in ("results.json", "artifacts", "recommended", "report.html", JOURNAL,
                 f"{JOURNAL}.lock", "workers"):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def worker_command(storage_arg: str, study_name: str, *, timeout: float | None = None,
                   heartbeat_s: int = 10) -> list[str]:
    """The command line of one more worker on this machine."""
    cmd = [sys.executable, "-m", "edgeshrink", "search", "--join", "--storage", storage_arg,
           "--study-name", study_name, "--heartbeat", str(heartbeat_s)]
    return cmd + (["--timeout", str(timeout)] if timeout else [])


def _spawn(n: int, storage_arg: str, study_name: str, out: Path, **kw) -> list:
    logs = out / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(n):
        with open(logs / f"worker-{i + 1}.log", "wb") as log:
            procs.append(subprocess.Popen(worker_command(storage_arg, study_name, **kw),
                                          stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, "PYTHONUNBUFFERED": "1"}))
    return procs


def run_search(settings: SearchSettings, *, storage_url: str | None = None,
               study_name: str = "edgeshrink-search", workers: int = 1,
               timeout: float | None = None, heartbeat_s: int = 10, task=None,
               on_progress=None, on_trial=None):
    """Create the search, run it here with ``workers - 1`` more local processes, and write
    ``OUT/results.json``; returns its ``RunRecord``."""
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    storage = open_storage(storage_url, out, heartbeat_s=heartbeat_s)
    study = create_search(settings, storage, study_name, task=task, on_progress=on_progress)
    storage_arg = storage_url or str(out / JOURNAL)
    procs = _spawn(workers - 1, storage_arg, study_name, out, timeout=timeout,
                   heartbeat_s=heartbeat_s) if workers > 1 else []
    try:
        if on_progress:
            on_progress("trials")
        work(study, settings, timeout=timeout, on_trial=on_trial, task=task)
    finally:
        for p in procs:
            p.wait()
    return render_results(study, out)


def join_search(storage_url: str, study_name: str, *, timeout: float | None = None,
                heartbeat_s: int = 10, on_trial=None):
    """Add this process as a worker of an existing search; returns its settings."""
    storage = open_storage(storage_url, Path("."), heartbeat_s=heartbeat_s)
    study, settings = load_search(storage, study_name)
    work(study, settings, timeout=timeout, on_trial=on_trial)
    render_results(study, settings.out)
    return settings

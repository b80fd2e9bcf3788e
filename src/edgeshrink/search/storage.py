"""Where a search lives: an Optuna journal file in the run folder, or a shared RDB.

The embedded default is Optuna's journal file (``RUN/search.journal``): one file, safe for
several processes on one machine (file locks), nothing to install. ``--storage
postgresql+psycopg://user@host/db`` (or any SQLAlchemy URL Optuna takes) lets workers on
any machine join; there each running trial beats a heartbeat, and a trial whose worker
stopped beating (``kill -9``, a lost machine) is marked failed by the next worker that looks
and re-queued with the same parameters (Optuna's ``RetryHeartbeatStaleTrialCallback``).

Optuna's heartbeat needs an RDB storage (``BaseHeartbeat``; optuna 5.0's ``JournalStorage``
does not implement it). For the journal file, whose workers all run on one machine, a trial
records its worker's host, process id and process start time; a worker that starts, resumes
or waits fails the RUNNING trials whose process is gone and re-queues them the same way.

Example:
    >>> storage = open_storage(None, Path("runs/search"))          # RUN/search.journal
    >>> storage = open_storage("postgresql+psycopg://me@db/optuna", Path("runs/s"))
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

from edgeshrink.errors import UserError

__all__ = ["open_storage", "check_storage_url", "JOURNAL", "has_heartbeat", "mark_worker",
           "fail_dead_local_trials"]

JOURNAL = "search.journal"
_RDB = ("postgresql", "mysql", "sqlite")


def check_storage_url(url: str | None) -> None:
    """Refuse a ``--storage`` value that names no storage Optuna can open (no connection)."""
    if url is None or _is_journal(url):
        return
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not scheme.startswith(_RDB):
        raise UserError(f"--storage {url!r} is neither a database URL (postgresql+psycopg://"
                        "user@host/db, sqlite:///file.db) nor a journal file path (*.journal).")
    if scheme.startswith("postgresql") and scheme != "postgresql+psycopg":
        raise UserError(f"--storage: use the psycopg 3 driver, postgresql+psycopg://..., "
                        f"not {scheme}://.")


def _is_journal(url: str) -> bool:
    return "://" not in url and url.endswith((".journal", ".log"))


def has_heartbeat(storage) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None elsewhere: with the
    pid it names one process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def mark_worker(trial) -> None:
    """Record which process runs ``trial`` (user attrs ``worker`` and ``process``)."""
    host, pid = socket.gethostname(), os.getpid()
    trial.set_user_attr("worker", f"{host}:{pid}")
    trial.set_user_attr("process", {"host": host, "pid": pid, "start": _start_time(pid),
                                    "trial": trial.number})


def _alive(proc: dict) -> bool:
    try:
        os.kill(int(proc["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process with that pid: it exists
        pass
    start = proc.get("start")
    return start is None or _start_time(int(proc["pid"])) in (start, None)


def fail_dead_local_trials(study, *, max_retry: int = 3) -> list[int]:
    """Fail the RUNNING trials whose worker process on this machine is gone and re-queue
    each with its parameters (as Optuna's heartbeat does on a database); returns their
    numbers. Trials of other machines, or not yet marked by :func:`mark_worker`, stay."""
    import optuna
    from optuna.trial import TrialState

    host, failed = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        proc = t.user_attrs.get("process")
        if not proc or proc.get("host") != host or proc.get("trial") != t.number \
                or _alive(proc):
            continue
        try:
            if not study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it first
            continue
        failed.append(t.number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" since 2.8
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        retry(study, study._storage.get_trial(t._trial_id))
    return failed


def open_storage(url: str | None, run_dir: Path, *, heartbeat_s: int = 10):
    """The Optuna storage for ``url`` (None: the journal file in ``run_dir``)."""
    import optuna

    if url is None or _is_journal(url):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url) if url else Path(run_dir) / JOURNAL
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    check_storage_url(url)
    try:
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat_s, grace_period=3 * heartbeat_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=3),
            engine_kwargs={"pool_pre_ping": True, "pool_size": 2, "max_overflow": 2}
            if not url.startswith("sqlite") else {},
        )
    except ImportError as exc:
        raise UserError(f"--storage {_redact(url)} needs a database driver ({exc}); "
                        "pip install 'psycopg[binary]'.") from None
    except Exception as exc:  # sqlalchemy.exc.OperationalError and friends: one sentence
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot open --storage {_redact(url)}: {first}.") from None


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("://")
    if "@" not in tail:
        return url
    cred, _, host = tail.rpartition("@")
    return f"{head}{sep}{cred.split(':', 1)[0]}:***@{host}" if ":" in cred else url

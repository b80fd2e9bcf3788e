"""The monitor's bounded state in one local SQLite file, written in one transaction.

Three tables: ``kv`` (the detectors' numbers as JSON and the recent-window buffers as
bytes), ``series`` (one row per drift check, thinned to at most ``max_rows`` by dropping
every other old row, so the history keeps its whole span at a coarser step) and ``alerts``
(the most recent ones). A save replaces everything inside one SQLite transaction: a
process killed mid-save leaves the previous state, never a mixture.

Example:
    >>> store = StateStore("monitor.sqlite")  # doctest: +SKIP
    >>> store.save({"meta": {...}}, buffers, series, alerts)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.errors import UserError

__all__ = ["StateStore", "thin"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS series (seq INTEGER PRIMARY KEY, row TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (seq INTEGER PRIMARY KEY, row TEXT NOT NULL);
"""


def thin(rows: list[Any], max_rows: int) -> list[Any]:
    """Drop every other row of the older half until at most ``max_rows`` remain."""
    while len(rows) > max_rows:
        half = len(rows) // 2
        rows = rows[:half][::2] + rows[half:]
    return rows


class StateStore:
    """Load and save the monitor's state at ``path`` (created on first save)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            con.execute("PRAGMA page_size = 1024")  # small pages for a small state (before
            con.execute("PRAGMA auto_vacuum = FULL")  # anything is written); freed pages go back
            con.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise UserError(f"monitor state {self.path} is not a usable SQLite file ({exc}); "
                            "give a new --state path.") from None
        return con

    def load(self) -> dict[str, Any] | None:
        """``{"meta", "buffers", "series", "alerts"}``, or None when there is no state yet."""
        if not self.path.exists():
            return None
        con = self._connect()
        try:
            kv = dict(con.execute("SELECT key, value FROM kv").fetchall())
            if "meta" not in kv:
                return None
            series = [json.loads(r) for (r,) in con.execute("SELECT row FROM series ORDER BY seq")]
            alerts = [json.loads(r) for (r,) in con.execute("SELECT row FROM alerts ORDER BY seq")]
        except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
            raise UserError(f"monitor state {self.path} is damaged ({exc}); give a new --state "
                            "path.") from None
        finally:
            con.close()
        meta = json.loads(kv.pop("meta"))
        dtypes = meta.get("_dtypes", {})
        buffers = {k: np.frombuffer(v, dtype=dtypes.get(k, "float32")).copy()
                   for k, v in kv.items() if k in dtypes}
        return {"meta": meta, "buffers": buffers, "series": series, "alerts": alerts}

    def save(self, meta: dict[str, Any], buffers: dict[str, np.ndarray],
             series: list[dict], alerts: list[dict]) -> None:
        """Replace the whole state in one transaction."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**meta, "_dtypes": {k: str(v.dtype) for k, v in buffers.items()}}
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("DELETE FROM kv")
                con.execute("DELETE FROM series")
                con.execute("DELETE FROM alerts")
                con.execute("INSERT INTO kv VALUES (?, ?)", ("meta", json.dumps(meta)))
                con.executemany("INSERT INTO kv VALUES (?, ?)",
                                [(k, np.ascontiguousarray(v).tobytes()) for k, v in buffers.items()])
                con.executemany("INSERT INTO series (row) VALUES (?)",
                                [(json.dumps(r, separators=(",", ":")),) for r in series])
                con.executemany("INSERT INTO alerts (row) VALUES (?)",
                                [(json.dumps(r, separators=(",", ":")),) for r in alerts])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()

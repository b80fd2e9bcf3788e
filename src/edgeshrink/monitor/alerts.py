"""Alerts: raised once when a condition starts to hold, re-armed when it has stopped holding
for ``rearm`` checks in a row (a score hovering at its threshold raises one alert, not many).

Each alert is a plain dict (``{"alert": kind, "samples": n, "time": ..., "value": ...,
"threshold": ..., "test": ...}``): the CLI prints it as one JSON line, and with an alert
folder it is also dropped there as a file (written under a temporary name and renamed, so
a watcher never reads half of one).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["AlertBook"]

RECENT = 50


class AlertBook:
    """The alerts raised so far (the last :data:`RECENT`) and the conditions now active."""

    def __init__(self, folder: str | os.PathLike | None = None, rearm: int = 1):
        self.folder = Path(folder) if folder is not None else None
        self.rearm = rearm
        self.recent: list[dict[str, Any]] = []
        self.active: dict[str, int] = {}  # kind -> checks in a row it has not held

    def restore(self, recent: list[dict[str, Any]], active: dict[str, int]) -> None:
        self.recent, self.active = list(recent)[-RECENT:], dict(active)

    def fire(self, kind: str, samples: int, *, latch: bool = True, **info: Any) -> list[dict]:
        """Raise ``kind`` unless it is already active (``latch``); the raised alerts."""
        if latch and kind in self.active:
            self.active[kind] = 0
            return []
        if latch:
            self.active[kind] = 0
        alert = {"alert": kind, "samples": int(samples),
                 "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                 **{k: round(v, 6) if isinstance(v, float) else v for k, v in info.items()}}
        self.recent = (self.recent + [alert])[-RECENT:]
        if self.folder is not None:
            self._drop(alert)
        return [alert]

    def clear(self, kind: str) -> None:
        """The condition did not hold at this check."""
        if kind in self.active:
            self.active[kind] += 1
            if self.active[kind] >= self.rearm:
                del self.active[kind]

    def _drop(self, alert: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"alert-{alert['samples']:010d}-{alert['alert']}.json"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=self.folder)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(alert, fh)
            os.replace(tmp, self.folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

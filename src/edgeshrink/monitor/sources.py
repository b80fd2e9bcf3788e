"""Where monitored inputs come from: an .npz, a folder of them, or any Python iterable.

An .npz holds the model's inputs by input name (a single-input model may use any one name)
and optionally ``labels`` (true classes, known now) and ``ids`` (sample ids, so that labels
can follow later in an .npz of ``ids`` and ``labels``). A folder is read in name order,
and a folder seen before is read from the first file after the last one monitored.

:func:`monitor_stream` runs the deployed model (and, every ``shadow_every`` batches, the
uncompressed reference) over the batches and feeds the monitor.

Example:
    >>> alerts = monitor_stream(mon, "int8.onnx", ({"input": x} for x in batches))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.errors import UserError

__all__ = ["Batch", "read_npz", "folder_files", "npz_batches", "read_labels", "monitor_stream"]

RESERVED = ("labels", "ids")


@dataclass
class Batch:
    """Model inputs by name, with optional labels and sample ids (one per sample)."""

    feeds: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(next(iter(self.feeds.values())))


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise UserError(f"{path} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile, pickle refusal, truncated data: all one answer
        raise UserError(f"{path} is not a readable .npz file ({type(exc).__name__}).") from None


def read_npz(path: str | os.PathLike, input_names: list[str]) -> Batch:
    """The arrays of ``path`` as one :class:`Batch` for a model with ``input_names``."""
    path = Path(path)
    arrays = _load(path)
    inputs = {k: v for k, v in arrays.items() if k not in RESERVED}
    if len(input_names) == 1 and len(inputs) == 1:
        feeds = {input_names[0]: next(iter(inputs.values()))}
    else:
        missing = [n for n in input_names if n not in inputs]
        if missing:
            raise UserError(f"{path} has no array for model input {missing[0]!r} (it has "
                            f"{', '.join(sorted(inputs)) or 'none'}).")
        feeds = {n: inputs[n] for n in input_names}
    batch = Batch(feeds, arrays.get("labels"), arrays.get("ids"))
    _check_lengths(batch, path)
    return batch


def _check_lengths(batch: Batch, where: Any) -> None:
    sizes = {k: len(v) if np.ndim(v) else 0 for k, v in batch.feeds.items()}
    n = next(iter(sizes.values()))
    if n == 0 or len(set(sizes.values())) != 1:
        raise UserError(f"{where}: the input arrays need the same, non-zero number of samples "
                        f"on axis 0 (got {sizes}).")
    for key in RESERVED:
        extra = getattr(batch, key)
        if extra is not None and (extra.ndim != 1 or len(extra) != n
                                  or not np.issubdtype(extra.dtype, np.integer)):
            raise UserError(f"{where}: '{key}' must be {n} integers, one per sample.")


def folder_files(folder: str | os.PathLike, after: str | None = None) -> list[Path]:
    """The .npz files of ``folder`` in name order, those after ``after`` only."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is neither an .npz file nor a folder.")
    return [p for p in sorted(folder.glob("*.npz")) if after is None or p.name > after]


def npz_batches(source: str | os.PathLike, input_names: list[str],
                after: str | None = None) -> Iterator[tuple[str, Batch]]:
    """``(file name, batch)`` for an .npz file or each new file of a folder."""
    source = Path(source)
    if source.suffix == ".npz" or source.is_file():
        yield source.name, read_npz(source, input_names)
        return
    for path in folder_files(source, after):
        yield path.name, read_npz(path, input_names)


def read_labels(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, labels)`` from an .npz of late labels."""
    arrays = _load(Path(path))
    if "ids" not in arrays or "labels" not in arrays:
        raise UserError(f"{path} needs two arrays, 'ids' and 'labels' (it has "
                        f"{', '.join(sorted(arrays)) or 'none'}).")
    ids, labels = arrays["ids"], arrays["labels"]
    if ids.shape != labels.shape or ids.ndim != 1 or not (
            np.issubdtype(ids.dtype, np.integer) and np.issubdtype(labels.dtype, np.integer)):
        raise UserError(f"{path}: 'ids' and 'labels' must be two integer arrays of one length.")
    return ids, labels


def _as_batch(item: Any, input_names: list[str]) -> Batch:
    if isinstance(item, Batch):
        return item
    labels = None
    if isinstance(item, tuple) and len(item) == 2:
        item, labels = item
        labels = None if labels is None else np.atleast_1d(np.asarray(labels))
    if isinstance(item, dict):
        feeds = dict(item)
    elif len(input_names) == 1:
        feeds = {input_names[0]: np.asarray(item)}
    else:
        raise UserError(f"the model has inputs {input_names}: give each item as a dict.")
    batch = Batch(feeds, labels)
    _check_lengths(batch, "an item of the stream")
    return batch


def _run(session, feeds: dict[str, np.ndarray], what: str) -> np.ndarray:
    try:
        return session.run(None, feeds)[0]
    except Exception as exc:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:160]
        raise UserError(f"the model cannot run {what}: {line}") from None


def monitor_stream(
    monitor,
    session,
    items: Iterable[Any],
    *,
    reference=None,
    shadow_every: int = 10,
    batch: int = 1,
) -> list[dict]:
    """Run ``session`` over ``items`` in batches of ``batch`` and feed ``monitor``.

    Items are arrays (single-input models), dicts of arrays by input name, ``(inputs,
    labels)`` pairs or :class:`Batch` objects. ``reference`` (an ORT session of the
    uncompressed model) also runs on every ``shadow_every``-th batch. Returns the alerts.
    """
    names = [i.name for i in session.get_inputs()]
    alerts: list[dict] = []
    calls = 0
    for item in items:
        b = _as_batch(item, names)
        for start in range(0, len(b), batch):
            sl = slice(start, start + batch)
            feeds = {k: np.ascontiguousarray(v[sl]) for k, v in b.feeds.items()}
            t0 = time.perf_counter()
            out = _run(session, feeds, "these inputs")
            ms = (time.perf_counter() - t0) * 1e3 / len(out)
            ref = None
            if reference is not None and calls % shadow_every == 0:
                ref = _run(reference, feeds, "these inputs (reference model)")
            calls += 1
            alerts += monitor.observe(
                out, latency_ms=ms, reference=ref,
                labels=None if b.labels is None else b.labels[sl],
                ids=None if b.ids is None else b.ids[sl])
    return alerts

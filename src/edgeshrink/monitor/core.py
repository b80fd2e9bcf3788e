"""The monitor: feed it the deployed model's outputs, it raises alerts and keeps a series.

Outputs go into a buffer; every ``step`` samples the buffer is summarised at once (numpy,
vectorised) and a drift check runs on the last ``window`` samples, so a per-sample call
costs a slice assignment. Labels given with the outputs, or later by sample id
(:meth:`Monitor.label`), feed the accuracy window and the Page-Hinkley detector; outputs of
the uncompressed reference on some samples feed the agreement check; latencies and the
process's resident memory feed their own checks. Everything the monitor keeps is bounded
(a few tens of KB) and saved to SQLite every ``persist_every`` samples and on close.

Example:
    >>> mon = Monitor(Profile.load("monitor-profile.json"), state="monitor.sqlite")  # doctest: +SKIP
    >>> for x in stream:  # doctest: +SKIP
    ...     alerts = mon.observe(session.run(None, {"input": x})[0])
    >>> mon.close()  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.errors import UserError
from edgeshrink.monitor.alerts import AlertBook
from edgeshrink.monitor.drift import score, window_tests
from edgeshrink.monitor.profile import Profile
from edgeshrink.monitor.state import StateStore, thin
from edgeshrink.monitor.stats import (
    PageHinkley,
    classifier_stats,
    embedding_stats,
    is_probabilities,
    wilson_interval,
)

__all__ = ["Monitor", "MonitorOptions"]


@dataclass(frozen=True)
class MonitorOptions:
    """What the monitor alerts on besides drift.

    Attributes:
        max_drop: accuracy or agreement (fraction) the model may lose against the profile
            before the windowed Wilson upper bound raises an alert.
        z: the Wilson interval's z for those alerts (3.29: two-sided 0.1 %).
        latency_factor: alert when a window's p50 latency exceeds this times the device's
            own baseline (the median of the first three windows).
        max_rss_mb: alert when the process's resident memory exceeds this (None: never).
        pending: sample ids whose predictions wait for late labels (bounded).
        series_rows: rows of the time series kept (older ones are thinned).
        row_every: the accuracy, agreement, latency and memory checks and a series row
            every this many drift checks (and whenever an alert is raised).
        persist_every: save the state after this many samples (and on close, and at the
            end of every `monitor run`).
        centroid_decay: weight of the past in the running centroid (embedding models).
    """

    max_drop: float = 0.05
    z: float = 3.29
    latency_factor: float = 2.0
    max_rss_mb: float | None = None
    pending: int = 512
    series_rows: int = 100
    row_every: int = 5
    persist_every: int = 5000
    centroid_decay: float = 0.99


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _digest(profile: Profile) -> str:
    return hashlib.sha256(json.dumps(profile.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


class Monitor:
    """Track a deployed model against its reference profile (see the module docstring)."""

    def __init__(
        self,
        profile: Profile | str | os.PathLike,
        state: str | os.PathLike | None = None,
        options: MonitorOptions | None = None,
        *,
        alert_dir: str | os.PathLike | None = None,
    ):
        self.profile = profile if isinstance(profile, Profile) else Profile.load(profile)
        self.options = options or MonitorOptions()
        cal = self.profile.calibration
        self.window, self.step = cal.window, cal.step
        self.classifier = self.profile.kind == "classifier"
        self.store = StateStore(state) if state is not None else None
        self.alerts = AlertBook(alert_dir, rearm=self.window // self.step)
        self._names = tuple(self.profile.sketches)
        self._buf: np.ndarray | None = None
        self._fill = 0
        self._probs: bool | None = None
        self.last_score: float | None = None  # the latest drift check's score
        self._labels = np.full(self.step, -1, np.int64)
        self._ids = np.full(self.step, -1, np.int64)
        self._lat = np.full(self.step, np.nan, np.float32)
        self._fresh()
        loaded = self.store.load() if self.store else None
        if loaded:
            self._restore(loaded)

    # ---------------------------------------------------------------- state
    def _fresh(self) -> None:
        w = self.window
        self.meta: dict[str, Any] = {
            "profile": _digest(self.profile), "created": _now(), "samples": 0,
            "labelled": 0, "correct": 0, "shadow": 0, "shadow_agree": 0.0, "next_id": 0,
            "ring_pos": 0, "acc_pos": 0, "acc_fill": 0, "shadow_pos": 0, "shadow_fill": 0,
            "latency_baseline": [], "rss_baseline": None, "last_file": None, "checks": 0,
            "next_check": self.window, "ph": {"n": 0, "mean": 0.0, "cum": 0.0, "min_cum": 0.0}, "since_save": 0,
        }  # fmt: skip
        self.buffers = {name: np.zeros(w, np.float32) for name in self._names}
        self.buffers["cls"] = np.zeros(w, np.int16)
        self.buffers["lat"] = np.full(w, np.nan, np.float32)
        self.buffers["acc"] = np.zeros(w, np.int8)
        self.buffers["agree"] = np.zeros(200, np.float32)
        self.buffers["pending_id"] = np.full(self.options.pending, -1, np.int64)
        self.buffers["pending_cls"] = np.zeros(self.options.pending, np.int16)
        if not self.classifier:
            self.buffers["centroid"] = np.asarray(self.profile.centroid, np.float32).copy()
        self.series: list[dict] = []
        self.ph = PageHinkley(delta=self.profile.calibration.ph_delta,
                              lam=self.profile.thresholds.get("page_hinkley", np.inf))

    def _restore(self, loaded: dict[str, Any]) -> None:
        if loaded["meta"].get("profile") != self.meta["profile"]:
            raise UserError(f"monitor state {self.store.path} was made with another profile; "
                            "give a new --state path for this one.")
        self.meta = {k: v for k, v in loaded["meta"].items() if k != "_dtypes"}
        for k, v in loaded["buffers"].items():
            if k in self.buffers and v.shape == self.buffers[k].shape:
                self.buffers[k] = v
        self.series = loaded["series"]
        self.alerts.restore(loaded["alerts"], self.meta.get("active", {}))
        for k, v in self.meta["ph"].items():
            setattr(self.ph, k, v)

    def flush(self) -> None:
        """Summarise buffered samples and save the state (one SQLite transaction)."""
        if self._fill:
            self._process(self._fill)
        self._save()

    def _save(self) -> None:
        self.meta["ph"] = {k: getattr(self.ph, k) for k in ("n", "mean", "cum", "min_cum")}
        self.meta["since_save"] = 0
        self.meta["active"] = dict(self.alerts.active)
        if self.store:
            self.store.save(self.meta, self.buffers, self.series, self.alerts.recent)

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- input
    def observe(
        self,
        outputs: np.ndarray,
        *,
        labels: np.ndarray | None = None,
        ids: np.ndarray | None = None,
        latency_ms: float | np.ndarray | None = None,
        reference: np.ndarray | None = None,
    ) -> list[dict]:
        """Add a batch of the deployed model's outputs; the alerts it raised (usually none).

        Args:
            outputs: the model's first output, one row per sample.
            labels: true classes of these samples, when known now.
            ids: sample ids, to give labels later with :meth:`label`.
            latency_ms: the model's time per sample (scalar or one per row).
            reference: the uncompressed model's outputs for these samples (shadow check).
        """
        n, f = len(outputs), self._fill
        buf = self._buf
        if (reference is None and buf is not None and f + n < self.step
                and type(outputs) is np.ndarray and outputs.shape[-1] == buf.shape[1]):
            # The per-sample path: copies into buffers that are reset after each chunk.
            end = f + n
            if n == 1 and outputs.ndim == 2:
                buf[f] = outputs[0]
            else:
                buf[f:end] = outputs.reshape(n, -1)
            if labels is not None:
                self._labels[f:end] = labels
            if ids is not None:
                self._ids[f:end] = ids
            if latency_ms is not None:
                self._lat[f:end] = latency_ms
            self._fill = end
            return []
        return self._observe_chunked(np.asarray(outputs), labels, ids, latency_ms, reference)

    def _observe_chunked(self, outputs, labels, ids, latency_ms, reference) -> list[dict]:
        rows = outputs.reshape(len(outputs), -1)
        if self._buf is None:
            self._buf = np.empty((self.step, rows.shape[1]), np.float32)
        elif rows.shape[1] != self._buf.shape[1]:
            raise UserError(f"outputs have {rows.shape[1]} values per sample, earlier ones "
                            f"{self._buf.shape[1]}.")
        if reference is not None:
            self._shadow(rows, np.asarray(reference).reshape(len(rows), -1))
        raised: list[dict] = []
        start = 0
        while start < len(rows):
            take = min(self.step - self._fill, len(rows) - start)
            sl, dst = slice(start, start + take), slice(self._fill, self._fill + take)
            self._buf[dst] = rows[sl]
            if labels is not None:
                self._labels[dst] = np.asarray(labels)[sl]
            if ids is not None:
                self._ids[dst] = np.asarray(ids)[sl]
            if latency_ms is not None:
                self._lat[dst] = (np.asarray(latency_ms, np.float32)[sl]
                                  if np.ndim(latency_ms) else latency_ms)
            self._fill += take
            start += take
            if self._fill == self.step:
                raised += self._process(self.step)
        return raised

    def label(self, ids: np.ndarray, labels: np.ndarray) -> list[dict]:
        """Labels that arrived later, for samples observed with ``ids``; unknown ids (too
        old, never seen) are ignored. Returns the alerts raised."""
        raised = self._process(self._fill) if self._fill else []
        pid, pcls = self.buffers["pending_id"], self.buffers["pending_cls"]
        ids, labels = np.asarray(ids, np.int64), np.asarray(labels, np.int64)
        pos = {int(i): k for k, i in enumerate(pid) if i >= 0}
        hit = [(pos[int(i)], int(y)) for i, y in zip(ids, labels, strict=True) if int(i) in pos]
        if not hit:
            return raised
        slots = np.array([s for s, _ in hit])
        correct = (pcls[slots] == np.array([y for _, y in hit])).astype(np.int8)
        pid[slots] = -1
        return raised + self._correctness(correct)

    # ---------------------------------------------------------------- processing
    def _process(self, k: int) -> list[dict]:
        out = self._buf[:k]
        if self.classifier:
            if self._probs is None:  # logits or probabilities: look once, at the first chunk
                self._probs = is_probabilities(out)
            conf, ent, cls = classifier_stats(out, self._probs)
            cols = {"conf": conf, "entropy": ent}
        else:
            norm, cos = embedding_stats(out, self.profile.centroid)
            cols, cls = {"norm": norm, "cosine": cos}, np.zeros(k, np.int16)
            self._update_centroid(out)
        self._ring("ring_pos", {**{n: cols[n] for n in self._names}, "cls": cls,
                                "lat": self._lat[:k]})
        self.meta["samples"] += k  # before the checks, so that alerts carry this chunk's end
        self.meta["since_save"] += k
        labels, ids = self._labels[:k], self._ids[:k]
        raised: list[dict] = []
        known = labels >= 0
        if known.any() and self.classifier:
            raised += self._correctness((cls[known] == labels[known]).astype(np.int8))
        waiting = (ids >= 0) & ~known
        if waiting.any():
            self._remember(ids[waiting], cls[waiting])
        self._fill = 0
        self._labels[:] = -1
        self._ids[:] = -1
        self._lat[:] = np.nan
        if self.meta["samples"] >= self.meta["next_check"]:
            while self.meta["next_check"] <= self.meta["samples"]:
                self.meta["next_check"] += self.step
            raised += self._check()
        if self.store and self.meta["since_save"] >= self.options.persist_every:
            self._save()
        return raised

    def _ring(self, pos_key: str, values: dict[str, np.ndarray]) -> None:
        k = len(next(iter(values.values())))
        idx = (self.meta[pos_key] + np.arange(k)) % self.window
        for name, v in values.items():
            self.buffers[name][idx] = v
        self.meta[pos_key] = int((self.meta[pos_key] + k) % self.window)

    def _remember(self, ids: np.ndarray, cls: np.ndarray) -> None:
        size = self.options.pending
        slots = (self.meta["next_id"] + np.arange(len(ids))) % size
        self.buffers["pending_id"][slots] = ids
        self.buffers["pending_cls"][slots] = cls
        self.meta["next_id"] = int((self.meta["next_id"] + len(ids)) % size)

    def _correctness(self, correct: np.ndarray) -> list[dict]:
        self.meta["labelled"] += int(len(correct))
        self.meta["correct"] += int(correct.sum())
        idx = (self.meta["acc_pos"] + np.arange(len(correct))) % self.window
        self.buffers["acc"][idx] = correct
        self.meta["acc_pos"] = int((self.meta["acc_pos"] + len(correct)) % self.window)
        self.meta["acc_fill"] = int(min(self.window, self.meta["acc_fill"] + len(correct)))
        if self.ph.update(1 - correct):
            value = self.ph.value
            self.ph.reset()
            return self.alerts.fire("accuracy_change", self.meta["samples"], value=value,
                                    threshold=self.ph.lam, test="page_hinkley")
        return []

    def _shadow(self, rows: np.ndarray, ref: np.ndarray) -> None:
        if self.classifier:
            agree = (rows.argmax(1) == ref.argmax(1)).astype(np.float32)
        else:
            den = np.maximum(np.linalg.norm(rows, axis=1) * np.linalg.norm(ref, axis=1), 1e-12)
            agree = ((rows * ref).sum(1) / den).astype(np.float32)
        size = len(self.buffers["agree"])
        idx = (self.meta["shadow_pos"] + np.arange(len(agree))) % size
        self.buffers["agree"][idx] = agree
        self.meta["shadow_pos"] = int((self.meta["shadow_pos"] + len(agree)) % size)
        self.meta["shadow_fill"] = int(min(size, self.meta["shadow_fill"] + len(agree)))
        self.meta["shadow"] += int(len(agree))
        self.meta["shadow_agree"] += float(agree.sum())

    def _update_centroid(self, out: np.ndarray) -> None:
        unit = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        decay = self.options.centroid_decay ** len(out)
        c = self.buffers["centroid"]
        self.buffers["centroid"] = (decay * c + (1 - decay) * unit.mean(axis=0)).astype(np.float32)

    # ---------------------------------------------------------------- checks
    def _check(self) -> list[dict]:
        from edgeshrink.monitor.checks import run_checks

        self.meta["checks"] += 1
        tests = window_tests(self.profile.sketches, self.profile.class_counts,
                             {n: self.buffers[n] for n in self._names},
                             self.buffers["cls"] if self.classifier else None)
        value, worst = score(tests)
        self.last_score = value
        row, raised = run_checks(self, tests, value, worst,
                                 full=self.meta["checks"] % self.options.row_every == 1)
        if row is not None:
            self.series = thin(self.series + [row], self.options.series_rows)
        return raised

    # ---------------------------------------------------------------- reading
    def status(self) -> dict[str, Any]:
        """Totals, the last check's row and the recent alerts (what `monitor status` prints)."""
        m = self.meta
        acc = None
        if m["labelled"]:
            lo, hi = wilson_interval(m["correct"], m["labelled"])
            acc = {"value": m["correct"] / m["labelled"], "low": lo, "high": hi,
                   "n": m["labelled"]}
        agree = m["shadow_agree"] / m["shadow"] if m["shadow"] else None
        return {"samples": m["samples"], "checks": m["checks"], "accuracy": acc,
                "agreement": agree, "last": self.series[-1] if self.series else None,
                "alerts": self.alerts.recent[-10:],
                "state_bytes": self.store.path.stat().st_size
                if self.store and Path(self.store.path).exists() else None}

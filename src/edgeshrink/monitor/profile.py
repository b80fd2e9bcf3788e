"""The reference profile: what the deployed file's outputs looked like on the evaluation data.

Captured at study time (``recommended/monitor-profile.json``) or built from any ONNX file
and data with :func:`build_profile`. It holds sketches of the per-sample summaries (a few
KB), the predicted-class histogram, the accuracy and the agreement with the uncompressed
reference on that data, and the calibrated alarm thresholds.

Example:
    >>> prof = build_profile("int8.onnx", x_eval, y_eval, reference="fp32.onnx")  # doctest: +SKIP
    >>> prof.save("monitor-profile.json")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.errors import UserError
from edgeshrink.monitor.calibrate import drift_thresholds, page_hinkley_lambda
from edgeshrink.monitor.stats import Sketch, classifier_stats, embedding_stats

__all__ = ["Profile", "Calibration", "reference_sample", "profile_from_sample", "build_profile",
           "FORMAT"]

FORMAT = "edgeshrink-monitor-profile"


@dataclass(frozen=True)
class Calibration:
    """How drift is checked and the false-alarm rate the thresholds are set for.

    Attributes:
        window: samples per drift check (the most recent ones).
        step: a check every this many samples.
        horizon: the stream length the false-alarm rate is stated over.
        fa_rate: chance that a clean stream of ``horizon`` samples raises any alarm.
        streams: bootstrap streams simulated to set the thresholds.
        ph_delta: accuracy drop (as a fraction) the Page-Hinkley detector tolerates.
    """

    window: int = 400
    step: int = 200
    horizon: int = 10_000
    fa_rate: float = 0.01
    streams: int = 400
    ph_delta: float = 0.02

    def __post_init__(self) -> None:
        if not 20 <= self.window <= 5000 or not 1 <= self.step <= self.window:
            raise UserError(f"window must be 20..5000 and step 1..window, got {self.window}, "
                            f"{self.step}.")
        if self.window % self.step:
            raise UserError(f"window ({self.window}) must be a multiple of step ({self.step}).")
        if self.streams < 10 or self.horizon < self.window:
            raise UserError(f"streams must be >= 10 and horizon >= window, got {self.streams}, "
                            f"{self.horizon}.")
        if not 0.0 < self.fa_rate < 0.5:
            raise UserError(f"fa_rate must be in (0, 0.5), got {self.fa_rate}.")


@dataclass
class Profile:
    """A reference profile (see the module docstring); JSON on disk."""

    kind: str
    n: int
    sketches: dict[str, Sketch]
    thresholds: dict[str, float]
    calibration: Calibration = field(default_factory=Calibration)
    class_counts: np.ndarray | None = None
    centroid: np.ndarray | None = None
    accuracy: float | None = None
    agreement: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        arr = lambda a: None if a is None else [float(f"{x:.6g}") for x in a]  # noqa: E731
        return {
            "format": FORMAT, "version": 1, "kind": self.kind, "n": self.n,
            "sketches": {k: s.to_dict() for k, s in self.sketches.items()},
            "thresholds": self.thresholds, "calibration": vars(self.calibration),
            "class_counts": None if self.class_counts is None else
            [int(c) for c in self.class_counts],
            "centroid": arr(self.centroid), "accuracy": self.accuracy,
            "agreement": self.agreement, "meta": self.meta,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise UserError("not an edgeshrink monitor profile (no 'format': "
                            f"'{FORMAT}'); build one with `edgeshrink monitor profile`.")
        try:
            return cls(
                kind=d["kind"], n=int(d["n"]),
                sketches={k: Sketch.from_dict(s) for k, s in d["sketches"].items()},
                thresholds=dict(d["thresholds"]), calibration=Calibration(**d["calibration"]),
                class_counts=None if d.get("class_counts") is None else
                np.asarray(d["class_counts"], np.int64),
                centroid=None if d.get("centroid") is None else
                np.asarray(d["centroid"], np.float64),
                accuracy=d.get("accuracy"), agreement=d.get("agreement"), meta=d.get("meta", {}),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"the monitor profile is damaged ({exc}); rebuild it.") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the profile as JSON, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.to_dict(), fh, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Profile:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"monitor profile {path} does not exist; it is written into the "
                            "study's recommended/ folder, or by `edgeshrink monitor profile`.")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise UserError(f"monitor profile {path} is not valid JSON; rebuild it.") from None
        return cls.from_dict(data)


def _is_classifier(outputs: np.ndarray, labels: np.ndarray | None, kind: str | None) -> bool:
    if kind is not None:
        if kind not in ("classifier", "embedding"):
            raise UserError(f"kind must be 'classifier' or 'embedding', got {kind!r}.")
        return kind == "classifier"
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        return False
    return labels is None or (labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer))


def reference_sample(outputs: np.ndarray, labels: np.ndarray | None = None,
                     kind: str | None = None) -> dict[str, np.ndarray]:
    """The per-sample summaries a profile is built from (10 bytes a sample for a classifier).

    A classifier (``kind="classifier"``, or by default 2-D outputs with integer labels or
    none) gives ``conf``, ``entropy``, ``cls`` and, with labels, ``correct``; an embedding
    model gives ``norm``, ``cosine`` (to the normalised mean embedding) and ``centroid``.
    """
    outputs = np.asarray(outputs)
    if labels is not None:
        labels = np.asarray(labels)
    if _is_classifier(outputs, labels, kind):
        conf, ent, cls = classifier_stats(outputs)
        out = {"conf": conf, "entropy": ent, "cls": cls,
               "n_classes": np.array(outputs.shape[1])}
        if labels is not None:
            out["correct"] = (cls == labels).astype(np.int8)
        return out
    flat = outputs.reshape(len(outputs), -1).astype(np.float64)
    unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
    centroid = unit.mean(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    norm, cos = embedding_stats(flat, centroid)
    return {"norm": norm, "cosine": cos, "centroid": centroid.astype(np.float32)}


def profile_from_sample(
    sample: dict[str, np.ndarray],
    calibration: Calibration | None = None,
    *,
    agreement: float | None = None,
    meta: dict[str, Any] | None = None,
) -> Profile:
    """Sketch ``sample`` (from :func:`reference_sample`) and calibrate its thresholds."""
    cal = calibration or Calibration()
    classifier = "cls" in sample
    names = ("conf", "entropy") if classifier else ("norm", "cosine")
    columns = {k: np.asarray(sample[k], np.float64) for k in names}
    n = len(columns[names[0]])
    if n < cal.window:
        raise UserError(f"the reference data has {n} samples; a profile needs at least the "
                        f"drift window ({cal.window}).")
    n_classes = int(sample["n_classes"]) if classifier else None
    classes = np.asarray(sample["cls"], np.int64) if classifier else None
    thresholds = drift_thresholds(columns, classes, n_classes, window=cal.window,
                                  step=cal.step, horizon=cal.horizon, fa_rate=cal.fa_rate,
                                  streams=cal.streams)
    accuracy = None
    if "correct" in sample:
        accuracy = float(np.mean(sample["correct"]))
        thresholds["page_hinkley"] = page_hinkley_lambda(
            1.0 - accuracy, delta=cal.ph_delta, horizon=cal.horizon, fa_rate=cal.fa_rate)
    return Profile(
        kind="classifier" if classifier else "embedding", n=n,
        sketches={k: Sketch.of(v) for k, v in columns.items()}, thresholds=thresholds,
        calibration=cal,
        class_counts=np.bincount(classes, minlength=n_classes) if classifier else None,
        centroid=None if classifier else np.asarray(sample["centroid"], np.float64),
        accuracy=accuracy, agreement=agreement, meta=dict(meta or {}),
    )  # fmt: skip


def run_outputs(session, inputs: dict[str, np.ndarray], batch: int = 256) -> np.ndarray:
    """The first output of ``session`` over ``inputs`` (arrays by input name), in batches."""
    n = len(next(iter(inputs.values())))
    parts = []
    for start in range(0, n, batch):
        feeds = {k: np.ascontiguousarray(v[start:start + batch]) for k, v in inputs.items()}
        parts.append(session.run(None, feeds)[0])
    return np.concatenate(parts)


def agreement_of(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Top-1 agreement (classifier outputs) or mean cosine (anything else)."""
    if outputs.ndim == 2 and outputs.shape[1] > 1 and reference.shape == outputs.shape:
        return float(np.mean(outputs.argmax(1) == reference.argmax(1)))
    a = outputs.reshape(len(outputs), -1).astype(np.float64)
    b = reference.reshape(len(reference), -1).astype(np.float64)
    den = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(np.mean((a * b).sum(1) / den))


def build_profile(
    model: str | os.PathLike,
    inputs: np.ndarray | dict[str, np.ndarray],
    labels: np.ndarray | None = None,
    *,
    reference: str | os.PathLike | None = None,
    calibration: Calibration | None = None,
    threads: int = 1,
    kind: str | None = None,
) -> Profile:
    """Run ``model`` (ONNX) on evaluation ``inputs`` and build its profile.

    Args:
        model: the deployed .onnx file.
        inputs: one array (the model's single input) or arrays by input name.
        labels: integer labels of ``inputs`` (accuracy and its change detector), or None.
        reference: the uncompressed .onnx file; its agreement with ``model`` on ``inputs``
            becomes the expected agreement of the shadow check.
        calibration: window, step and false-alarm rate of the drift checks.
        threads: ONNX Runtime intra-op threads.
        kind: ``classifier`` or ``embedding`` (default: a classifier when the outputs are
            2-D and the labels, if any, are integers).
    """
    from edgeshrink.bench.session import open_session, sha256_file

    sess = open_session(model, threads=threads)
    feeds = inputs if isinstance(inputs, dict) else {sess.get_inputs()[0].name: inputs}
    outputs = run_outputs(sess, feeds)
    agreement = None
    if reference is not None:
        agreement = agreement_of(outputs, run_outputs(open_session(reference, threads=threads),
                                                      feeds))
    meta = {"model": Path(model).name, "model_sha256": sha256_file(model)}
    return profile_from_sample(reference_sample(outputs, labels, kind), calibration,
                               agreement=agreement, meta=meta)

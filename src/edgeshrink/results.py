"""Result records: what a study measured, as plain data, and the Pareto front over them.

Everything downstream of measurement (Pareto, advisor, report) works on these records,
never on models. ``results.json`` is a :class:`RunRecord` written with :func:`save_run`.

Example:
    >>> run = load_run("runs/demo")
    >>> [c.name for c in pareto_front(run.all_candidates())]
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeshrink.errors import UserError

__all__ = [
    "CandidateRecord",
    "RunRecord",
    "load_run",
    "save_run",
    "pareto_front",
    "atomic_write_text",
    "atomic_write_bytes",
    "DiskFullError",
    "DEFAULT_OBJECTIVES",
]


@dataclass
class CandidateRecord:
    """One compressed (or baseline) model, measured on its exported artifact.

    Attributes:
        name: unique within the run, e.g. ``prune-unstructured-80``.
        recipe: the ordered transform configs as plain dicts (see ``edgeshrink.config``).
        family: ``baseline``, ``pruning``, ``quantization`` or ``both``.
        metric: ``{"name": ..., "value": ..., "extras": {...}}``; accuracies in percent.
        metric_drop: baseline minus candidate, in points of the metric (positive = worse).
        size_bytes: bytes of the artifact file on disk.
        size_compressed_bytes: bytes after deflate (zlib level 9) of that file.
        size_encoded_bytes: bytes of the sparse/packed storage form where one exists.
        latency_ms: ``{"p50", "p90", "threads", "batch", "by_threads": {"1": {...}}, "source"}``
            where ``source`` is ``measured`` (here) or the name of a bench JSON from a device.
        peak_memory_mb: peak resident memory of a fresh process loading and running it
            (None where the runtime does not run here, e.g. TensorRT).
        params: parameters of the model (non-zero ones are ``params - zeros``).
        macs: multiply-accumulates per sample of the (physically smaller, if pruned) model.
        activation_elems: elements of all intermediate activations per sample (for
            bandwidth estimates: times the activation precision's bytes).
        sparsity: fraction of zero weights over prunable layers (0..1).
        sparsity_kind: ``none``, ``unstructured``, ``structured`` or ``n:m``.
        precision: the weight precision that ships: ``fp32``, ``fp16``, ``int8``, ``int4``, ...
        runtime: ``onnxruntime``, ``openvino``, or ``simulated`` where no runtime executes the
            format.
        artifact: path of the artifact relative to the run folder.
        notes: free-form facts (e.g. the quantization format, how a simulated one runs).
    """

    name: str
    recipe: list[dict[str, Any]]
    family: str
    metric: dict[str, Any]
    metric_drop: float
    size_bytes: int
    size_compressed_bytes: int
    latency_ms: dict[str, Any]
    peak_memory_mb: float | None
    params: int
    sparsity: float
    runtime: str
    artifact: str
    macs: int = 0
    activation_elems: int = 0
    sparsity_kind: str = "none"
    precision: str = "fp32"
    size_encoded_bytes: int | None = None
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CandidateRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def value(self) -> float:
        """The metric; NaN where results.json holds null (a non-finite figure)."""
        value = self.metric["value"]
        return math.nan if value is None else float(value)

    @property
    def p50(self) -> float:
        return float(self.latency_ms["p50"])

    @property
    def stored_bytes(self) -> int:
        """The smallest honest storage figure: encoded form if any, else deflated file."""
        if self.size_encoded_bytes:
            return min(self.size_encoded_bytes, self.size_compressed_bytes)
        return self.size_compressed_bytes


@dataclass
class RunRecord:
    """A whole study: the task, the baseline, the candidates, the Pareto front.

    ``device``, ``constraints`` and ``recommendation`` are filled by the advisor when a
    study or ``edgeshrink recommend`` names a device. ``failed`` lists the candidates that
    could not be built on this model (``name``, ``recipe``, ``error``): the study goes on.
    """

    task: str
    metric: dict[str, Any]
    baseline: CandidateRecord | None = None
    candidates: list[CandidateRecord] = field(default_factory=list)
    pareto: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    device: dict[str, Any] | None = None
    constraints: dict[str, Any] = field(default_factory=dict)
    recommendation: dict[str, Any] | None = None
    sensitivity: dict[str, Any] = field(default_factory=dict)
    failed: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""  # the task's one line: for --model, how the data was split

    def all_candidates(self) -> list[CandidateRecord]:
        return ([self.baseline] if self.baseline else []) + list(self.candidates)

    def get(self, name: str) -> CandidateRecord:
        for c in self.all_candidates():
            if c.name == name:
                return c
        raise UserError(f"run has no candidate named {name!r}.")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["baseline"] = self.baseline.to_dict() if self.baseline else None
        out["candidates"] = [c.to_dict() for c in self.candidates]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        if kwargs.get("baseline"):
            kwargs["baseline"] = CandidateRecord.from_dict(kwargs["baseline"])
        kwargs["candidates"] = [CandidateRecord.from_dict(c) for c in kwargs.get("candidates", [])]
        return cls(**kwargs)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: readers never see half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make reports unshareable
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise _unwritable(path, exc) from None
        raise


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(UserError):
    """A file could not be written for lack of space: no candidate can succeed after it."""


def _unwritable(path: Path, exc: OSError) -> Exception:
    """The one sentence for a file that cannot be written (a full disk above all)."""
    if exc.errno in DISK_FULL:
        return DiskFullError(f"no space left on the device holding {path}: it was not written and "
                         "its previous version is intact; free some space and run again (a "
                         "study continues with --resume).")
    return UserError(f"cannot write {path} ({exc.strerror or exc}).")


SCHEMA_VERSION = 1  # of results.json and every `--json` output; bump on incompatible change


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_run(run: RunRecord, run_dir: Path | str) -> Path:
    """Write ``RUN/results.json`` as strict JSON (RFC 8259): a NaN or infinite figure is
    written as null and named, with its value, in the top-level ``non_finite`` list.
    ``schema_version`` (:data:`SCHEMA_VERSION`) comes first; every ``--json`` output of the
    CLI carries the same number."""
    path = Path(run_dir) / "results.json"
    reasons: list[dict[str, str]] = []
    data = {"schema_version": SCHEMA_VERSION, **_finite(run.to_dict(), "", reasons)}
    if reasons:
        data["non_finite"] = reasons
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    return path


def _finite(value: Any, where: str, reasons: list[dict[str, str]]) -> Any:
    """``value`` with every non-finite float replaced by None (and noted in ``reasons``)."""
    if isinstance(value, float) and not math.isfinite(value):
        reasons.append({"field": where, "value": repr(value),
                        "reason": "not a finite number; JSON has no NaN or infinity"})
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{where}.{k}" if where else str(k), reasons)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v, f"{where}[{i}]", reasons) for i, v in enumerate(value)]
    return value


def load_run(run_dir: Path | str) -> RunRecord:
    """Read ``RUN/results.json`` (``run_dir`` may also be the json file itself)."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise UserError(f"{path} does not exist: run `edgeshrink study --out DIR` first.")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(data, dict):
            raise TypeError("the top level is not an object")
        run = RunRecord.from_dict(data)
        for i, rec in enumerate(run.all_candidates()):
            _check_types(rec, f"candidate {i}")
        _check_types(run, "run")
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise UserError(f"{path} is not a valid edgeshrink results file ({detail}); rerun "
                        "`edgeshrink study`.") from None
    return run


def _check_types(record: Any, where: str) -> None:
    """Every field of a loaded record has the type its annotation names (a hand-edited or
    foreign results.json fails here, not as a traceback in the advisor or the report)."""
    import typing

    for name, hint in typing.get_type_hints(type(record)).items():
        value = getattr(record, name)
        args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union,
                                                                    types.UnionType) else (hint,)
        kinds = tuple(typing.get_origin(a) or a for a in args)
        kinds = tuple(k for k in kinds if isinstance(k, type))
        if float in kinds:
            kinds += (int,)
        if kinds and not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
            raise TypeError(f"{where}: {name} is {type(value).__name__}")
    if isinstance(record, CandidateRecord):
        for key, box in (("value", record.metric), ("p50", record.latency_ms)):
            value = box.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise TypeError(f"{where}: {key} is {type(value).__name__}")
        if "p50" not in record.latency_ms or "value" not in record.metric:
            raise KeyError(f"{where}: metric.value or latency_ms.p50")


# Objectives: (attribute getter, "max" or "min").
DEFAULT_OBJECTIVES: tuple[tuple[str, str], ...] = (
    ("value", "max"),
    ("stored_bytes", "min"),
    ("p50", "min"),
)


def _oriented(rec: CandidateRecord, objectives, higher_is_better: bool) -> tuple[float, ...]:
    out = []
    for attr, sense in objectives:
        v = float(getattr(rec, attr))
        if attr == "value" and not higher_is_better:
            sense = "min"
        out.append(-v if sense == "max" else v)  # smaller is better in every coordinate
    return tuple(out)


def pareto_front(
    records: list[CandidateRecord],
    objectives: tuple[tuple[str, str], ...] = DEFAULT_OBJECTIVES,
    *,
    higher_is_better: bool = True,
) -> list[str]:
    """Names of the records that no other record dominates on ``objectives``.

    A record dominates another when it is at least as good on every objective and strictly
    better on one. Pure function of the records.
    """
    points = [(r.name, _oriented(r, objectives, higher_is_better)) for r in records]
    front = []
    for name, p in points:
        dominated = any(
            all(a <= b for a, b in zip(q, p, strict=True)) and q != p for _, q in points
        )
        if not dominated:
            front.append(name)
    return front

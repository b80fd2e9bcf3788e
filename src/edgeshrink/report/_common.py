"""What the terminal table, the HTML page and the plots share: formatting and marks.

Everything here is a pure function of result records (:mod:`edgeshrink.results`).

The optional per-layer sensitivity of a run (``RunRecord.sensitivity``) has this schema;
either key may be absent::

    {"sparsity": {"levels": [0.5, 0.7, 0.9], "layers": {layer_name: [metric at each level]}},
     "bits":     {"levels": [8, 6, 4, 2],    "layers": {layer_name: [metric at each level]}}}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from edgeshrink.results import CandidateRecord, RunRecord, pareto_front

__all__ = [
    "FAMILY_COLORS",
    "FAMILY_ORDER",
    "Marks",
    "marks",
    "metric_info",
    "fmt_bytes",
    "fmt_metric",
    "fmt_drop",
    "fmt_value",
    "recipe_steps",
    "sensitivity_maps",
]

# Colour-blind-safe (Okabe-Ito) colours per technique family.
FAMILY_COLORS = {
    "baseline": "#3d3d3d",
    "pruning": "#0072b2",
    "quantization": "#e69f00",
    "both": "#009e73",
}
FAMILY_ORDER = ("baseline", "pruning", "quantization", "both")
OTHER_COLOR = "#999999"


@dataclass(frozen=True)
class Marks:
    """Which candidates are on the Pareto front and which one is recommended."""

    pareto: frozenset[str]
    recommended: str | None


def metric_info(run: RunRecord) -> tuple[str, str, bool]:
    """``(name, unit, higher_is_better)`` of the run's metric, with safe defaults."""
    m = run.metric or {}
    name = str(m.get("name") or (run.baseline.metric.get("name") if run.baseline else "") or "metric")
    return name, str(m.get("unit", "%")), bool(m.get("higher_is_better", True))


def marks(run: RunRecord) -> Marks:
    """The run's Pareto set (recomputed from the records when the run has none)."""
    _, _, higher = metric_info(run)
    names = run.pareto or pareto_front(run.all_candidates(), higher_is_better=higher)
    rec = (run.recommendation or {}).get("candidate")
    return Marks(pareto=frozenset(names), recommended=str(rec) if rec else None)


def fmt_bytes(n: float | None) -> str:
    """``1536`` -> ``'1.5 KiB'`` (binary units, as the sizes on disk are)."""
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def fmt_metric(value: float, unit: str) -> str:
    return f"{value:.2f} {unit}".rstrip()


def fmt_drop(drop: float) -> str:
    """Points lost against the baseline, signed (positive = worse)."""
    return f"{drop:+.2f}"


def latency_source(c: CandidateRecord) -> str:
    return str(c.latency_ms.get("source", "measured"))


def fmt_value(v: Any) -> str:
    """A profile/constraint value as short text: numbers trimmed, containers as JSON."""
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "-"}[v]
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, dict | list | tuple):
        return json.dumps(v, sort_keys=True, default=str)
    return str(v)


def recipe_steps(recipe: list[dict[str, Any]]) -> list[str]:
    """``[{"kind": "unstructured", "sparsity": 0.8}]`` -> ``['unstructured(sparsity=0.8)']``."""
    steps = []
    for step in recipe or []:
        args = ", ".join(f"{k}={fmt_value(v)}" for k, v in step.items() if k != "kind")
        steps.append(f"{step.get('kind', '?')}({args})")
    return steps


def sensitivity_maps(run: RunRecord) -> dict[str, dict[str, Any]]:
    """The well-formed sensitivity maps of the run: ``{"sparsity"|"bits": {levels, layers}}``.

    A map is kept only when it has levels and every layer has one value per level.
    """
    out = {}
    for key in ("sparsity", "bits"):
        m = (run.sensitivity or {}).get(key) or {}
        levels, layers = list(m.get("levels") or []), dict(m.get("layers") or {})
        if levels and layers and all(len(v) == len(levels) for v in layers.values()):
            out[key] = {"levels": levels, "layers": layers}
    return out

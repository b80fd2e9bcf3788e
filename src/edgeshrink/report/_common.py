"""What the terminal table, the HTML page and the plots share (units: :mod:`edgeshrink.units`).

Everything here is a pure function of result records (:mod:`edgeshrink.results`).

The optional per-layer sensitivity of a run (``RunRecord.sensitivity``) has this schema;
either key may be absent::

    {"sparsity": {"levels": [0.5, 0.7, 0.9], "layers": {layer_name: [metric at each level]}},
     "bits":     {"levels": [8, 6, 4, 2],    "layers": {layer_name: [metric at each level]}}}
"""

from __future__ import annotations

import json
import math
from typing import Any

from edgeshrink.results import RunRecord

__all__ = [
    "FAMILY_COLORS",
    "FAMILY_ORDER",
    "metric_info",
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


def metric_info(run: RunRecord) -> tuple[str, str, bool]:
    """``(name, unit, higher_is_better)`` of the run's metric, with safe defaults."""
    m = run.metric or {}
    name = str(m.get("name") or (run.baseline.metric.get("name") if run.baseline else "") or "metric")
    return name, str(m.get("unit", "%")), bool(m.get("higher_is_better", True))


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

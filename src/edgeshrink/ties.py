"""Which candidates the evaluation set cannot tell apart on their metric.

Two candidates are *tied on accuracy* when their difference is inside the sampling noise
of the evaluation set: with both candidates' per-sample results (``RUN/samples``) by the
paired test of :mod:`edgeshrink.measure.intervals` (exact McNemar for accuracies, paired
bootstrap otherwise, p >= 0.05); without them, when their drops' 95 % intervals overlap;
with no interval at all, only when their drops are equal. Pure functions of records.

Example:
    >>> tie = accuracy_tie(run.get("int8"), run.get("prune-50+int8"), samples)
    >>> tie.how if tie else "distinguishable"
    'exact McNemar p = 0.41'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.results import CandidateRecord, RunRecord

__all__ = ["Tie", "accuracy_tie", "load_samples", "drop_ci"]


@dataclass(frozen=True)
class Tie:
    """Why two candidates count as equal on the metric (``p``: the paired test's p-value)."""

    how: str
    p: float | None = None


def drop_ci(c: CandidateRecord) -> tuple[float, float] | None:
    """The 95 % interval of ``c``'s drop against the baseline, if the study measured one."""
    ci = (c.metric or {}).get("drop_ci95")
    return (float(ci[0]), float(ci[1])) if ci else None


def load_samples(run_dir: Path | str, run: RunRecord) -> dict[str, np.ndarray]:
    """Per-sample scores of every candidate that has them, by name."""
    from edgeshrink.measure.intervals import load_scores

    out = {}
    for c in run.all_candidates():
        rel = (c.metric or {}).get("samples")
        scores = load_scores(Path(run_dir) / rel) if rel else None
        if scores is not None:
            out[c.name] = scores
    return out


def accuracy_tie(a: CandidateRecord, b: CandidateRecord, samples: dict[str, Any],
                 *, higher_is_better: bool = True) -> Tie | None:
    """A :class:`Tie` when ``a`` and ``b`` are not distinguishable on the metric, else None."""
    from edgeshrink.measure.intervals import ALPHA, drop_interval

    sa, sb = samples.get(a.name), samples.get(b.name)
    if sa is not None and sb is not None and len(sa) == len(sb):
        got = drop_interval(sa, sb, higher_is_better=higher_is_better)
        p = float(got["drop_p"])
        return Tie(f"{got['test']} p = {p:.2f} on {len(sa)} samples", p) if p >= ALPHA else None
    ca, cb = drop_ci(a), drop_ci(b)
    if ca and cb:
        return Tie("95 % intervals of the drops overlap") if ca[0] <= cb[1] and cb[0] <= ca[1] \
            else None
    return Tie("equal drops") if a.metric_drop == b.metric_drop else None

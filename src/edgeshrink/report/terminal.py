"""The terminal summary of a study: one Rich table, the marks, the recommendation.

Example:
    >>> from rich.console import Console
    >>> from edgeshrink.results import load_run
    >>> print_summary(load_run("runs/demo"), Console())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeshrink.report._common import (
    FAMILY_COLORS,
    fmt_bytes,
    fmt_drop,
    fmt_metric,
    latency_source,
    marks,
    metric_info,
)
from edgeshrink.results import CandidateRecord, RunRecord

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["print_summary", "PARETO_MARK", "RECOMMENDED_MARK"]

PARETO_MARK = "◆"
RECOMMENDED_MARK = "★"


_RUNTIME = {"onnxruntime": "ORT", "openvino": "OpenVINO", "simulated": "simulated"}


def _latency(c: CandidateRecord) -> str:
    """p50 in ms; a source other than this machine's measurement is named after it."""
    source = latency_source(c)
    return f"{c.p50:.3g}" + ("" if source == "measured" else f" ({source})")


def _row(c: CandidateRecord, unit: str, pareto: frozenset[str], recommended: str | None):
    from rich.text import Text

    color = FAMILY_COLORS.get(c.family, "white")
    simulated = c.runtime == "simulated"
    return [
        Text(c.name, style="bold" if c.name == recommended else ""),  # Text: no markup
        Text(c.family[:5] if c.family == "quantization" else c.family, style=color),
        fmt_metric(c.value, unit),
        "-" if c.family == "baseline" else fmt_drop(c.metric_drop),
        fmt_bytes(c.size_bytes),
        fmt_bytes(c.stored_bytes),
        _latency(c),
        Text(_RUNTIME.get(c.runtime, c.runtime), style="yellow" if simulated else ""),
        PARETO_MARK if c.name in pareto else "",
        Text(RECOMMENDED_MARK, style="bold green") if c.name == recommended else "",
    ]


def _table(run: RunRecord, width: int = 200):
    from rich.table import Table

    name, unit, higher = metric_info(run)
    m = marks(run)
    table = Table(title=f"{run.task}: {len(run.candidates)} candidates", title_justify="left",
                  padding=(0, 1), collapse_padding=True)
    widest = max((len(c.name) for c in run.all_candidates()), default=9)
    table.add_column("candidate", min_width=min(widest, 26 if width >= 110 else 20),
                     overflow="fold")
    for header, justify in [
        ("family", "left"),
        (f"{name} {'↑' if higher else '↓'}", "right"),
        ("drop", "right"),
        ("file", "right"),
        ("stored", "right"),
        ("p50 ms", "right"),
        ("runtime", "left"),
        (PARETO_MARK, "center"),
        (RECOMMENDED_MARK, "center"),
    ]:
        table.add_column(header, justify=justify, no_wrap=True)
    narrow = width < 110  # drop family and raw file size (stored is the honest figure)
    if narrow:
        table.columns = [col for i, col in enumerate(table.columns) if i not in (1, 4)]
    for c in run.all_candidates():
        row = _row(c, unit, m.pareto, m.recommended)
        table.add_row(*(v for i, v in enumerate(row) if not (narrow and i in (1, 4))))
    return table


def _recommendation_lines(run: RunRecord) -> list:
    from rich.text import Text

    rec = run.recommendation or {}
    lines = []
    if rec.get("candidate"):
        head = Text(f"{RECOMMENDED_MARK} Recommended: ", style="bold green")
        head.append(str(rec["candidate"]), style="bold")
        if rec.get("device"):
            head.append(f" for {rec['device']}")
        if rec.get("priority"):
            head.append(f" (priority: {rec['priority']})")
        lines.append(head)
    if rec.get("binding"):
        lines.append(Text("Binding constraints: " + ", ".join(map(str, rec["binding"]))))
    lines += [Text(f"  • {reason}") for reason in rec.get("reasons") or []]
    for alt in rec.get("alternatives") or []:
        lines.append(Text(f"  ✗ {alt.get('name', '?')}: {alt.get('why_not', '')}", style="dim"))
    return lines


def print_summary(run: RunRecord, console: Console) -> None:
    """Print the candidates table with Pareto and recommendation marks, then the advice.

    Args:
        run: the study's result record.
        console: where to print (``rich.console.Console()`` for stdout).

    Example:
        >>> print_summary(load_run("runs/demo"), Console())  # doctest: +SKIP
    """
    console.print(_table(run, console.width))
    console.print(
        f"{PARETO_MARK} on the Pareto front (metric, stored size, p50 latency)   "
        f"{RECOMMENDED_MARK} recommended   stored = deflated or encoded size   "
        "simulated = no runtime kernel: figures from a simulation",
        style="dim",
    )
    for failed in run.failed:
        console.print(f"not built: {failed['name']}: {failed['error']}", style="yellow",
                      markup=False, highlight=False)
    for line in _recommendation_lines(run):
        console.print(line)

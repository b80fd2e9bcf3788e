"""The terminal summary of a study: one Rich table, the marks, the recommendation.

Example:
    >>> from rich.console import Console
    >>> from edgeshrink.results import load_run
    >>> print_summary(load_run("runs/demo"), Console())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeshrink.report._common import FAMILY_COLORS, metric_info
from edgeshrink.report.views import Row, View, accuracy_caveats, not_timed_here, views
from edgeshrink.results import RunRecord

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["print_summary", "PARETO_MARK", "RECOMMENDED_MARK"]

PARETO_MARK = "◆"
RECOMMENDED_MARK = "★"


_RUNTIME = {"onnxruntime": "ORT", "openvino": "OpenVINO", "simulated": "simulated",
            "litert": "LiteRT", "executorch": "ExecuTorch", "tensorrt": "TensorRT"}


def _row(r: Row, view: View, unit: str, narrow: bool) -> list:
    """Wide: every column with intervals and sources; narrow: the figures alone."""
    from rich.text import Text

    c, t = r.rec, r.text(unit)
    short = {"estimate": "est.", "measured": "meas."}.get(t["source"], t["source"])
    wide = {
        "family": Text(c.family[:5] if c.family == "quantization" else c.family,
                       style=FAMILY_COLORS.get(c.family, "white")),
        "metric": f"{t['metric']} {t['metric_ci']}".strip(),
        "drop": f"{t['drop']} {t['drop_ci']}".strip(),
        "size": f"{t['size']} ({r.size_form})" if view.key == "device" else t["size"],
        "latency": f"{t['latency']} ({t['source']})",
        "extra": t["energy"] if view.key == "device" else Text(
            _RUNTIME.get(c.runtime, c.runtime), style="yellow" if c.runtime == "simulated" else ""),
    }
    if narrow:
        wide = {"metric": t["metric"], "drop": t["drop"], "size": t["size"],
                "latency": f"{t['latency']} {short}"}
    return [Text(c.name, style="bold" if r.recommended else ""), *wide.values(),
            PARETO_MARK if r.pareto else "",
            Text(RECOMMENDED_MARK, style="bold green") if r.recommended else ""]


def _table(run: RunRecord, view: View, width: int = 200):
    from rich.table import Table

    name, unit, higher = metric_info(run)
    narrow = width < 130
    table = Table(title=f"{run.task}: {len(run.candidates)} candidates, {view.title.lower()}",
                  title_justify="left", padding=(0, 1), collapse_padding=True)
    widest = max((len(c.name) for c in run.all_candidates()), default=9)
    table.add_column("candidate", min_width=min(widest, 16 if narrow else 26), overflow="fold")
    ci = "" if narrow else " [95% CI]"
    heads = [(f"{name} {'↑' if higher else '↓'}{ci}", "right"), (f"drop{ci}", "right"),
             ("ships" if view.key == "device" else "file", "right"),
             ("latency" + ("" if narrow else " (source)"), "right")]
    if not narrow:
        heads = [("family", "left"), *heads,
                 ("energy" if view.key == "device" else "runtime", "left")]
    for header, justify in [*heads, (PARETO_MARK, "center"), (RECOMMENDED_MARK, "center")]:
        table.add_column(header, justify=justify, no_wrap=True)
    for r in view.rows:
        table.add_row(*_row(r, view, unit, narrow))
    return table


def _recommendation_lines(run: RunRecord) -> list:
    from rich.text import Text

    rec = run.recommendation or {}
    lines = []
    if rec.get("error"):
        lines.append(Text(f"Nothing fits {rec.get('device', '')}: {rec['error']}", style="bold red"))
        lines += [Text(f"  nearest on {n['constraint']}: {n['text']}") for n in rec.get("nearest") or []]
    if rec.get("verdict"):
        lines.append(Text(rec["verdict"], style="bold"))
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
    for view in reversed(views(run)):  # host first, the device (what decides) last
        console.print(_table(run, view, console.width))
    console.print(
        f"{PARETO_MARK} on the Pareto front of that view (metric, size, latency)   "
        f"{RECOMMENDED_MARK} recommended   sizes in SI units (1 kB = 1000 B)   "
        "[..] 95% intervals   simulated = no runtime kernel: metric from a simulation",
        style="dim", markup=False)
    for c in not_timed_here(run):  # TensorRT: the engine is built and timed on the device
        console.print(f"not timed here: {c['name']}: {c['why']}", style="yellow",
                      markup=False, highlight=False)
    for c in accuracy_caveats(run):  # its metric measured here is not the device's
        console.print(f"metric measured here, not the device's: {c['name']}: {c['why']}",
                      style="yellow", markup=False, highlight=False)
    for failed in run.failed:
        console.print(f"not built: {failed['name']}: {failed['error']}", style="yellow",
                      markup=False, highlight=False)
    for line in _recommendation_lines(run):
        console.print(line)

"""``RUN/report.html``: one self-contained page with the study's trade-off.

The page is a jinja2 template (``templates/report.html.j2``) rendered with autoescape, so
every name from a model or a run is text, never markup. The plots are matplotlib SVG drawn
inline (the PNGs beside the page are the same figures), so the page has no script library
and opens with the network off. One view per place (:mod:`edgeshrink.report.views`): the
device (what the advisor decided on) and the study host; the cards, the reasons, the
tables and the plots of a view show the same numbers in the same units.

The report reads ``RUN/results.json`` through :func:`edgeshrink.results.load_run` only.

Example:
    >>> write_report("runs/demo")  # doctest: +SKIP
    PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeshrink import __version__
from edgeshrink.report import assets
from edgeshrink.report._common import fmt_value, metric_info, recipe_steps
from edgeshrink.report.plots import Plot, render_plots
from edgeshrink.report.views import Row, View, accuracy_caveats, not_timed_here, views
from edgeshrink.results import RunRecord, atomic_write_bytes, atomic_write_text, load_run
from edgeshrink.units import fmt_bytes

__all__ = ["write_report", "render_page", "not_timed_here", "accuracy_caveats"]

VIEW_NOTES = {
    "device": "The numbers the advisor decided on: the size of the file that ships on the "
              "device, the latency there (measured where labelled, else a roofline estimate) "
              "and the energy estimate. Drops are paired against the baseline on the same "
              "samples; brackets are 95 % intervals.",
    "host": "The artifacts as measured on the machine the study ran on: the file on disk "
            "and its p50 latency there. The packed file is what a simulated or sparse "
            "candidate ships as where the device decodes weights into RAM.",
}


def _env():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("edgeshrink.report", "templates"),
        autoescape=True, trim_blocks=True,
        lstrip_blocks=True)


def _cell(text: str, *, q: str | None = None, sort: Any = None, sub: str = "",
          cls: str = "") -> dict[str, Any]:
    return {"text": text, "q": q, "sort": sort, "sub": sub, "cls": cls}


def _num(text: str, q: str, sort: float, sub: str = "") -> dict[str, Any]:
    return _cell(text, q=q, sort=repr(float(sort)), sub=sub, cls="num")


def _row_cells(row: Row, view: View, unit: str) -> list[dict[str, Any]]:
    c, t = row.rec, row.text(unit)
    cells = [
        _cell(c.name), _cell(c.family),
        _num(t["metric"], "metric", c.value, t["metric_ci"]),
        _num(t["drop"], "drop", c.metric_drop, t["drop_ci"]),
        _num(t["size"], "size", row.size_bytes, row.size_form),
    ]
    if view.key == "host":
        packed = c.size_encoded_bytes if (c.notes or {}).get("packed_artifact") else None
        cells.append(_num(fmt_bytes(packed), "packed", packed or 0))
    cells.append(_num(t["latency"], "latency", row.latency_ms, t["source"]))
    if view.key == "device":
        cells += [_num(t["energy"], "energy", row.energy_mj or 0.0),
                  _cell("yes" if row.fits else "no")]
    else:
        cells.append(_cell(c.runtime, cls="sim" if c.runtime == "simulated" else ""))
    kind = c.sparsity_kind if c.sparsity_kind != "none" else ""
    cells += [_cell(c.precision, sub=precision_split_text(c)),
              _num(f"{100 * c.sparsity:.0f}%", "sparsity", c.sparsity, kind),
              _cell("◆" if row.pareto else "", sort=int(row.pareto), cls="mark-pareto"),
              _cell("★" if row.recommended else "", sort=int(row.recommended), cls="mark-rec")]
    if view.key == "host":
        cells.append(_cell(" → ".join(recipe_steps(c.recipe)) or "(unchanged)", cls="recipe"))
    return cells


def precision_split_text(c) -> str:
    """``"int8 10 % · fp32 90 % of MACs"`` where the shipped file mixes precisions (read
    from its ops: ``notes["macs_by_precision"]``), else empty."""
    split = (c.notes or {}).get("macs_by_precision") or {}
    total = sum(split.values()) if isinstance(split, dict) else 0
    if len(split) < 2 or not total:
        return ""
    parts = sorted(split.items(), key=lambda kv: -kv[1])
    return " · ".join(f"{p} {100 * m / total:.0f} %" for p, m in parts) + " of MACs"


def _heads(view: View, run: RunRecord) -> list[tuple[str, bool]]:
    name, _, higher = metric_info(run)
    heads = [("candidate", False), ("family", False),
             (f"{name} {'↑' if higher else '↓'} [95 % CI]", True), ("drop [95 % CI]", True),
             (f"{view.size_label}", True)]
    if view.key == "host":
        heads.append(("packed file (.eskp)", True))
    heads.append((view.latency_label, True))
    heads += ([("energy (estimate)", True), ("fits memory", False)] if view.key == "device"
              else [("runtime", False)])
    heads += [("precision", False), ("sparsity", True), ("pareto", False), ("rec", False)]
    return heads + ([("recipe", False)] if view.key == "host" else [])


def _card(label: str, row: Row, view: View, unit: str, cls: str = "") -> dict[str, Any]:
    t = row.text(unit)
    items = [("size", t["size"], row.size_form), ("latency", t["latency"], t["source"])]
    if t["energy"]:
        items.append(("energy", t["energy"], "per inference (estimate)"))
    items.append(("metric", t["metric"], t["metric_ci"]))
    if row.rec.family != "baseline":
        items.append(("drop", t["drop"], f"{t['drop_ci']} points".strip()))
    return {"label": label, "value": row.name, "items": items, "cls": cls,
            "candidate": row.name, "view": view.key}


def _cards(run: RunRecord, vs: list[View]) -> list[dict[str, Any]]:
    _, unit, _ = metric_info(run)
    rec = run.recommendation or {}
    view = vs[0]
    where = "on " + rec["device"] if view.key == "device" else "on the study host"
    cards = []
    pick = view.row(rec.get("candidate") or "")
    if pick is not None:
        cards.append(_card(f"Recommended {where}", pick, view, unit, "rec"))
    elif rec.get("error"):
        cards.append({"label": f"Nothing fits {rec.get('device', '')}", "value": "no pick",
                      "items": [("error", rec["error"], "")], "cls": "fail", "candidate": None})
    if run.baseline is not None and view.row(run.baseline.name):
        cards.append(_card(f"Baseline {where}", view.row(run.baseline.name), view, unit))
    if run.device:
        cards.append({"label": "Device", "value": run.device.get("name", ""), "cls": "",
                      "items": [("device", run.device.get("description", ""), "")],
                      "candidate": None})
    front = sum(r.pareto for r in view.rows if r.rec.family != "baseline")
    cards.append({"label": "Candidates", "value": str(len(run.candidates)), "cls": "",
                  "items": [("pareto", f"{front} on the Pareto front ({view.key} view)", "")],
                  "candidate": None})
    return cards


def _view_context(run: RunRecord, view: View, plots: dict[str, Plot],
                  pngs: set[str]) -> dict[str, Any]:
    _, unit, _ = metric_info(run)
    mine = [p for k, p in plots.items() if k.startswith(view.key + "_")]
    rows = [{"name": r.name, "cells": _row_cells(r, view, unit),
             "cls": "recommended" if r.recommended else (
                 "baseline" if r.rec.family == "baseline" else "")} for r in view.rows]
    return {"key": view.key, "title": view.title, "note": VIEW_NOTES[view.key],
            "heads": _heads(view, run), "rows": rows,
            "plots": [_plot_context(p, pngs) for p in mine]}


def _plot_context(p: Plot, pngs: set[str]) -> dict[str, Any]:
    from markupsafe import Markup

    png = f"{p.key}.png" if f"{p.key}.png" in pngs else ""
    # the SVG is ours: matplotlib escapes its text, plots.py escapes titles and data-*
    return {"key": p.key, "svg": Markup(p.svg), "caption": p.caption, "png": png}


def render_page(run: RunRecord, *, plots: dict[str, Plot] | None = None,
                pngs: set[str] | frozenset[str] = frozenset()) -> str:
    """The whole report page as one HTML string (``pngs``: PNG file names beside it)."""
    name, unit, _ = metric_info(run)
    plots = render_plots(run) if plots is None else plots
    vs = views(run) if run.all_candidates() else []
    sub = f"{run.task} · metric: {name} ({unit})" + (f" · {run.created}" if run.created else "")
    return _env().get_template("report.html.j2").render(
        run=run, rec=run.recommendation or {}, sub=sub, assets=assets, version=__version__,
        cards=_cards(run, vs) if vs else [], fmt=fmt_value,
        views=[_view_context(run, v, plots, set(pngs)) for v in vs],
        heat=[_plot_context(p, set(pngs)) for k, p in plots.items()
              if k.startswith("sensitivity_")],
        not_timed=not_timed_here(run), caveats=accuracy_caveats(run))


def write_report(run_dir: Path | str) -> Path:
    """Write ``RUN/report.html`` and the plots as PNGs beside it; return the page's path.

    Every file is written to a temporary name and renamed, so a reader never sees half a
    page; the commands that change a run (``study``, ``recommend``) call this.

    Raises:
        UserError: the folder or its results.json is missing or unreadable.
    """
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    out_dir = run_dir if run_dir.is_dir() else run_dir.parent
    plots = render_plots(run)
    for stale in ("metric_vs_size.png", "metric_vs_latency.png"):  # before one plotting path
        (out_dir / stale).unlink(missing_ok=True)
    for key, plot in plots.items():
        atomic_write_bytes(out_dir / f"{key}.png", plot.png)
    path = out_dir / "report.html"
    atomic_write_text(path, render_page(run, plots=plots, pngs={f"{k}.png" for k in plots}))
    return path

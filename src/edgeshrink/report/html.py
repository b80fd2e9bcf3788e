"""``RUN/report.html``: one self-contained page with the study's trade-off.

The page inlines the plotly.js bundle that ships with the ``plotly`` package (what
``include_plotlyjs=True`` does), its stylesheet and its scripts, so it opens with the network
off. Figures travel as JSON in ``<script type="application/json">`` blocks with ``<``, ``>``
and ``&`` written as ``\\u003c`` etc., so no name can close the block; every name shown as
text is HTML-escaped. PNGs of the same plots are written beside the page.

The report reads ``RUN/results.json`` through :func:`edgeshrink.results.load_run` only.

Example:
    >>> write_report("runs/demo")  # doctest: +SKIP
    PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

from edgeshrink import __version__
from edgeshrink.report import assets
from edgeshrink.report._common import (
    FAMILY_COLORS,
    OTHER_COLOR,
    fmt_bytes,
    fmt_drop,
    fmt_metric,
    fmt_value,
    latency_source,
    marks,
    metric_info,
    recipe_steps,
)
from edgeshrink.report.plots import heatmap_specs, trade_off_specs, write_pngs
from edgeshrink.results import CandidateRecord, RunRecord, atomic_write_text, load_run

__all__ = ["write_report", "render_page", "script_json"]

PLOT_CAPTIONS = {
    "metric_vs_size": "Stored size is the deflated file or the sparse/packed encoding, "
    "whichever is smaller. Dotted: the Pareto front on these two axes.",
    "metric_vs_latency": "p50 latency per inference as measured (or benchmarked on the device "
    "when a bench file was merged). Open markers: simulated formats with no runtime kernel.",
    "sensitivity_sparsity": "Metric when one layer alone is pruned to each sparsity, the rest "
    "untouched: pale rows tolerate pruning, dark rows need care.",
    "sensitivity_bits": "Metric when one layer alone is quantized to each bit-width.",
}


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def _finite(obj: Any) -> Any:
    """NaN/inf (a failed measurement) become null, which Plotly draws as a gap."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def script_json(obj: Any) -> str:
    """JSON that is safe inside ``<script>``: ``<``, ``>``, ``&`` as ``\\u003c`` etc.

    Example:
        >>> script_json({"name": "</script>"})
        '{"name": "\\\\u003c/script\\\\u003e"}'
    """
    text = json.dumps(_finite(obj), allow_nan=False, default=str)
    for ch, code in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(ch, code)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    # The bundle never contains "</script" today; keep it that way if a release changes.
    return js.replace("</script", "<\\/script")


def _kv_table(data: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(fmt_value(v))}</td></tr>" for k, v in data.items())
    return f'<table class="kv">{rows}</table>'


def _family_badge(family: str) -> str:
    color = FAMILY_COLORS.get(family, OTHER_COLOR)
    return f'<span class="fam" style="background:{color}">{_e(family)}</span>'


def _ratio(base: float, value: float) -> str:
    return f"{base / value:.1f}×" if value > 0 else "-"


def _cards(run: RunRecord) -> str:
    _, unit, _ = metric_info(run)
    m = marks(run)
    base = run.baseline
    cards = []
    if base is not None:
        cards.append(("Baseline", base.name, f"{fmt_metric(base.value, unit)} · "
                      f"{fmt_bytes(base.stored_bytes)} stored · {base.p50:.3f} ms", ""))
    rec = next((c for c in run.all_candidates() if c.name == m.recommended), None)
    if rec is not None:
        detail = f"{fmt_metric(rec.value, unit)} ({fmt_drop(rec.metric_drop)} drop)"
        if base is not None:
            detail += (f" · {_ratio(base.stored_bytes, rec.stored_bytes)} smaller · "
                       f"{_ratio(base.p50, rec.p50)} faster")
        cards.append(("Recommended", rec.name, detail, "rec"))
    device = (run.device or {}).get("name") or (run.recommendation or {}).get("device")
    if device:
        cards.append(("Device", device, (run.device or {}).get("description", ""), ""))
    cards.append(("Candidates", str(len(run.candidates)),
                  f"{len(m.pareto & {c.name for c in run.candidates})} on the Pareto front", ""))
    return '<div class="cards">' + "".join(
        f'<div class="card {cls}"><div class="label">{_e(label)}</div>'
        f'<div class="value">{_e(value)}</div><div class="muted">{_e(detail)}</div></div>'
        for label, value, detail, cls in cards
    ) + "</div>"


def _recommendation(run: RunRecord) -> str:
    rec = run.recommendation or {}
    if not rec:
        return ""
    parts = ["<section id=\"recommendation\"><h2>Recommendation</h2>"]
    if rec.get("candidate"):
        head = f'<span class="mark-rec">★ {_e(rec["candidate"])}</span>'
        if rec.get("device"):
            head += f" for <b>{_e(rec['device'])}</b>"
        if rec.get("priority"):
            head += f" <span class=\"tag\">priority: {_e(rec['priority'])}</span>"
        parts.append(f"<p>{head}</p>")
    if rec.get("binding"):
        parts.append(f"<p>Binding constraints: {_e(', '.join(map(str, rec['binding'])))}</p>")
    if rec.get("reasons"):
        parts.append('<ul class="reasons">' + "".join(
            f"<li>{_e(r)}</li>" for r in rec["reasons"]) + "</ul>")
    if rec.get("alternatives"):
        rows = "".join(f"<tr><td>{_e(a.get('name', '?'))}</td><td>{_e(a.get('why_not', ''))}</td></tr>"
                       for a in rec["alternatives"])
        parts.append("<h3>Why not the others</h3><table><thead><tr><th>candidate</th>"
                     f"<th>why not</th></tr></thead><tbody>{rows}</tbody></table>")
    parts.append(_estimates(rec.get("estimates") or {}))
    return "".join(parts) + "</section>"


def _estimates(estimates: dict[str, dict[str, Any]]) -> str:
    if not estimates:
        return ""
    cols = [("latency_ms", "latency (ms)", True), ("energy_mj", "energy (mJ)", True),
            ("fits_memory", "fits memory", False), ("accelerated", "accelerated", False),
            ("latency_source", "latency source", False)]
    head = "<th>candidate</th>" + "".join(
        f'<th class="{"num" if num else ""}">{_e(t)}</th>' for _, t, num in cols)
    rows = []
    for name, est in estimates.items():
        cells = "".join(_estimate_cell(est.get(k), num) for k, _, num in cols)
        rows.append(f"<tr><td>{_e(name)}</td>{cells}</tr>")
    return ("<h3>On the device (estimates)</h3><div class=\"scroll\"><table class=\"sortable\">"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _estimate_cell(v: Any, num: bool) -> str:
    if num and isinstance(v, int | float) and not isinstance(v, bool):
        return f'<td class="num" data-sort="{float(v)!r}">{float(v):.3g}</td>'
    return f"<td>{_e(fmt_value(v))}</td>"


def _plot_divs(specs: dict[str, dict[str, Any]], pngs: set[str]) -> str:
    out = []
    for key, spec in specs.items():
        png = f' · <a href="{_e(key)}.png">PNG</a>' if f"{key}.png" in pngs else ""
        out.append(
            f'<figure style="margin:0"><div class="plot" id="plot-{_e(key)}" '
            f'data-figure="fig-{_e(key)}"></div>'
            f'<script type="application/json" id="fig-{_e(key)}">{script_json(spec)}</script>'
            f'<figcaption class="caption">{_e(PLOT_CAPTIONS.get(key, ""))}{png}</figcaption></figure>'
        )
    return "".join(out)


def _recipe_cell(recipe: list[dict[str, Any]]) -> str:
    steps = recipe_steps(recipe)
    if not steps:
        return '<span class="muted">(unchanged)</span>'
    return "".join(f"<div>{i}. {_e(step)}</div>" for i, step in enumerate(steps, 1))


def _candidate_row(c: CandidateRecord, run: RunRecord, m) -> str:
    _, unit, _ = metric_info(run)
    source = f'<span class="muted">{_e(latency_source(c))}</span>'
    if c.runtime == "simulated":
        source = '<span class="tag sim" title="no runtime kernel: simulated">simulated</span>'
    elif c.runtime != "onnxruntime":
        source += f'<div class="muted">{_e(c.runtime)}</div>'
    cls = "recommended" if c.name == m.recommended else ("baseline" if c.family == "baseline" else "")
    drop = "" if c.family == "baseline" else fmt_drop(c.metric_drop)
    kind = f'<div class="muted">{_e(c.sparsity_kind)}</div>' if c.sparsity_kind != "none" else ""
    cells = [
        f"<td>{_e(c.name)}</td>",
        f'<td data-sort="{_e(c.family)}">{_family_badge(c.family)}</td>',
        f'<td class="num" data-sort="{c.value!r}">{_e(fmt_metric(c.value, unit))}</td>',
        f'<td class="num" data-sort="{c.metric_drop!r}">{drop}</td>',
        f'<td class="num" data-sort="{c.size_bytes}">{fmt_bytes(c.size_bytes)}</td>',
        f'<td class="num" data-sort="{c.stored_bytes}">{fmt_bytes(c.stored_bytes)}</td>',
        f'<td class="num" data-sort="{c.p50!r}">{c.p50:.3f} ms<div>{source}</div></td>',        f"<td>{_e(c.precision)}</td>",
        f'<td class="num" data-sort="{c.sparsity!r}">{100 * c.sparsity:.0f}%{kind}</td>',
        f'<td data-sort="{int(c.name in m.pareto)}" class="mark-pareto">'
        f'{"◆" if c.name in m.pareto else ""}</td>',
        f'<td data-sort="{int(c.name == m.recommended)}" class="mark-rec">'
        f'{"★" if c.name == m.recommended else ""}</td>',
        f'<td class="recipe">{_recipe_cell(c.recipe)}</td>',
    ]
    return f'<tr class="{cls}">{"".join(cells)}</tr>'


def _candidates_table(run: RunRecord) -> str:
    name, unit, higher = metric_info(run)
    m = marks(run)
    heads = ["candidate", "family", f"{name} {'↑' if higher else '↓'}", "drop", "file", "stored",
             "p50 (source)", "precision", "sparsity", "pareto", "rec", "recipe"]
    numeric = {2, 3, 4, 5, 6, 8}
    head = "".join(f'<th class="{"num" if i in numeric else ""}">{_e(h)}</th>'
                   for i, h in enumerate(heads))
    rows = "".join(_candidate_row(c, run, m) for c in run.all_candidates())
    return (
        '<section id="candidates"><h2>Every candidate</h2>'
        '<p class="muted">Click a column header to sort. ◆ on the Pareto front (metric, stored '
        "size, p50 latency) · ★ recommended · drop in points against the baseline "
        "(positive = worse) · simulated: no runtime kernel, figures from a simulation.</p>"
        f'<div class="scroll"><table class="sortable" id="candidates-table"><thead><tr>{head}'
        f"</tr></thead><tbody>{rows}</tbody></table></div></section>"
    )


def _failed_section(run: RunRecord) -> str:
    if not run.failed:
        return ""
    items = "".join(f"<li><b>{_e(f['name'])}</b>: {_e(f['error'])}</li>" for f in run.failed)
    return ('<section id="failed"><h2>Not built on this model</h2><p class="muted">These '
            f"candidates' methods cannot handle this model; the study went on.</p><ul>{items}</ul>"
            "</section>")


def _device_section(run: RunRecord) -> str:
    if not run.device and not run.constraints:
        return ""
    device = _kv_table(run.device) if run.device else '<p class="muted">No device profile.</p>'
    cons = (_kv_table(run.constraints) if run.constraints
            else '<p class="muted">No constraints given.</p>')
    return (f'<section id="device"><div class="two"><div><h2>Device profile</h2>{device}</div>'
            f"<div><h2>Constraints</h2>{cons}</div></div></section>")


def render_page(run: RunRecord, *, pngs: set[str] | frozenset[str] = frozenset()) -> str:
    """The whole report page as one HTML string (``pngs``: PNG file names beside it)."""
    name, unit, _ = metric_info(run)
    trade, heat = trade_off_specs(run), heatmap_specs(run)
    sens = ""
    if heat:
        sens = ('<section id="sensitivity"><h2>Per-layer sensitivity</h2>'
                f'<div class="plots">{_plot_divs(heat, pngs)}</div></section>')
    machine = ""
    if run.machine:
        machine = (f'<section id="machine"><details><summary><b>Measured on</b></summary>'
                   f"{_kv_table(run.machine)}</details></section>")
    sub = f"{run.task} · metric: {name} ({unit})" + (f" · {run.created}" if run.created else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgeshrink report: {_e(run.task)}</title>
<script>{assets.ERROR_TRAP}</script>
<style>{assets.CSS}</style></head>
<body>
<header><h1>edgeshrink report</h1><div class="sub">{_e(sub)}</div></header>
<main>
<div id="report-errors" class="errors" hidden></div>
{_cards(run)}
{_recommendation(run)}
<section id="trade-off"><h2>Trade-off</h2><div class="plots">{_plot_divs(trade, pngs)}</div></section>
{sens}
{_candidates_table(run)}
{_failed_section(run)}
{_device_section(run)}
{machine}
</main>
<footer>edgeshrink {_e(__version__)} · built from results.json · opens offline</footer>
<script>{_plotly_js()}</script>
<script>{assets.RENDER}</script>
<script>{assets.SORT}</script>
</body></html>
"""


def write_report(run_dir: Path | str) -> Path:
    """Write ``RUN/report.html`` and the plots as PNGs beside it; return the page's path.

    Args:
        run_dir: the study's folder (the one holding ``results.json``).

    Raises:
        UserError: the folder or its results.json is missing or unreadable.

    Example:
        >>> write_report("runs/demo")  # doctest: +SKIP
        PosixPath('runs/demo/report.html')
    """
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    out_dir = run_dir if run_dir.is_dir() else run_dir.parent
    pngs = {p.name for p in write_pngs(run, out_dir)}
    path = out_dir / "report.html"
    atomic_write_text(path, render_page(run, pngs=pngs))
    return path

"""The report's plots, twice: Plotly figure specs for the page and matplotlib PNGs beside it.

Two trade-off plots (metric vs stored size, metric vs p50 latency) with the 2-D Pareto front
drawn as a staircase, points coloured by technique family, the baseline and the
recommendation marked; and one heat map per per-layer sensitivity scan a run has (schema in
:mod:`edgeshrink.report._common`).

Figure specs are plain dicts (``{"data": [...], "layout": {...}}``) for ``Plotly.newPlot``.
Every name in them is HTML-escaped, because plotly.js renders a subset of HTML in text and
decodes entities, so ``&lt;script&gt;`` shows as ``<script>``.

Example:
    >>> specs = trade_off_specs(load_run("runs/demo"))  # doctest: +SKIP
    >>> sorted(specs)
    ['metric_vs_latency', 'metric_vs_size']
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeshrink.report._common import (
    FAMILY_COLORS,
    FAMILY_ORDER,
    OTHER_COLOR,
    fmt_bytes,
    fmt_metric,
    latency_source,
    marks,
    metric_info,
    sensitivity_maps,
)
from edgeshrink.results import CandidateRecord, RunRecord, atomic_write_bytes, pareto_front

__all__ = ["Axis", "AXES", "trade_off_specs", "heatmap_specs", "write_pngs"]

RECOMMENDED_COLOR = "#d62728"


@dataclass(frozen=True)
class Axis:
    """One trade-off plot's x quantity: record attribute, title and scale to display units."""

    key: str
    attr: str
    title: str
    label: str


AXES = (
    Axis("metric_vs_size", "stored_bytes", "Metric vs stored size", "stored size"),
    Axis("metric_vs_latency", "p50", "Metric vs latency", "p50 latency (ms)"),
)


def _esc(text: Any) -> str:
    """Escape for plotly.js text: HTML entities, and ``$`` so it never reads as LaTeX."""
    return html.escape(str(text)).replace("$", "&#36;")


def _size_scale(records: list[CandidateRecord]) -> tuple[float, str]:
    top = max((r.stored_bytes for r in records), default=0)
    return (1024.0**2, "MiB") if top >= 1024**2 else (1024.0, "KiB")


def _x(axis: Axis, rec: CandidateRecord, scale: float) -> float:
    return float(getattr(rec, axis.attr)) / (scale if axis.attr == "stored_bytes" else 1.0)


def _x_label(axis: Axis, unit: str) -> str:
    return f"stored size ({unit}, deflated or encoded)" if axis.attr == "stored_bytes" else axis.label


def _front(run: RunRecord, axis: Axis) -> list[CandidateRecord]:
    """The records no other one beats on (metric, this axis), sorted along the axis."""
    _, _, higher = metric_info(run)
    recs = run.all_candidates()
    names = set(pareto_front(recs, (("value", "max"), (axis.attr, "min")), higher_is_better=higher))
    return sorted((r for r in recs if r.name in names), key=lambda r: getattr(r, axis.attr))


def _log_axis(xs: list[float]) -> bool:
    pos = [x for x in xs if x > 0]
    return len(pos) == len(xs) and bool(pos) and max(pos) / min(pos) > 20


def _hover(rec: CandidateRecord, unit: str) -> str:
    sim = " (simulated)" if rec.runtime == "simulated" else ""
    return (
        f"<b>{_esc(rec.name)}</b><br>{_esc(rec.family)}<br>{fmt_metric(rec.value, unit)}"
        f"<br>stored {fmt_bytes(rec.stored_bytes)} (file {fmt_bytes(rec.size_bytes)})"
        f"<br>p50 {rec.p50:.3f} ms ({_esc(latency_source(rec))}){sim}"
    )


def _marker_trace(recs, axis, scale, unit, *, name, color, symbol, size) -> dict[str, Any]:
    symbols = [symbol + ("-open" if r.runtime == "simulated" else "") for r in recs]
    return {
        "type": "scatter",
        "mode": "markers",
        "name": _esc(name),
        "x": [_x(axis, r, scale) for r in recs],
        "y": [r.value for r in recs],
        "hovertext": [_hover(r, unit) for r in recs],
        "hoverinfo": "text",
        "marker": {"color": color, "symbol": symbols, "size": size, "line": {"width": 1.5}},
    }


def _trade_off_spec(run: RunRecord, axis: Axis) -> dict[str, Any]:
    name, unit, _ = metric_info(run)
    recs = run.all_candidates()
    scale, size_unit = _size_scale(recs)
    m = marks(run)
    front = _front(run, axis)
    data = [{
        "type": "scatter", "mode": "lines", "name": "Pareto front", "hoverinfo": "skip",
        "x": [_x(axis, r, scale) for r in front], "y": [r.value for r in front],
        "line": {"shape": "hv", "dash": "dot", "color": "#777", "width": 1.5},
    }]
    for fam in sorted({r.family for r in recs}, key=_family_rank):
        # measured points first: the legend shows the first point's symbol
        members = sorted((r for r in recs if r.family == fam), key=lambda r: r.runtime == "simulated")
        base = fam == "baseline"
        data.append(_marker_trace(
            members, axis, scale, unit, name=fam, color=FAMILY_COLORS.get(fam, OTHER_COLOR),
            symbol="diamond" if base else "circle", size=14 if base else 10,
        ))
    rec = next((r for r in recs if r.name == m.recommended), None)
    if rec is not None:
        data.append({
            "type": "scatter", "mode": "markers", "name": "recommended", "hoverinfo": "skip",
            "x": [_x(axis, rec, scale)], "y": [rec.value],
            "marker": {"symbol": "circle-open", "size": 24, "color": RECOMMENDED_COLOR,
                       "line": {"width": 2.5}},
        })
    xs = [_x(axis, r, scale) for r in recs]
    layout = {
        "title": {"text": axis.title, "x": 0.02, "font": {"size": 15}},
        "xaxis": {"title": {"text": _x_label(axis, size_unit)},
                  "type": "log" if _log_axis(xs) else "linear",
                  "gridcolor": "#eceff3", "zeroline": False},
        "yaxis": {"title": {"text": f"{_esc(name)} ({_esc(unit)})"}, "gridcolor": "#eceff3",
                  "zeroline": False},
        "legend": {"orientation": "h", "y": -0.22, "x": 0},
        "margin": {"l": 60, "r": 20, "t": 44, "b": 40},
        "plot_bgcolor": "#ffffff", "paper_bgcolor": "#ffffff", "hovermode": "closest",
        "height": 420, "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif"},
    }
    return {"data": data, "layout": layout}


def _family_rank(fam: str) -> int:
    return FAMILY_ORDER.index(fam) if fam in FAMILY_ORDER else len(FAMILY_ORDER)


def trade_off_specs(run: RunRecord) -> dict[str, dict[str, Any]]:
    """Plotly specs of the two trade-off plots, keyed ``metric_vs_size``/``metric_vs_latency``."""
    if not run.all_candidates():
        return {}
    return {axis.key: _trade_off_spec(run, axis) for axis in AXES}


def _level_labels(kind: str, levels: list[Any]) -> list[str]:
    if kind == "sparsity":
        return [f"{100 * float(v):g}% sparse" for v in levels]
    return [f"{v}-bit" for v in levels]


def heatmap_specs(run: RunRecord) -> dict[str, dict[str, Any]]:
    """Plotly heat maps of per-layer sensitivity, keyed ``sensitivity_sparsity``/``_bits``."""
    name, unit, higher = metric_info(run)
    out = {}
    for kind, m in sensitivity_maps(run).items():
        layers = list(m["layers"])
        title = "pruning one layer at a time" if kind == "sparsity" else "quantizing one layer at a time"
        out[f"sensitivity_{kind}"] = {
            "data": [{
                "type": "heatmap",
                "z": [[float(v) for v in m["layers"][layer]] for layer in layers],
                "x": _level_labels(kind, m["levels"]),
                "y": [_esc(layer) for layer in layers],
                "colorscale": "Viridis", "reversescale": not higher,
                "texttemplate": "%{z:.1f}", "xgap": 2, "ygap": 2,
                "hovertemplate": "%{y}<br>%{x}<br>" + _esc(name) + " %{z:.2f}<extra></extra>",
                "colorbar": {"title": {"text": _esc(unit)}, "thickness": 12},
            }],
            "layout": {
                "title": {"text": f"Sensitivity: {_esc(name)} when {title}", "x": 0.02,
                          "font": {"size": 15}},
                "xaxis": {"type": "category", "side": "top"},
                "yaxis": {"type": "category", "autorange": "reversed", "automargin": True},
                "margin": {"l": 20, "r": 20, "t": 80, "b": 20},
                "height": 140 + 30 * len(layers), "paper_bgcolor": "#ffffff",
                "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif"},
            },
        }
    return out


# --- matplotlib PNGs (for pasting into documents) -------------------------------------------


def _figure(width: float, height: float):
    # A bare Figure renders PNG through Agg without touching pyplot's global backend state.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=150)


def _mpl_text(text: Any) -> str:
    return str(text).replace("$", r"\$")  # a single $ would start mathtext


def _png_trade_off(run: RunRecord, axis: Axis):
    name, unit, _ = metric_info(run)
    recs = run.all_candidates()
    scale, size_unit = _size_scale(recs)
    rec_name = marks(run).recommended
    fig = _figure(7.5, 4.6)
    ax = fig.subplots()
    front = _front(run, axis)
    ax.step([_x(axis, r, scale) for r in front], [r.value for r in front], where="post",
            ls=":", color="#777", lw=1.3, label="Pareto front")
    for fam in sorted({r.family for r in recs}, key=_family_rank):
        color, base = FAMILY_COLORS.get(fam, OTHER_COLOR), fam == "baseline"
        for sim in (False, True):
            pts = [r for r in recs if r.family == fam and (r.runtime == "simulated") == sim]
            if pts:
                ax.scatter([_x(axis, r, scale) for r in pts], [r.value for r in pts],
                           marker="D" if base else "o", s=70 if base else 45, zorder=3,
                           facecolors="none" if sim else color, edgecolors=color, linewidths=1.5,
                           label=_mpl_text(fam + (" (simulated)" if sim else "")))
    for r in recs:
        if r.name == rec_name or r.family == "baseline":
            hi = r.name == rec_name
            if hi:
                ax.scatter([_x(axis, r, scale)], [r.value], s=330, facecolors="none",
                           edgecolors=RECOMMENDED_COLOR, linewidths=2, zorder=4, label="recommended")
            ax.annotate(_mpl_text(r.name), (_x(axis, r, scale), r.value), xytext=(8, 8),
                        textcoords="offset points", fontsize=8,
                        color=RECOMMENDED_COLOR if hi else "#333")
    if _log_axis([_x(axis, r, scale) for r in recs]):
        ax.set_xscale("log")
    ax.set_xlabel(_x_label(axis, size_unit))
    ax.set_ylabel(_mpl_text(f"{name} ({unit})"))
    ax.set_title(axis.title, loc="left", fontsize=11)
    ax.grid(True, color="#eceff3")
    ax.legend(fontsize=8, frameon=False, loc="best")
    fig.tight_layout()
    return fig


def _png_heatmap(run: RunRecord, kind: str, m: dict[str, Any]):
    import numpy as np

    name, unit, higher = metric_info(run)
    layers = list(m["layers"])
    z = np.array([[float(v) for v in m["layers"][layer]] for layer in layers])
    fig = _figure(7.5, 1.4 + 0.32 * len(layers))
    ax = fig.subplots()
    im = ax.imshow(z, aspect="auto", cmap="viridis" if higher else "viridis_r")
    ax.set_xticks(range(len(m["levels"])), _level_labels(kind, m["levels"]))
    ax.set_yticks(range(len(layers)), [_mpl_text(layer) for layer in layers], fontsize=8)
    ax.xaxis.tick_top()
    mid = (z.max() + z.min()) / 2
    for (i, j), v in np.ndenumerate(z):
        dark = (v < mid) == higher
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label=_mpl_text(unit), fraction=0.04)
    what = "sparsity" if kind == "sparsity" else "bit-width"
    ax.set_title(_mpl_text(f"Sensitivity per layer: {name} vs {what}"), loc="left", fontsize=11,
                 pad=24)
    fig.tight_layout()
    return fig


def write_pngs(run: RunRecord, out_dir: Path) -> list[Path]:
    """Save the plots as PNGs in ``out_dir`` (atomically); returns the paths written."""
    figs = {}
    if run.all_candidates():
        figs.update({axis.key: _png_trade_off(run, axis) for axis in AXES})
    for kind, m in sensitivity_maps(run).items():
        figs[f"sensitivity_{kind}"] = _png_heatmap(run, kind, m)
    paths = []
    for key, fig in figs.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        path = out_dir / f"{key}.png"
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths

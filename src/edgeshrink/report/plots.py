"""The report's plots, drawn once with matplotlib: inline SVG for the page, PNG beside it.

Per view (:mod:`edgeshrink.report.views`): the metric against the size and against the
latency of that view, each point labelled with its candidate's name and its 95 % interval
as an error bar, the recommended pick ringed; in the device view the budgets as lines and
the feasible region shaded. A far outlier on the metric is drawn at the edge with its value
instead of squashing the rest; a size or latency axis spanning more than 20x is
logarithmic. In the SVG every point is a ``<g class="pt">`` with a ``<title>`` (the hover
text) and ``data-*`` attributes holding the very strings the tables show. One heat map per
per-layer sensitivity scan, its level labels below the cells (never over the title).

Example:
    >>> plots = render_plots(load_run("runs/demo"))  # doctest: +SKIP
    >>> sorted(plots)[:2]
    ['device_latency', 'device_size']
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from typing import Any

from edgeshrink.report._common import (
    FAMILY_COLORS,
    FAMILY_ORDER,
    OTHER_COLOR,
    metric_info,
    sensitivity_maps,
)
from edgeshrink.report.views import Row, View, views
from edgeshrink.results import RunRecord
from edgeshrink.units import bytes_scale, fmt_bytes, fmt_ms

__all__ = ["Plot", "render_plots", "RECOMMENDED_COLOR"]

RECOMMENDED_COLOR = "#d62728"
FEASIBLE_COLOR = "#2ca02c"


@dataclass(frozen=True)
class Plot:
    """One plot: its SVG (for the page), PNG bytes (for the file) and caption."""

    key: str
    title: str
    svg: str
    png: bytes
    caption: str


def _mpl(text: Any) -> str:
    return str(text).replace("$", r"\$")  # a single $ would start mathtext


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # a bare Figure: no pyplot global state

    return Figure(figsize=(width, height), dpi=150)


def _x(row: Row, axis: str, scale: float) -> float:
    return row.size_bytes / scale if axis == "size" else row.latency_ms


def _outlier_floor(values: list[float], higher: bool) -> float | None:
    """The metric value beyond which points are drawn at the edge (None: show all)."""
    if len(values) < 4:
        return None
    v = sorted(values, reverse=not higher)  # worst first
    rest = v[1:]
    span = max(rest) - min(rest)
    gap = abs(rest[0] - v[0])
    if gap > 3 * max(span, 1e-9):
        return rest[0] - 0.25 * span - 1e-9 if higher else rest[0] + 0.25 * span + 1e-9
    return None


def _spots(rows: list[Row], axis: str, scale: float,
           ys: dict[str, float]) -> list[tuple[float, float, str, bool]]:
    """One label per spot: points drawn at the same place share it."""
    spots: dict[tuple[float, float], list[Row]] = {}
    for r in rows:
        key = (float(f"{_x(r, axis, scale):.3g}"), round(ys[r.name], 6))
        spots.setdefault(key, []).append(r)
    out = []
    for (x, y), members in sorted(spots.items(), key=lambda kv: (not any(
            r.recommended for r in kv[1]), kv[0])):  # the pick's label is placed first
        names = [("★ " if r.recommended else "") + r.name for r in members]
        text = ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")
        out.append((x, y, text, any(r.recommended for r in members)))
    return out


_PLACES = [(7, 5, "left", "bottom"), (7, -5, "left", "top"), (-7, 5, "right", "bottom"),
           (-7, -5, "right", "top"), (0, 9, "center", "bottom"), (0, -9, "center", "top"),
           (12, 14, "left", "bottom"), (-12, -14, "right", "top"),
           (12, -16, "left", "top"), (-12, 16, "right", "bottom")]


def _place_labels(fig, ax, spots) -> None:
    """Greedy placement: each label at the first of ten spots around its point that
    overlaps no label placed before and stays inside the axes (else the least bad one)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    frame = ax.get_window_extent(renderer)
    dots = [ax.transData.transform((x, y)) for x, y, _, _ in spots]
    placed = []
    for i, (x, y, text, rec) in enumerate(spots):
        ann = ax.annotate(_mpl(text), (x, y), xytext=(7, 5), textcoords="offset points",
                          fontsize=6.5, color=RECOMMENDED_COLOR if rec else "#333",
                          fontweight="bold" if rec else "normal")
        best, best_cost = _PLACES[0], None
        for place in _PLACES:
            ann.xyann, (ha, va) = place[:2], place[2:]
            ann.set_ha(ha)
            ann.set_va(va)
            box = ann.get_window_extent(renderer)
            near = sum(box.x0 - 6 <= px <= box.x1 + 6 and box.y0 - 6 <= py <= box.y1 + 6
                       for j, (px, py) in enumerate(dots) if j != i)
            cost = sum(box.overlaps(b) for b in placed) * 10 + 3 * near + (
                0 if (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
                      and box.y1 <= frame.y1) else 5)
            if best_cost is None or cost < best_cost:
                best, best_cost = place, cost
            if cost == 0:
                break
        ann.xyann = best[:2]
        ann.set_ha(best[2])
        ann.set_va(best[3])
        placed.append(ann.get_window_extent(renderer))


def _budgets(ax, view: View, axis: str, scale: float, base_value: float | None,
             higher: bool) -> None:
    """Budget lines and the shaded region where a candidate meets them."""
    b = view.budgets
    limit = b.get("max_size_bytes") if axis == "size" else b.get("max_latency_ms")
    if b.get("max_drop") is not None and base_value is not None:
        line = base_value - b["max_drop"] if higher else base_value + b["max_drop"]
        lo, hi = ax.get_ylim()
        pad = 0.05 * (max(hi, line) - min(lo, line))
        ax.set_ylim(min(lo, line - pad), max(hi, line + pad))
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    x_hi = xlim[1] if limit is None else float(limit) / (scale if axis == "size" else 1.0)
    y_floor = ylim[0] if higher else ylim[1]
    if b.get("max_drop") is not None and base_value is not None:
        y_floor = base_value - b["max_drop"] if higher else base_value + b["max_drop"]
        how = "upper 95 % bound" if b.get("drop_estimate", "upper") == "upper" else "point"
        ax.axhline(y_floor, color=FEASIBLE_COLOR, ls="--", lw=1,
                   label=f"max drop {b['max_drop']:g} ({how})")
    if limit is not None:
        text = fmt_bytes(limit) if axis == "size" else fmt_ms(limit)
        ax.axvline(x_hi, color=FEASIBLE_COLOR, ls="-.", lw=1, label=f"budget {text}")
    top = ylim[1] if higher else ylim[0]
    ax.fill_between([xlim[0], min(x_hi, xlim[1])], y_floor, top, color=FEASIBLE_COLOR,
                    alpha=0.08, lw=0, label="meets the budgets", zorder=0)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)


def _point(ax, row: Row, axis: str, scale: float, y: float, gid: str) -> None:
    color = FAMILY_COLORS.get(row.rec.family, OTHER_COLOR)
    sim = row.rec.runtime == "simulated"
    pts = ax.scatter([_x(row, axis, scale)], [y], s=70 if row.rec.family == "baseline" else 42,
                     marker="D" if row.rec.family == "baseline" else "o", zorder=3,
                     facecolors="none" if sim else color, edgecolors=color, linewidths=1.5)
    pts.set_gid(gid)


def _trade_off(run: RunRecord, view: View, axis: str):
    name, unit, higher = metric_info(run)
    rows = view.rows
    scale, size_unit = bytes_scale(max(r.size_bytes for r in rows))
    fig = _figure(8.4, 4.8)
    ax = fig.subplots()
    floor = _outlier_floor([r.rec.value for r in rows], higher)
    gids, ys = {}, {}
    for fam in sorted({r.rec.family for r in rows}, key=_family_rank):  # legend entries
        ax.scatter([], [], color=FAMILY_COLORS.get(fam, OTHER_COLOR), label=_mpl(fam),
                   marker="D" if fam == "baseline" else "o")
    for i, r in enumerate(rows):
        x, y = _x(r, axis, scale), r.rec.value
        clipped = floor is not None and (y < floor if higher else y > floor)
        ys[r.name] = floor if clipped else y
        if not clipped and r.metric_ci:
            lo, hi = r.metric_ci
            # an interval rounded in results.json may sit a hair off its point
            ax.errorbar([x], [y], yerr=[[max(y - lo, 0.0)], [max(hi - y, 0.0)]], fmt="none",
                        ecolor="#9aa5b1",
                        elinewidth=1, capsize=2, zorder=2)
        gids[f"pt-{view.key}-{axis}-{i}"] = r
        _point(ax, r, axis, scale, ys[r.name], f"pt-{view.key}-{axis}-{i}")
        if clipped:
            ax.annotate(_mpl(f"↓ {r.rec.value:.1f} {unit}"), (x, ys[r.name]), xytext=(0, -14),
                        textcoords="offset points", fontsize=6.5, ha="center", color="#a8071a")
        if r.recommended:
            ax.scatter([x], [ys[r.name]], s=300, facecolors="none", edgecolors=RECOMMENDED_COLOR,
                       linewidths=2, zorder=4, label="recommended")
    xs = [_x(r, axis, scale) for r in rows]
    if min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    if floor is not None:
        lo, hi = ax.get_ylim()
        ax.set_ylim((floor - 0.02 * (hi - floor), hi) if higher else (lo, floor))
    base = run.baseline.value if run.baseline else None
    if view.key == "device":
        _budgets(ax, view, axis, scale, base, higher)
    xlabel = (f"{view.size_label} ({size_unit})" if axis == "size"
              else f"{view.latency_label} (ms)")
    ax.set_xlabel(_mpl(xlabel) + ("  [log]" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel(_mpl(f"{name} ({unit})" if unit else name) + "  (bars: 95 % interval)")
    what = "size" if axis == "size" else "latency"
    ax.set_title(_mpl(f"{view.title}: {name} vs {what}"), loc="left", fontsize=10)
    ax.grid(True, color="#eceff3")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    _place_labels(fig, ax, _spots(rows, axis, scale, ys))  # after the layout: final positions
    return fig, gids


def _family_rank(fam: str) -> int:
    return FAMILY_ORDER.index(fam) if fam in FAMILY_ORDER else len(FAMILY_ORDER)


def _heatmap(run: RunRecord, kind: str, m: dict[str, Any]):
    import numpy as np

    name, unit, higher = metric_info(run)
    layers = list(m["layers"])
    z = np.array([[float(v) for v in m["layers"][layer]] for layer in layers])
    fig = _figure(7.6, 1.6 + 0.32 * len(layers))
    ax = fig.subplots()
    im = ax.imshow(z, aspect="auto", cmap="viridis" if higher else "viridis_r")
    levels = ([f"{100 * float(v):g}% sparse" for v in m["levels"]] if kind == "sparsity"
              else [f"{v}-bit" for v in m["levels"]])
    ax.set_xticks(range(len(levels)), levels, fontsize=8)  # below the cells: never on the title
    ax.set_yticks(range(len(layers)), [_mpl(layer) for layer in layers], fontsize=8)
    mid = (z.max() + z.min()) / 2
    for (i, j), v in np.ndenumerate(z):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                color="white" if (v < mid) == higher else "black")
    fig.colorbar(im, ax=ax, label=_mpl(unit), fraction=0.04)
    what = "pruning one layer alone" if kind == "sparsity" else "quantizing one layer alone"
    ax.set_title(_mpl(f"Sensitivity: {name} when {what}"), loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def _tooltip(row: Row, view: View, unit: str) -> tuple[str, dict[str, str]]:
    t = row.text(unit)
    lines = [row.name, f"{t['metric']} {t['metric_ci']}".strip(),
             f"drop {t['drop']} {t['drop_ci']}".strip(),
             f"{t['size']} ({row.size_form})", f"{t['latency']} ({t['source']})"]
    if t["energy"]:
        lines.append(f"{t['energy']} per inference (estimate)")
    if row.rec.runtime == "simulated":
        lines.append("metric simulated: no runtime kernel")
    data = {"candidate": row.name, "view": view.key, **{k: t[k] for k in (
        "metric", "drop", "drop_ci", "size", "latency", "energy", "source")}}
    return "\n".join(lines), data


def _svg(fig, salt: str, points: dict[str, tuple[str, dict[str, str]]]) -> str:
    """The figure as an inline ``<svg>`` (text kept as text) with hover titles on points."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', r'<svg \1', svg, count=1)
    svg = svg.replace("<svg ", '<svg role="img" ', 1)

    def add(m: re.Match) -> str:
        gid = m.group(1)
        if gid not in points:
            return m.group(0)
        title, data = points[gid]
        attrs = " ".join(f'data-{k}="{html.escape(v, quote=True)}"' for k, v in data.items())
        return f'<g id="{gid}" class="pt" {attrs}><title>{html.escape(title)}</title>'

    return re.sub(r'<g id="([^"]+)">', add, svg)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


CAPTIONS = {
    "device": "Each point is a candidate on the device: the size of the file that ships "
              "there and its latency there (measured where the label says so, else a roofline "
              "estimate). Bars: 95 % interval of the metric. Green: the region that meets the "
              "budgets. Open markers: metric simulated (no runtime kernel). Hover a point.",
    "host": "The artifact files as measured on the study's machine (file size on disk, p50 "
            "latency there). Bars: 95 % interval of the metric. Hover a point.",
}


def render_plots(run: RunRecord) -> dict[str, Plot]:
    """Every plot of the run, keyed ``device_size``, ``device_latency``, ``host_size``,
    ``host_latency``, ``sensitivity_sparsity``, ``sensitivity_bits`` (those that apply)."""
    _, unit, _ = metric_info(run)
    out = {}
    if run.all_candidates():
        for view in views(run):
            for axis in ("size", "latency"):
                fig, gids = _trade_off(run, view, axis)
                key = f"{view.key}_{axis}"
                points = {g: _tooltip(r, view, unit) for g, r in gids.items()}
                out[key] = Plot(key, f"{view.title}: {axis}", _svg(fig, key, points),
                                _png(fig), CAPTIONS[view.key])
    for kind, m in sensitivity_maps(run).items():
        fig = _heatmap(run, kind, m)
        key = f"sensitivity_{kind}"
        caption = ("Metric when one layer alone is pruned to each sparsity, the rest untouched."
                   if kind == "sparsity" else
                   "Metric when one layer alone is quantized to each bit width.")
        out[key] = Plot(key, caption, _svg(fig, key, {}), _png(fig), caption)
    return out

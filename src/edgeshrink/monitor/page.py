"""The monitor's time series as one self-contained HTML page (inline SVG, no script).

Standard library only, so the page can be drawn on the host (``edgeshrink report
--monitor monitor.sqlite``) or on the device itself. Every text from the state is escaped.

Example:
    >>> write_page("monitor.sqlite", "monitor.html")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from edgeshrink.errors import UserError

__all__ = ["render_page", "write_page", "write_report_page", "svg_chart"]

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 560, 220, 56, 26, 14, 30
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def svg_chart(title: str, xs: list[float], series: dict[str, list], *,
              lines: dict[str, float] | None = None,
              band: tuple[list, list] | None = None) -> str:
    """An SVG line chart: ``series`` by name (None = gap), horizontal reference ``lines``,
    and an optional shaded ``band`` (low, high) under the first series."""
    lines = lines or {}
    vals = [v for ys in series.values() for v in ys if v is not None]
    vals += list(lines.values()) + [v for b in (band or ()) for v in b if v is not None]
    if not xs or not vals:
        return f'<figure class="chart"><figcaption>{_e(title)}</figcaption><p>no data</p></figure>'
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(vals), max(vals)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    sx = lambda x: PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R)  # noqa: E731
    sy = lambda y: H - PAD_B - (y - y0) / (y1 - y0) * (H - PAD_T - PAD_B)  # noqa: E731
    parts = [f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{_e(title)}">']
    for t in _ticks(y0, y1):
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
                     f'class="grid"/><text x="{PAD_L - 4}" y="{sy(t) + 4:.1f}" '
                     f'text-anchor="end">{t:.4g}</text>')
    for t in _ticks(x0, x1):
        parts.append(f'<text x="{sx(t):.1f}" y="{H - 10}" text-anchor="middle">{t:,.0f}</text>')
    if band:
        pts = [(x, lo, hi) for x, lo, hi in zip(xs, *band, strict=True) if lo is not None]
        if pts:
            poly = [f"{sx(x):.1f},{sy(hi):.1f}" for x, _, hi in pts]
            poly += [f"{sx(x):.1f},{sy(lo):.1f}" for x, lo, _ in reversed(pts)]
            parts.append(f'<polygon points="{" ".join(poly)}" class="band"/>')
    for i, (name, value) in enumerate(lines.items()):
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{sy(value):.1f}" '
                     f'y2="{sy(value):.1f}" class="ref"/><text x="{W - PAD_R - 2}" '
                     f'y="{sy(value) - 3 - 10 * i:.1f}" text-anchor="end" class="reflabel">'
                     f'{_e(name)} {value:.3g}</text>')
    for i, (name, ys) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        runs, cur = [], []
        for x, y in zip(xs, ys, strict=True):
            if y is None:
                runs, cur = runs + ([cur] if cur else []), []
            else:
                cur.append(f"{sx(x):.1f},{sy(y):.1f}")
        runs += [cur] if cur else []
        for run in runs:
            parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" '
                         'stroke-width="1.6"/>')
        parts.append(f'<text x="{PAD_L + 6 + 110 * i}" y="{PAD_T + 4}" fill="{color}">'
                     f'{_e(name)}</text>')
    parts.append("</svg>")
    return f'<figure class="chart"><figcaption>{_e(title)}</figcaption>{"".join(parts)}</figure>'


_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f5f7fa;color:#1f2933}
header{background:#1f2933;color:#fff;padding:18px 28px}header h1{margin:0;font-size:20px}
main{max-width:1200px;margin:0 auto;padding:18px 28px}.cards{display:flex;gap:12px;
flex-wrap:wrap}.card{background:#fff;border:1px solid #e4e7eb;border-radius:8px;
padding:10px 14px;min-width:150px}.card b{display:block;font-size:18px}.charts{display:grid;
grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:12px;margin-top:14px}
figure.chart{background:#fff;border:1px solid #e4e7eb;border-radius:8px;margin:0;padding:8px}
figcaption{font-weight:600;margin-bottom:4px}svg{width:100%;height:auto;font-size:10px}
.grid{stroke:#e4e7eb}.ref{stroke:#d62728;stroke-dasharray:4 3}.reflabel{fill:#d62728}
.band{fill:#1f77b4;opacity:.15}table{border-collapse:collapse;width:100%;background:#fff;
margin-top:14px}td,th{border-bottom:1px solid #e4e7eb;padding:5px 8px;text-align:left}
"""


def _col(rows: list[dict], key: str) -> list:
    return [r.get(key) for r in rows]


def render_page(state: dict[str, Any], profile: dict[str, Any] | None = None) -> str:
    """The page for a loaded state (``StateStore.load()``) and, if given, its profile."""
    rows, meta, alerts = state["series"], state["meta"], state["alerts"]
    xs = [r["n"] for r in rows]
    thr = (profile or {}).get("thresholds", {}).get("threshold")
    stats = sorted({k[3:] for r in rows for k in r if k.startswith("ks_")})
    charts = [
        svg_chart("drift score (-log10 smallest p-value)", xs, {"score": _col(rows, "score")},
                  lines={"alarm": thr} if thr else None),
        svg_chart("Kolmogorov-Smirnov D", xs, {s: _col(rows, f"ks_{s}") for s in stats}),
        svg_chart("population stability index", xs,
                  {s: _col(rows, f"psi_{s}") for s in stats},
                  lines={"watch": 0.1, "act": 0.25}),
    ]
    if any(r.get("chi2_class") is not None for r in rows):
        charts.append(svg_chart("predicted classes: chi-square vs reference", xs,
                                {"chi2": _col(rows, "chi2_class")}))
    acc_ref = (profile or {}).get("accuracy")
    if any(r.get("acc") is not None for r in rows):
        charts.append(svg_chart("accuracy on labelled samples (95 % Wilson band)", xs,
                                {"accuracy": _col(rows, "acc")},
                                band=(_col(rows, "acc_lo"), _col(rows, "acc_hi")),
                                lines={"profile": acc_ref} if acc_ref is not None else None))
    if any(r.get("agree") is not None for r in rows):
        ref = (profile or {}).get("agreement")
        charts.append(svg_chart("agreement with the uncompressed reference (shadow)", xs,
                                {"agreement": _col(rows, "agree")},
                                lines={"profile": ref} if ref is not None else None))
    charts.append(svg_chart("latency p50 per sample (ms)", xs, {"p50": _col(rows, "lat_p50")}))
    charts.append(svg_chart("resident memory (MB)", xs, {"rss": _col(rows, "rss_mb")}))
    acc = f"{meta['correct'] / meta['labelled']:.1%}" if meta.get("labelled") else "no labels"
    cards = {"samples": f"{meta['samples']:,}", "drift checks": meta.get("checks", 0),
             "alerts": len(alerts), "accuracy": acc, "since": meta.get("created", "?")}
    card_html = "".join(f'<div class="card">{_e(k)}<b>{_e(v)}</b></div>'
                        for k, v in cards.items())
    alert_rows = "".join(
        f"<tr><td>{_e(a.get('time'))}</td><td>{_e(a.get('samples'))}</td><td>{_e(a['alert'])}"
        f"</td><td>{_e(a.get('test', ''))}</td><td>{_e(a.get('value', ''))}</td>"
        f"<td>{_e(a.get('threshold', ''))}</td></tr>" for a in reversed(alerts))
    model = (profile or {}).get("meta", {}).get("model", "")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>edgeshrink '
        f"monitor {_e(model)}</title><style>{_CSS}</style></head><body><header><h1>"
        f"edgeshrink monitor {_e(model)}</h1></header><main><div class=\"cards\">{card_html}"
        f'</div><div class="charts">{"".join(charts)}</div><h2>alerts</h2><table><tr><th>time'
        "</th><th>sample</th><th>alert</th><th>test</th><th>value</th><th>threshold</th></tr>"
        f"{alert_rows or '<tr><td colspan=6>none</td></tr>'}</table></main></body></html>\n")


def write_page(state_path: str | os.PathLike, out: str | os.PathLike,
               profile_path: str | os.PathLike | None = None) -> Path:
    """Render the state at ``state_path`` (with its profile, if given) to ``out``, atomically."""
    from edgeshrink.monitor.state import StateStore

    state_path, out = Path(state_path), Path(out)
    if not state_path.is_file():
        raise UserError(f"monitor state {state_path} does not exist.")
    state = StateStore(state_path).load()
    if state is None:
        raise UserError(f"monitor state {state_path} holds nothing yet; run the monitor first.")
    profile = None
    if profile_path is not None:
        from edgeshrink.monitor.profile import Profile

        profile = Profile.load(profile_path).to_dict()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(render_page(state, profile))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def write_report_page(state: Path, run: Path | None, profile: Path | None) -> Path:
    """``edgeshrink report --monitor STATE [RUN]``: the page goes to ``RUN/monitor.html``, or
    beside the state; the profile is looked up beside the state, then in RUN/recommended/."""
    if profile is None:
        candidates = [Path(state).with_name("monitor-profile.json")]
        if run is not None:
            candidates.append(Path(run) / "recommended" / "monitor-profile.json")
        profile = next((p for p in candidates if p.is_file()), None)
    out = Path(run) / "monitor.html" if run is not None else Path(state).with_suffix(".html")
    return write_page(state, out, profile)

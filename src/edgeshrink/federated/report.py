"""``RUN/federated.html``: accuracy against cumulative bytes, one self-contained page.

The plot is inline SVG (no scripts, nothing fetched), every name from the run is HTML-escaped,
and the page is written atomically.

Example:
    >>> write_federated_report("runs/federated")  # doctest: +SKIP
    PosixPath('runs/federated/federated.html')
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["write_federated_report", "render_federated", "summary_rows", "accuracy_at_bytes",
           "REPORT_FILE"]

REPORT_FILE = "federated.html"
COLORS = ("#444444", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
          "#e377c2", "#17becf", "#bcbd22")
W, H, PAD, LEGEND = 980, 420, 60, 260  # the legend sits in the right margin


def _e(v: Any) -> str:
    return escape(str(v), quote=True)


def accuracy_at_bytes(run: dict[str, Any], budget: float, key: str = "cum_up") -> float:
    """Accuracy a run had reached by the last round whose cumulative ``key`` bytes fit ``budget``
    (its initial accuracy when not even one round fits)."""
    reached = [r["accuracy"] for r in run["rounds"] if r[key] <= budget]
    return reached[-1] if reached else run.get("initial_accuracy", float("nan"))


def summary_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per compressor: final accuracy, drop and byte ratios against the first run."""
    runs = [r for r in payload["runs"] if r["rounds"]]
    if not runs:
        return []
    base = runs[0]["rounds"][-1]
    rows = []
    for run in runs:
        last = run["rounds"][-1]
        rows.append({
            "compressor": run["compressor"], "accuracy": last["accuracy"],
            "drop": base["accuracy"] - last["accuracy"], "upload_bytes": last["cum_up"],
            "upload_ratio": base["cum_up"] / max(last["cum_up"], 1),
            "download_bytes": last["cum_down"],
            "total_ratio": (base["cum_up"] + base["cum_down"]) / max(last["cum_up"] + last["cum_down"], 1),
            "refused": sum(r["refused"] for r in run["rounds"]),
        })
    return rows


def _bytes(r: dict[str, Any], which: str) -> int:
    return r["cum_up"] if which == "upload" else r["cum_up"] + r["cum_down"]


def _svg(runs: list[dict[str, Any]], which: str) -> str:
    pts = [(_bytes(r, which), r["accuracy"]) for run in runs for r in run["rounds"]]
    if not pts:
        return "<p>No rounds yet.</p>"
    xlo, xhi = math.log10(min(p[0] for p in pts)), math.log10(max(p[0] for p in pts))
    ylo, yhi = min(p[1] for p in pts), max(p[1] for p in pts)
    xhi, yhi = max(xhi, xlo + 1e-9), max(yhi, ylo + 1e-9)
    sx = lambda v: PAD + (math.log10(v) - xlo) / (xhi - xlo) * (W - PAD - LEGEND)  # noqa: E731
    sy = lambda v: H - PAD - (v - ylo) / (yhi - ylo) * (H - 2 * PAD)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" '
           f'aria-label="accuracy against cumulative {which} bytes">',
           f'<rect x="{PAD}" y="{PAD}" width="{W - PAD - LEGEND}" height="{H - 2 * PAD}" fill="none" stroke="#999"/>']
    for e in range(math.floor(xlo), math.ceil(xhi) + 1):
        for m in (1, 2, 5):
            if xlo - 1e-9 <= math.log10(m * 10**e) <= xhi + 1e-9:
                out.append(f'<text x="{sx(m * 10**e):.1f}" y="{H - PAD + 16}" font-size="11" '
                           f'text-anchor="middle">{m}e{e}</text>')
    for v in (ylo, (ylo + yhi) / 2, yhi):
        out.append(f'<text x="{PAD - 6}" y="{sy(v):.1f}" font-size="11" text-anchor="end">{v:.1f}</text>')
    out.append(f'<text x="{(W - LEGEND + PAD) / 2}" y="{H - 12}" font-size="12" text-anchor="middle">cumulative {which} '
               f'bytes (log)</text><text x="14" y="{H / 2}" font-size="12" transform="rotate(-90 14 '
               f'{H / 2})" text-anchor="middle">test accuracy %</text>')
    for i, run in enumerate(runs):
        c = COLORS[i % len(COLORS)]
        line = " ".join(f"{sx(_bytes(r, which)):.1f},{sy(r['accuracy']):.1f}" for r in run["rounds"])
        out.append(f'<polyline points="{line}" fill="none" stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{W - LEGEND + 8}" y="{PAD + 14 * i + 10}" font-size="11" fill="{c}">'
                   f"{_e(run['compressor'])}</text>")
    return "\n".join(out) + "</svg>"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_federated(payload: dict[str, Any]) -> str:
    """The HTML page for a simulation's results (``federated.json`` as a dict)."""
    rows = summary_rows(payload)
    table = _table(["compressor", "accuracy %", "drop pt", "upload bytes", "upload ratio",
                    "download bytes", "total ratio", "refused"],
                   [[r["compressor"], f"{r['accuracy']:.2f}", f"{r['drop']:+.2f}", f"{r['upload_bytes']:,}",
                     f"{r['upload_ratio']:.1f}x", f"{r['download_bytes']:,}", f"{r['total_ratio']:.1f}x",
                     r["refused"]] for r in rows])
    device = payload.get("device") or []
    dev = _table(["compressor", "device", "upload B/client/round", "encode ms (estimate)",
                  "encode ms (this host)", "state bytes", "transient bytes"],
                 [[d["compressor"], d["device"], f"{d['upload_bytes_per_client_round']:,.0f}",
                   f"{d['encode_ms_estimate']:.3f}", f"{d['encode_ms_host']:.2f}",
                   f"{d['state_bytes']:,}", f"{d['transient_bytes']:,}"] for d in device]) if device else ""
    cfg = _table(["setting", "value"], [[k, v] for k, v in payload["config"].items()])
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>edgeshrink federated</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:"
        "collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "</style></head><body><h1>Federated learning: accuracy vs bytes on the wire</h1>"
        f"{_svg([r for r in payload['runs'] if r['rounds']], 'upload')}"
        f"{_svg([r for r in payload['runs'] if r['rounds']], 'total (up + down)')}"
        "<h2>Compressors</h2><p>Ratios are against the first row (bytes of real messages: header, "
        f"body and CRC).</p>{table}"
        + (f"<h2>Device view</h2><p>Encode time measured on this host and scaled to the device "
           f"by the profiles' per-core compute and bandwidth ratios (an estimate); memory is the "
           f"state a client keeps between rounds and one encode's buffers.</p>{dev}"
           if dev else "")
        + f"<h2>Settings</h2>{cfg}</body></html>\n"
    )


def write_federated_report(run_dir: Path | str) -> Path:
    """Write ``run_dir/federated.html`` from ``run_dir/federated.json``."""
    from edgeshrink.federated.simulate import RESULTS_FILE
    from edgeshrink.results import atomic_write_text

    payload = json.loads((Path(run_dir) / RESULTS_FILE).read_text())
    path = Path(run_dir) / REPORT_FILE
    atomic_write_text(path, render_federated(payload))
    return path

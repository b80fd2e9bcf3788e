"""Human-readable output of a bench report: a Rich table where Rich is installed, plain
aligned text otherwise (a bare device has only numpy and its runtime)."""

from __future__ import annotations

from typing import Any

__all__ = ["render_report", "render_compare"]


def _mb(n: float | None) -> str:
    return "n/a" if n is None else f"{n:.1f} MiB"


def _ms(x: float) -> str:
    return f"{x:.3f} ms" if x < 10 else f"{x:.1f} ms"


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


def _cpu(rep: dict[str, Any]) -> str:
    others = rep.get("others_cpu_cores")
    text = f"{rep['cpu_percent']:.0f} % (100 = one core)"
    return text if others is None else f"{text}; others used {others:.2f} cores meanwhile"


def _runtimes(rep: dict[str, Any]) -> str:
    parts = []
    for rt in rep.get("runtimes") or [{"name": "onnxruntime", "package": "onnxruntime"}]:
        text = f"{rt['package']} {rt.get('version') or rep['versions'].get(rt['package'], '?')}"
        if rt["name"] == "onnxruntime":
            text += f" ({rep['options']['provider']})"
        parts.append(text)
    return ", ".join(parts)


def _machine(rep: dict[str, Any]) -> str:
    m, o = rep["machine"], rep["options"]
    flags = " ".join(m["cpu_flags"]) or "none known"
    return (
        f"{m['cpu_model'] or m['machine']}, {m['cpu_count']} cores (flags: {flags}); "
        f"{_runtimes(rep)}, {o['threads']} thread(s)"
    )


def _warning(rep: dict[str, Any]) -> str:
    if not rep.get("contended"):
        return ""
    return (
        f"\nWARNING: other processes used {rep['others_cpu_cores']:.2f} cores while timing; "
        "these figures include their interference: rerun on a quiet machine."
    )


def _emit(title: str, headers: list[str], rows: list[list[str]], footer: str) -> str | None:
    """Print with Rich if importable and return None; else return plain text."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join([*lines, footer])
    table = Table(title=title, caption=footer)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    return None


def render_report(rep: dict[str, Any]) -> str | None:
    """Show one ``bench_model`` report (printed via Rich, or returned as plain text)."""
    lat = rep["latency_ms"]
    rows = [
        ["model size", _size(rep["model"]["size_bytes"])],
        ["sha256", rep["model"]["sha256"][:16] + "..."],
        ["load", _ms(rep["load_ms"])],
        ["first inference", _ms(rep["first_inference_ms"])],
        *[[f"latency {q}", _ms(lat[q])] for q in ("min", "mean", "p50", "p90", "p99", "max")],
        ["timed runs", str(lat["count"])],
        ["throughput", f"{rep['throughput_per_s']:.1f} samples/s (batch {rep['batch']})"],
        ["peak resident memory", _mb(rep["peak_rss_mb"])],
        ["  before loading the model", _mb(rep["rss_before_load_mb"])],
        ["CPU while timing", _cpu(rep)],
    ]
    title = f"{rep['model']['name']} ({rep.get('runtime', {}).get('label', 'ONNX Runtime')})"
    return _emit(title, ["", "value"], rows, _machine(rep) + _warning(rep))


def render_compare(rep: dict[str, Any]) -> str | None:
    """Show a ``compare`` report: one column per model, then the ratios to the first."""
    models = rep["models"]
    headers = ["", *[m["label"] for m in models]]

    def row(name: str, fn) -> list[str]:
        return [name, *[fn(m) for m in models]]

    rows = [
        row("runtime", lambda m: m["model"].get("runtime", "onnxruntime")),
        row("size", lambda m: _size(m["model"]["size_bytes"])),
        row("load", lambda m: _ms(m["load_ms"])),
        row("first inference", lambda m: _ms(m["first_inference_ms"])),
        *[
            row(f"latency {q}", lambda m, q=q: _ms(m["latency_ms"][q]))
            for q in ("min", "mean", "p50", "p90", "p99", "max")
        ],
        row("throughput /s", lambda m: f"{m['throughput_per_s']:.1f}"),
    ]
    for key, r in rep["ratios"].items():
        rows.append(
            [
                f"ratio {key}",
                f"p50 x{r['p50']:.3f}",
                f"size x{r['size']:.3f}",
                *[""] * (len(models) - 2),
            ]
        )
    footer = f"interleaved, {_machine(rep)}; process peak {_mb(rep['peak_rss_mb'])}{_warning(rep)}"
    return _emit("edgeshrink bench --compare", headers, rows, footer)

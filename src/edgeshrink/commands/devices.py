"""``edgeshrink devices``: the device profiles known (shipped, and user files)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def devices(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print each profile's sources."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (schema_version, devices)."),
) -> None:
    """List device profiles: memory, peak throughput, what each accelerates, and the
    runtimes that ship on each (preferred first) with the formats they run fast.

    Add your own: pass a YAML path wherever a device name goes, or put files in the folder
    named by $EDGESHRINK_DEVICES (copy a shipped profile as a template).
    """
    from rich.console import Console
    from rich.table import Table

    from edgeshrink.devices import ACCELERATION_KEYS, list_profiles

    if as_json:
        import json

        from edgeshrink.results import SCHEMA_VERSION

        print(json.dumps({"schema_version": SCHEMA_VERSION, "devices": [
            {**p.summary(), "aliases": list(p.aliases), "peak_gmacs": dict(p.peak_gmacs),
             "memory_bandwidth_gbs": p.memory_bandwidth_gbs,
             "default_priority": p.default_priority, "path": str(p.path)}
            for p in list_profiles().values()]}, indent=2, allow_nan=False))
        return
    table = Table(title="device profiles (figures from each profile's sources)")
    table.add_column("name", no_wrap=True)
    for col in ("kind", "RAM", "storage", "peak GMAC/s", "GB/s", "accelerates", "runtimes",
                "priority"):
        table.add_column(col)
    profiles = list_profiles()
    for p in profiles.values():
        peaks = "\n".join(f"{k} {v:g}" for k, v in p.peak_gmacs.items())
        acc = ", ".join(k for k in ACCELERATION_KEYS if p.supports(k)) or "-"
        runtimes = "\n".join(r.label() for r in p.runtimes) or "-"
        table.add_row(p.name, p.kind, _mb(p.ram_mb), _mb(p.storage_mb),
                      peaks, f"{p.memory_bandwidth_gbs:g}", acc, runtimes, p.default_priority)
    console = Console()
    console.print(table)
    if verbose:
        for p in profiles.values():
            aliases = f" aliases: {', '.join(p.aliases)}" if p.aliases else ""
            console.print(f"[bold]{p.name}[/bold]{aliases} ({p.path})")
            for r in p.runtimes:
                console.print(f"  runtime {r.label()}" + (f" ({r.note})" if r.note else ""),
                              markup=False)
            for s in p.sources:
                console.print(f"  - {s}", markup=False)


def _mb(mb: float) -> str:
    return f"{mb / 1024:g} GB" if mb >= 1024 else (f"{mb:g} MB" if mb >= 1 else f"{mb * 1024:g} KB")


def register(app: typer.Typer) -> None:
    app.command("devices")(devices)

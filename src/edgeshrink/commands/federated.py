"""``edgeshrink federated``: FedAvg on one machine with compressed updates, in bytes on the wire.

Example::

    edgeshrink federated --task fashion-mnist --clients 10 --rounds 20 \\
        --compressor topk:0.01+ef --compressor q8 --alpha 0.5 --out runs/federated
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def _alpha(text: str) -> float | None:
    from edgeshrink.errors import UserError

    if text.lower() == "iid":
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"--alpha must be a positive number or 'iid'; got {text!r}.") from None


def federated(
    task: str = typer.Option("fashion-mnist", help="fashion-mnist, mnist (5k digits) or digits (8x8)."),
    clients: int = typer.Option(10, help="Number of clients."),
    rounds: int = typer.Option(20, help="FedAvg rounds."),
    compressor: list[str] = typer.Option(["topk:0.01+ef"], help="Upload compressor spec, e.g. "
                                         "q8, efsign, stc:0.01, powersgd:2+ef (repeatable)."),
    download: str = typer.Option("none", help="Compressor spec of the server's broadcast."),
    alpha: str = typer.Option("0.5", help="Dirichlet non-IID concentration, or 'iid'."),
    fraction: float = typer.Option(1.0, help="Fraction of clients sampled each round."),
    local_steps: int = typer.Option(50, help="Local SGD steps per round."),
    batch: int = typer.Option(32, help="Local minibatch size."),
    lr: float = typer.Option(0.1, help="Local learning rate."),
    hidden: int = typer.Option(200, help="Hidden units of the MLP."),
    seed: int = typer.Option(0, help="Seed of the split, the model and the sampling."),
    dp_clip: float = typer.Option(0.0, help="DP: clip each update to this L2 norm (0 = off)."),
    dp_noise: float = typer.Option(0.0, help="DP: Gaussian noise std as a multiple of --dp-clip."),
    baseline: bool = typer.Option(True, help="Also run uncompressed FedAvg (first) to compare."),
    device: str = typer.Option(None, help="Device profile for the device view (e.g. rpi4)."),
    out: Path = typer.Option(Path("runs/federated"), help="Run folder for federated.json/.html."),
) -> None:
    """Simulate FedAvg with each compressor; write per-round results and a report page."""
    from rich.console import Console

    from edgeshrink.errors import UserError
    from edgeshrink.federated.simulate import FedConfig
    from edgeshrink.federated.spec import parse_spec

    cfg = FedConfig(task=task, clients=clients, rounds=rounds, fraction=fraction,
                    alpha=_alpha(alpha), download=download, local_steps=local_steps, batch=batch,
                    lr=lr, hidden=hidden, seed=seed, dp_clip=dp_clip, dp_noise=dp_noise)
    specs = [str(parse_spec(s)) for s in compressor]
    if baseline and "fp32" not in specs:
        specs.insert(0, "fp32")
    if len(set(specs)) != len(specs):
        raise UserError("each --compressor may be given once.")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the run.")
    if device is not None:
        from edgeshrink.devices import load_profile

        load_profile(device)
    _run(cfg, specs, out, device, Console())


def _run(cfg, specs: list[str], out: Path, device: str | None, console) -> None:
    from rich.table import Table

    from edgeshrink.federated.device import device_view
    from edgeshrink.federated.report import summary_rows, write_federated_report
    from edgeshrink.federated.simulate import simulate

    def progress(spec: str, r: dict) -> None:
        console.print(f"{spec}: round {r['round']} accuracy {r['accuracy']:.2f} % "
                      f"up {r['bytes_up']:,} B down {r['bytes_down']:,} B", markup=False,
                      highlight=False)

    payload = simulate(cfg, specs, out, on_round=progress)
    if device:
        from edgeshrink.federated.simulate import write_results

        payload["device"] = device_view(payload, device)
        write_results(out, payload)
    table = Table(title=f"{cfg.task}: {cfg.clients} clients, {cfg.rounds} rounds")
    table.add_column("compressor", overflow="fold", min_width=12)
    for col in ("accuracy %", "drop pt", "upload bytes", "upload ratio", "refused"):
        table.add_column(col, justify="right")
    for r in summary_rows(payload):
        table.add_row(r["compressor"], f"{r['accuracy']:.2f}", f"{r['drop']:+.2f}",
                      f"{r['upload_bytes']:,}", f"{r['upload_ratio']:.1f}x", str(r["refused"]))
    console.print(table)
    console.print(f"report: {write_federated_report(out)}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("federated")(federated)

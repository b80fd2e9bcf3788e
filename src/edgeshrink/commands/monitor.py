"""``edgeshrink monitor``: watch a deployed model over time (drift, agreement, accuracy).

The same program runs on the device as ``python3 edgeshrink-bench.pyz monitor ...`` with
only numpy and onnxruntime; this command hands its arguments to it unchanged.
"""

from __future__ import annotations

import typer

__all__ = ["register"]


def monitor(ctx: typer.Context) -> None:
    """Run the deployed model on new inputs and check them against its reference profile.

    Subcommands: run, label, status, profile (`edgeshrink monitor --help` lists their
    options). Alerts are JSON lines on stdout; exit code 3 when one was raised.
    """
    from edgeshrink.monitor.cli import main

    code = main(list(ctx.args))
    if code:
        raise SystemExit(code)  # click returns, not raises, a typer.Exit here


def register(app: typer.Typer) -> None:
    app.command(
        "monitor",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                          "help_option_names": []},
        add_help_option=False,
    )(monitor)

"""The ``edgeshrink`` command: subcommands are discovered in ``edgeshrink.commands``.

Every user mistake (an :class:`~edgeshrink.errors.UserError`) ends in one sentence on
stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import errno
import importlib
import os
import pkgutil
import sys

import typer

from edgeshrink import commands
from edgeshrink.errors import UserError

__all__ = ["app", "main"]

app = typer.Typer(
    name="edgeshrink",
    help="Prune, quantize, or both: every sensible compression of a PyTorch model, "
    "measured on the file that would ship, and one recommendation for your device.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from edgeshrink import __version__

        typer.echo(f"edgeshrink {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                 help="Print the version and exit."),
) -> None:
    """Exit codes: 0 done, 2 a mistake in the command or its inputs (one sentence on stderr),
    3 no candidate meets the budget, 130 interrupted."""
    if debug:
        os.environ["EDGESHRINK_DEBUG"] = "1"


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):  # shared helpers, not commands
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, standalone_mode=False)
    except UserError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(getattr(exc, "exit_code", 2)) from None
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except OSError as exc:
        if debug or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" while writing {exc.filename}" if exc.filename else ""
        print(f"error: no space left on the device{where}; files written before are intact: "
              "free some space and run again (a study continues with --resume).", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:  # click usage errors carry their own exit code
        if _is_click(exc, "ClickException") and not debug:
            print(f"error: {_usage_sentence(exc)}", file=sys.stderr)
            raise SystemExit(2) from None
        if _is_click(exc, "Exit"):
            raise SystemExit(exc.exit_code) from None
        raise


def _is_click(exc: Exception, name: str) -> bool:
    """Whether ``exc`` is click's ``name`` exception, from click itself or from the copy
    typer >= 0.20 vendors as ``typer._click`` (a different class with the same name)."""
    return any(c.__name__ == name and "click" in c.__module__ for c in type(exc).__mro__)


def _usage_sentence(exc: Exception) -> str:
    """Click's usage error as one line that points at the command's --help."""
    text = " ".join(str(exc.format_message()).split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    where = f"`{ctx.command_path} --help`" if ctx is not None else "`edgeshrink --help`"
    return f"{text}; see {where}."

"""The one exception type that means "the user gave us something we cannot use"."""

__all__ = ["UserError", "NoCandidateError", "CompressionWarning", "exit_code_of"]


class UserError(Exception):
    """A mistake in what the user gave: the CLI prints the message and exits with code 2.

    The message is one sentence that names the thing and the fix.
    """

    exit_code = 2


class NoCandidateError(UserError):
    """No candidate meets the budget (constraints, device memory): exit code 3, so scripts
    can tell "relax a limit" from "fix the command"."""

    exit_code = 3


class CompressionWarning(UserWarning):
    """A transform did something the user may not expect (a layer nearly emptied, a setting
    that removes nothing); printed once per message, the run goes on."""


def exit_code_of(command) -> int:
    """Run ``command()`` for a device-side entry point (bench, monitor: no typer there) and
    return its exit code: a :class:`UserError` is one sentence on stderr and its
    ``exit_code`` (the traceback when ``EDGESHRINK_DEBUG`` is set), Ctrl-C is 130."""
    import os
    import sys

    try:
        return command()
    except UserError as exc:
        if os.environ.get("EDGESHRINK_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130

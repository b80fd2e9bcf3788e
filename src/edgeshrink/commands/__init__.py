"""CLI subcommands: each module here has ``register(app: typer.Typer) -> None``.

``edgeshrink.cli`` imports every module of this package and lets it add its commands, so a
new command is a new file here and nothing else. Modules import their heavy dependencies
inside the command functions so that ``edgeshrink --help`` stays fast.
"""

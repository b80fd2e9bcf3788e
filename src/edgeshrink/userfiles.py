"""Reading files a user hands over (plans, recipes, device profiles): every way they can be
wrong is one sentence naming the file, never a traceback.

YAML is read with PyYAML's safe loader (no ``!!python/...`` tags) and without aliases:
no edgeshrink file needs ``&anchor``/``*alias``, and refusing them shuts out the
"billion laughs" expansion.

Example:
    >>> load_yaml_file("plan.yaml", "plan file")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeshrink.errors import UserError

__all__ = ["read_text", "load_yaml", "load_yaml_file"]

MAX_BYTES = 16 * 2**20  # plans, recipes and profiles are a few KB


def read_text(path: Path | str, what: str) -> str:
    """The UTF-8 text of ``path``; ``what`` names it in the error (e.g. ``"plan file"``)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UserError(f"{what} {path} is larger than {MAX_BYTES >> 20} MB; is it the "
                            "right file?")
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist.") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a folder; give a file.") from None
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror or exc}).") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {exc.start} is "
                        f"0x{data[exc.start]:02x}); save it as UTF-8.") from None


def _loader():
    import yaml

    class NoAliasSafeLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, "YAML aliases (*name) are not allowed in edgeshrink files",
                    event.start_mark)
            return super().compose_node(parent, index)

    return NoAliasSafeLoader


def load_yaml(text: str, what: str) -> Any:
    """Parse ``text`` (the content of ``what``) with the safe, alias-free loader."""
    import yaml

    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise UserError(f"{what} is not valid YAML ({detail[:300]}).") from None
    except RecursionError:
        raise UserError(f"{what} nests too deeply to be a plan, recipe or profile.") from None


def load_yaml_file(path: Path | str, what: str) -> Any:
    """:func:`read_text` then :func:`load_yaml`."""
    return load_yaml(read_text(path, what), f"{what} {path}")

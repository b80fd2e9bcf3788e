"""Shared pieces of the one-transform commands (``prune``, ``quantize``)."""

from __future__ import annotations

import dataclasses

__all__ = ["parse_sets", "family_kinds"]


def parse_sets(items: list[str], cls) -> dict:
    """``key=value`` strings into field values: text for str fields, YAML for the rest."""
    import yaml

    from edgeshrink.errors import UserError

    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {item!r}.")
        if isinstance(defaults.get(key), str):
            out[key] = text  # keep 2:4 a string (YAML 1.1 reads it as 124)
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise UserError(f"--set {key}: cannot read {text!r} as a value.") from None
        default = defaults.get(key)
        if isinstance(default, tuple) and not isinstance(value, list):
            # a list field given one item: `--set exclude=classifier.5` is ("classifier.5",),
            # text as written for lists of names (YAML would read `exclude=1e3` as a float)
            value = (text.strip(),) if all(isinstance(d, str) for d in default) else (value,)
        out[key] = value
    return out


def family_kinds(family: str) -> list[str]:
    """Kinds of every registered config of ``family`` (``pruning`` or ``quantization``)."""
    from edgeshrink.config import CONFIGS
    from edgeshrink.transforms import load_handlers

    load_handlers()
    return sorted(k for k, c in CONFIGS.items() if c.family == family)

"""Configs: frozen dataclasses that validate themselves and round-trip through plain data.

Every transform of edgeshrink takes one config. A *recipe* is an ordered list of configs,
stored as plain dicts (``{"kind": "unstructured", "sparsity": 0.8, ...}``) so that it can be
saved in results.json, diffed, and passed back on the command line.

Example:
    >>> cfg = config_from_dict({"kind": "unstructured", "sparsity": 0.8})
    >>> config_to_dict(cfg)["sparsity"]
    0.8
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
import types
import typing
from typing import Any, ClassVar

import yaml

from edgeshrink.errors import UserError

__all__ = [
    "Config",
    "register_config",
    "config_from_dict",
    "config_to_dict",
    "recipe_from_yaml",
    "recipe_to_yaml",
    "check_range",
    "check_choice",
    "CONFIGS",
]

CONFIGS: dict[str, type[Config]] = {}

# The packages whose import registers the transform kinds (by name, so that this module
# imports nothing of ours): a recipe read before anything imported them still finds them.
TECHNIQUE_PACKAGES = ("edgeshrink.prune", "edgeshrink.quant", "edgeshrink.train",
                      "edgeshrink.targets.configs")


def load_kinds() -> None:
    """Import every technique package, which registers its config kinds."""
    for name in TECHNIQUE_PACKAGES:
        importlib.import_module(name)


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every transform config.

    ``kind`` is the name a recipe uses for the class; ``stage`` says what the transform
    consumes and produces: ``"model"`` (PyTorch model in, PyTorch model out) or
    ``"artifact"`` (PyTorch model in, deployable artifact out: ends a recipe).
    ``family`` (``pruning``, ``quantization`` or empty) and ``sparsity_kind`` (``none``,
    ``unstructured``, ``structured``, ``n:m``) label the candidates a recipe makes.
    """

    kind: ClassVar[str] = ""
    stage: ClassVar[str] = "model"
    family: ClassVar[str] = ""
    sparsity_kind: ClassVar[str] = "none"

    def __post_init__(self) -> None:  # so that every dataclass subclass calls one
        pass


def _list_fields(cls: type[Config]) -> tuple[str, ...]:
    """Names of the fields whose default is a tuple: the list fields of a config."""
    return tuple(f.name for f in dataclasses.fields(cls) if isinstance(f.default, tuple))


def as_list_fields(cfg: Config) -> None:
    """Give every list field of ``cfg`` a tuple: a scalar (``exclude="classifier.5"``, as a
    YAML recipe or ``--set exclude=classifier.5`` writes it) becomes a one-element tuple
    instead of being iterated character by character; a list becomes a tuple."""
    for name in _list_fields(type(cfg)):
        value = getattr(cfg, name)
        if isinstance(value, list):
            object.__setattr__(cfg, name, tuple(value))
        elif not isinstance(value, tuple):
            object.__setattr__(cfg, name, (value,))


def register_config(cls: type[Config]) -> type[Config]:
    """Class decorator: make ``cls`` reachable from recipes under ``cls.kind``.

    It also normalises the list fields before the class's own ``__post_init__`` validates
    them (see :func:`as_list_fields`).
    """
    if not cls.kind:
        raise TypeError(f"{cls.__name__} needs a non-empty `kind`")
    if cls.kind in CONFIGS and CONFIGS[cls.kind] is not cls:
        raise TypeError(f"config kind {cls.kind!r} registered twice")
    validate = cls.__post_init__

    def __post_init__(self) -> None:
        as_list_fields(self)
        validate(self)

    cls.__post_init__ = __post_init__
    CONFIGS[cls.kind] = cls
    return cls


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain-data form of a config: ``kind`` first, then its fields."""
    out: dict[str, Any] = {"kind": cfg.kind}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a config from its plain-data form; unknown kinds and fields are user errors."""
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in CONFIGS:
        load_kinds()  # `prune --recipe` read YAML when only `finetune` had been imported
    if kind not in CONFIGS:
        known = ", ".join(sorted(CONFIGS))
        raise UserError(f"unknown transform kind {kind!r}; known kinds: {known}.")
    cls = CONFIGS[kind]
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UserError(
            f"{kind}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(names)}."
        )
    _check_values(cls, kind, data)
    for name, value in data.items():
        if isinstance(value, list):
            data[name] = tuple(value)
    try:
        return cls(**data)
    except TypeError as exc:
        raise UserError(f"{kind}: {exc}.") from None


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "text"}


def _scalar_types(hint: Any) -> tuple[type, ...] | None:
    """The plain scalar types a field annotation allows, or None to skip the check."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) \
        else (hint,)
    allowed = tuple(a for a in args if a in (bool, int, float, str, type(None)))
    return allowed if len(allowed) == len(args) else None


def _check_values(cls: type, kind: str, data: dict[str, Any]) -> None:
    """Refuse NaN/infinity anywhere and a value of the wrong type for a scalar field, with a
    sentence naming the field (not a comparison error from deep inside ``__post_init__``)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: leave it to the config
        hints = {}
    for name, value in data.items():
        for v in value if isinstance(value, list | tuple) else (value,):
            if isinstance(v, float) and not math.isfinite(v):
                raise UserError(f"{kind}: {name} must be a finite number, got {v}.")
        allowed = _scalar_types(hints.get(name))
        if not allowed:
            continue
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            want = " or ".join(_TYPE_NAMES.get(t, "null") for t in allowed)
            raise UserError(f"{kind}: {name} must be {want}, got {value!r}.")


def recipe_to_yaml(recipe: list[Config]) -> str:
    return yaml.safe_dump([config_to_dict(c) for c in recipe], sort_keys=False)


def recipe_from_yaml(text: str, what: str = "recipe") -> list[Config]:
    """Configs from a YAML list of config dicts; ``what`` names the source in errors."""
    from edgeshrink.userfiles import load_yaml

    items = load_yaml(text, what) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise UserError(f"{what} must be a YAML list of transform configs such as "
                        "- {kind: int8_static}.")
    return [config_from_dict(item) for item in items]


def check_artifact_last(recipe: list[Config], what: str) -> None:
    """Refuse a recipe whose deployable-file step (INT8, FP16, ...) is not its last step."""
    if any(c.stage == "artifact" for c in recipe[:-1]):
        raise UserError(f"{what}: a step that writes the deployable file (e.g. int8_static, "
                        "fp16) must be the last one.")


def check_range(
    name: str, value: float, low: float, high: float, *, high_open: bool = False
) -> None:
    """Raise a UserError naming ``name`` unless ``low <= value <= high`` (or ``< high``)."""
    ok = low <= value < high if high_open else low <= value <= high
    if not ok:
        bracket = ")" if high_open else "]"
        raise UserError(f"{name} must be in [{low}, {high}{bracket}, got {value}.")


def check_regex(name: str, *patterns: str) -> None:
    """Raise a UserError naming ``name`` unless every pattern is a valid regular expression."""
    for pat in patterns:
        try:
            re.compile(pat)
        except (re.error, TypeError) as exc:
            raise UserError(f"{name} pattern {pat!r} is not a valid regex ({exc}).") from None


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise UserError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}.")

"""The zoo: reference models on real data that ships inside packages (no downloads).

Each task lives in a module ``edgeshrink/zoo/tasks_*.py`` and registers a factory with
:func:`register_task`. Modules are imported on first use, so ``--help`` stays fast and a
task whose optional package is missing fails only when it is asked for.

Example:
    >>> task = load("lenet5-digits")
    >>> task.name
    'zoo:lenet5-digits'
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from edgeshrink.errors import UserError

__all__ = ["register_task", "load", "available", "ZooEntry"]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    factory: Callable[[], object]
    description: str
    requires: tuple[str, ...] = ()  # pip install hints for optional packages


_REGISTRY: dict[str, ZooEntry] = {}
_DISCOVERED = False


def register_task(name: str, description: str, requires: tuple[str, ...] = ()):
    """Decorator: register a no-argument factory returning a Task under ``zoo:name``."""

    def wrap(factory):
        _REGISTRY[name] = ZooEntry(name, factory, description, requires)
        return factory

    return wrap


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("tasks_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _DISCOVERED = True


def available() -> dict[str, ZooEntry]:
    _discover()
    return dict(sorted(_REGISTRY.items()))


def load(name: str):
    """Build the zoo task ``name`` (training and caching its checkpoint on first use)."""
    entries = available()
    if name not in entries:
        raise UserError(f"unknown zoo task {name!r}; known: {', '.join(entries)}.")
    return entries[name].factory()

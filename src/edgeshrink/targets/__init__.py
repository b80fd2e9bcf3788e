"""Targets: one module per runtime that a shipped file runs in.

A target knows how a candidate becomes its runtime's file, how that file is loaded and run
from Python, what it weighs, and which precisions the runtime executes natively.
Measurement (:mod:`edgeshrink.study.runner`) asks a target for figures; it never calls a
runtime by name. Heavy runtimes (OpenVINO, LiteRT, ExecuTorch) are optional extras: their
modules import nothing heavy at import time, and :meth:`Target.missing` says, in one
sentence, what to install.

Example:
    >>> from edgeshrink.targets import get_target
    >>> get_target("onnxruntime").suffix
    '.onnx'
"""

from __future__ import annotations

import importlib

from edgeshrink.errors import UserError
from edgeshrink.targets.base import Target, TargetError

__all__ = ["Target", "TargetError", "get_target", "target_for", "load_builders", "TARGET_NAMES"]

# name -> module defining ``TARGET`` (a Target instance); imported on first use.
_MODULES = {
    "onnxruntime": "edgeshrink.targets.onnxruntime",
    "openvino": "edgeshrink.targets.openvino",
    "litert": "edgeshrink.targets.litert",
    "executorch": "edgeshrink.targets.executorch",
    "tensorrt": "edgeshrink.targets.tensorrt",
}
TARGET_NAMES = tuple(_MODULES)
_ALIASES = {"ort": "onnxruntime", "tflite": "litert", "tflm": "litert", "pte": "executorch",
            "trt": "tensorrt", "ov": "openvino", "simulated": "onnxruntime"}


def get_target(name: str) -> Target:
    """The target called ``name`` (or an alias such as ``tflite``, ``pte``, ``ort``)."""
    key = _ALIASES.get(name, name)
    if key not in _MODULES:
        raise UserError(f"unknown target {name!r}; known: {', '.join(TARGET_NAMES)}.")
    return importlib.import_module(_MODULES[key]).TARGET


def target_for(art) -> Target:
    """The target that runs an :class:`~edgeshrink.transforms.Artifact` (``art.runtime``).
    ``simulated`` artifacts are measured through the dense ONNX file ONNX Runtime runs."""
    return get_target(art.runtime)


def load_builders() -> None:
    """Import every target module: each registers the transform that builds its file."""
    for module in _MODULES.values():
        importlib.import_module(module)

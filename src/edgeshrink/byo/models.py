"""Load a trained model from the file a user has, without running code from it.

=========================  ==========================================================
file                       what it becomes
=========================  ==========================================================
``model.onnx``             :class:`~edgeshrink.byo.onnx_module.OnnxModule` (run in ORT)
``model.pt2``              ``torch.export`` program, rebuilt with real layer modules
``model.pt`` (TorchScript) ``torch.jit.load`` (no pickle)
``weights.pt`` + arch      ``--arch file.py:ClassOrFactory`` built, then
                           ``load_state_dict(torch.load(weights_only=True), strict=True)``
=========================  ==========================================================

A whole pickled ``nn.Module`` (``torch.save(model)``) is refused: unpickling it runs
arbitrary code and needs the class importable under its original module path.

Example:
    >>> model, kind = load_model("weights.pt", arch="net.py:Net")  # doctest: +SKIP
    >>> kind
    'state_dict'
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import torch
from torch import nn

from edgeshrink.errors import UserError

__all__ = ["load_model", "model_kind", "KINDS"]

KINDS = ("onnx", "exported", "torchscript", "state_dict", "module")

PICKLED_MODULE = (
    "{path} holds a whole pickled nn.Module, which edgeshrink will not load: unpickling runs "
    "arbitrary code from the file; save `model.state_dict()` and pass --arch file.py:Class, "
    "or save `torch.export.export(model, (x,))` as a .pt2, or `torch.jit.script(model)`."
)


def model_kind(model: nn.Module) -> str:
    """``onnx``, ``exported``, ``torchscript`` or ``module`` (an ordinary PyTorch module)."""
    from edgeshrink.byo.onnx_module import OnnxModule

    if isinstance(model, OnnxModule):
        return "onnx"
    if isinstance(model, torch.jit.ScriptModule):
        return "torchscript"
    if type(model).__name__ == "ExportedModel" and isinstance(model, torch.fx.GraphModule):
        return "exported"
    return "module"


def load_model(path: Path | str, arch: str | None = None) -> tuple[nn.Module, str]:
    """``(model in eval mode, kind)`` for ``path``; see the module docstring for formats."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist.")
    if arch and path.suffix in (".onnx", ".pt2"):
        raise UserError(f"--arch is for a state dict; {path} already holds its architecture.")
    if path.suffix == ".onnx":
        from edgeshrink.byo.onnx_module import OnnxModule

        return OnnxModule.from_file(path), "onnx"
    if path.suffix == ".pt2":
        return _load_exported(path), "exported"
    if _is_torchscript(path):
        if arch:
            raise UserError(f"{path} is TorchScript and holds its architecture; drop --arch.")
        return torch.jit.load(str(path), map_location="cpu").eval(), "torchscript"
    return _load_state_dict(path, arch), "state_dict"


def _load_exported(path: Path) -> nn.Module:
    from edgeshrink.byo.exported import editable_module

    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise UserError(f"{path} is not a torch.export program saved with "
                        f"torch.export.save ({_short(exc)}).") from None
    return editable_module(program)


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives hold ``*/constants.pkl`` and ``*/code/`` (torch.save zips do not)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _load_state_dict(path: Path, arch: str | None) -> nn.Module:
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise UserError(PICKLED_MODULE.format(path=path)) from None
        raise UserError(f"{path} is not a PyTorch file edgeshrink can read ({_short(exc)}).") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # Lightning-style checkpoints nest it
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state dict (a mapping of names to tensors).")
    if not arch:
        raise UserError(f"{path} is a state dict (weights only): pass --arch file.py:Class "
                        "naming the class or function that builds the model.")
    model = build_arch(arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"{path} does not fit {arch} ({_short(exc)}).") from None
    return model.eval()


def build_arch(spec: str) -> nn.Module:
    """``file.py:Name``: import ``file.py`` and call ``Name()`` (a class or a factory)."""
    path_text, sep, name = spec.rpartition(":")
    path = Path(path_text)
    if not sep or path.suffix != ".py" or not name:
        raise UserError(f"--arch {spec!r} must be file.py:ClassOrFactory.")
    if not path.is_file():
        raise UserError(f"--arch file {path} does not exist.")
    mod_name = f"_edgeshrink_arch_{abs(hash(path.resolve()))}"
    spec_obj = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec_obj)
    sys.modules[mod_name] = module
    spec_obj.loader.exec_module(module)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise UserError(f"--arch file {path} has no class or function {name!r}.")
    model = factory()
    if not isinstance(model, nn.Module):
        raise UserError(f"--arch {spec} returned {type(model).__name__}, not an nn.Module.")
    return model


def _short(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0][:200] if lines else type(exc).__name__).rstrip(".")

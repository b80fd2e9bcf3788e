"""Test doubles of ``edgeshrink.bench.rt_litert`` / ``rt_executorch`` (built elsewhere): the
interface ``edgeshrink.bench.session`` dispatches to, ``open_session(path, threads=1)``
returning an object with onnxruntime's ``get_inputs()`` / ``get_outputs()`` / ``run()``,
over the real LiteRT interpreter and ExecuTorch runtime.

``install(name)`` puts one into ``sys.modules`` under the real module's name; a child
process gets it from :data:`SITECUSTOMIZE`.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import numpy as np

_NP_TYPES = {np.float32: "tensor(float)", np.float16: "tensor(float16)",
             np.int8: "tensor(int8)", np.uint8: "tensor(uint8)", np.int32: "tensor(int32)",
             np.int64: "tensor(int64)", np.bool_: "tensor(bool)"}  # fmt: skip
# ExecuTorch ScalarType codes (c10) -> ORT type strings
_ET_TYPES = {0: "tensor(uint8)", 1: "tensor(int8)", 3: "tensor(int32)", 4: "tensor(int64)",
             5: "tensor(float16)", 6: "tensor(float)", 11: "tensor(bool)"}  # fmt: skip


@dataclass(frozen=True)
class Arg:
    name: str
    shape: list
    type: str


class LiteRTSession:
    def __init__(self, path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self._interp = Interpreter(model_path=str(path), num_threads=threads or None)
        self._interp.allocate_tensors()
        self._ins = self._interp.get_input_details()
        self._outs = self._interp.get_output_details()

    @staticmethod
    def _args(details) -> list[Arg]:
        return [Arg(d["name"], [int(x) for x in d["shape"]], _NP_TYPES[np.dtype(d["dtype"]).type])
                for d in details]

    def get_inputs(self) -> list[Arg]:
        return self._args(self._ins)

    def get_outputs(self) -> list[Arg]:
        return self._args(self._outs)

    def run(self, output_names, feeds: dict) -> list[np.ndarray]:
        for d in self._ins:
            self._interp.set_tensor(d["index"], feeds[d["name"]])
        self._interp.invoke()
        return [self._interp.get_tensor(d["index"]).copy() for d in self._outs]


class ExecuTorchSession:
    def __init__(self, path, threads: int = 1):
        from executorch.runtime import Runtime

        self._method = Runtime.get().load_program(str(path)).load_method("forward")
        self._meta = self._method.metadata

    def _args(self, n: int, meta, prefix: str) -> list[Arg]:
        return [Arg(f"{prefix}{i}", list(meta(i).sizes()), _ET_TYPES[int(meta(i).dtype())])
                for i in range(n)]

    def get_inputs(self) -> list[Arg]:
        return self._args(self._meta.num_inputs(), self._meta.input_tensor_meta, "input_")

    def get_outputs(self) -> list[Arg]:
        return self._args(self._meta.num_outputs(), self._meta.output_tensor_meta, "output_")

    def run(self, output_names, feeds: dict) -> list[np.ndarray]:
        import torch

        xs = [torch.from_numpy(feeds[a.name]) for a in self.get_inputs()]
        return [y.numpy() for y in self._method.execute(xs)]


_CLASSES = {"rt_litert": LiteRTSession, "rt_executorch": ExecuTorchSession}


def make_module(name: str) -> types.ModuleType:
    mod = types.ModuleType(f"edgeshrink.bench.{name}")
    cls = _CLASSES[name]
    mod.open_session = lambda path, threads=1: cls(path, threads)
    return mod


def install(monkeypatch, name: str) -> None:
    monkeypatch.setitem(sys.modules, f"edgeshrink.bench.{name}", make_module(name))


SITECUSTOMIZE = """
import sys
sys.path.insert(0, {here!r})
import rt_doubles
for _name in {names!r}:
    sys.modules["edgeshrink.bench." + _name] = rt_doubles.make_module(_name)
"""

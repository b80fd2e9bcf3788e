"""OpenVINO target: an IR (``NAME.xml`` + ``NAME.bin``) compiled and run on OpenVINO's CPU
plugin. Optional: ``pip install edgeshrink[runtimes]`` (or ``pip install openvino``).

The artifact's ``path`` is the ONNX the IR came from (what ORT-based tools open); the shipped
files are the IR in ``notes["ir"]``, which is what is run, sized and timed here. The build
(our QDQ or NNCF's, see :mod:`edgeshrink.quant.openvino`) compiles with
:func:`compile_openvino` too, so the figures and the build's checks see the same kernels.

Example:
    >>> from edgeshrink.targets import get_target
    >>> get_target("openvino").shipped_files(art)  # [NAME.xml, NAME.bin]  # doctest: +SKIP
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.targets.base import Target, TargetError

__all__ = ["TARGET", "OpenVINOTarget", "compile_openvino", "compiled_graph"]

# The compile settings every measurement uses: f32 where not quantized (OpenVINO's default
# on BF16-capable CPUs is bf16, which would change the metric), latency-oriented streams.
_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}

# A fresh process that compiles the IR and runs it: the memory a device owner sees
# (edgeshrink.bench.fresh adds the peak report).
_CHILD = r"""
import json, sys
import numpy as np, openvino as ov
ir, npz, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
arrays = np.load(npz)
cfg = dict(json.loads(sys.argv[4]), INFERENCE_NUM_THREADS=threads)
compiled = ov.Core().compile_model(ir, "CPU", cfg)
feeds = [arrays[f"arr_{k}"] for k in range(len(arrays.files))]
for _ in range(3):
    compiled(feeds)
"""


def compile_openvino(model, threads: int = 2):
    """A callable ``fn(*arrays) -> first output`` over an OpenVINO model (or an IR path),
    forced to f32 where not quantized; ``fn.compiled`` is the compiled model
    (``get_runtime_model()`` shows what the plugin runs)."""
    import openvino as ov

    model = str(model) if isinstance(model, Path) else model
    compiled = ov.Core().compile_model(model, "CPU", {**_CONFIG, "INFERENCE_NUM_THREADS": threads})

    def run(*arrays: np.ndarray) -> np.ndarray:
        return compiled(list(arrays))[0]

    run.compiled = compiled
    return run


def compiled_graph(fn) -> collections.Counter:
    """What OpenVINO's CPU plugin runs for ``fn`` (from :func:`compile_openvino`): its
    runtime nodes counted by (kind, output precision). Two files with equal counts run the
    same kernels, so a latency gap between them is measurement noise."""
    info = (op.get_rt_info() for op in fn.compiled.get_runtime_model().get_ops())
    return collections.Counter((i["layerType"].astype(str), i["outputPrecisions"].astype(str))
                               for i in info)  # fmt: skip


def _ir(art) -> Path:
    """The IR ``.xml`` an artifact ships (``notes["ir"]``, else its own path if an ``.xml``)."""
    ir = art.notes.get("ir") or (art.path if Path(art.path).suffix == ".xml" else None)
    if ir is None:
        raise TargetError(f"OpenVINO has no IR for {Path(art.path).name}: the artifact names "
                          "no .xml (notes['ir']).")
    return Path(ir)


class OpenVINOTarget(Target):
    name = "openvino"
    label = "OpenVINO (IR .xml + .bin)"
    suffix = ".xml"
    extra = "runtimes"
    precisions = frozenset({"fp32", "int8"})

    def missing(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec("openvino") is None:
            return ("OpenVINO is not installed; install it with `pip install edgeshrink[runtimes]` "
                    "(or `pip install openvino`).")
        return None

    def load(self, path: Path, threads: int = 1):
        """Compile the IR at ``path`` (``.xml``; the ``.bin`` beside it) on the CPU plugin."""
        self.require()
        return compile_openvino(Path(path), threads)

    def shipped_files(self, art) -> list[Path]:
        ir = _ir(art)
        return [ir, ir.with_suffix(".bin")]

    def outputs(self, art, data, batch_size: int = 128) -> np.ndarray:
        """The shipped IR's first output over ``data``."""
        run = self.load(_ir(art), threads=2)
        return np.concatenate([run(*xs) for xs in data.numpy_batches(batch_size)])

    def figures(self, art, inputs: tuple[np.ndarray, ...], threads: tuple[int, ...],
                budget_s: float = 1.0) -> dict[str, Any]:
        """Size of ``.xml`` + ``.bin``, latency per thread count, fresh-process memory."""
        from dataclasses import replace

        figures = super().figures(replace(art, path=_ir(art)), inputs, threads, budget_s)
        return {**figures, "path": _ir(art)}

    def peak_memory_mb(self, art, inputs: tuple[np.ndarray, ...], threads: int) -> float | None:
        import json

        return self.fresh_peak_mb(_CHILD, _ir(art), inputs, str(threads), json.dumps(_CONFIG))

    def loading_code(self, art, *, file_name: str) -> str:
        """Compile ``file_name`` (its ``.bin`` beside it) on the CPU plugin and run it."""
        return (
            "import numpy as np\n"
            "import openvino as ov\n\n"
            f'compiled = ov.Core().compile_model("{file_name}", "CPU",\n'
            '                                    {"INFERENCE_PRECISION_HINT": "f32"})\n'
            "shape = [d.get_length() if d.is_static else 1 for d in compiled.inputs[0]"
            ".get_partial_shape()]\n"
            "x = np.zeros(shape, dtype=np.float32)  # your input here\n"
            "outputs = compiled([x])[0]\n"
        )


TARGET = OpenVINOTarget()

"""Study candidates for the deployed ONNX Runtime precisions (INT8 by calibrator, dynamic,
FP16, weight-only INT4 where MatMuls dominate, prune + INT8).

Example:
    >>> [s.name for s in quantization_candidates(task)][:1]
    ['int8-static-minmax']
"""

from __future__ import annotations

from edgeshrink.quant.calibrate import CALIBRATORS
from edgeshrink.quant.ort import DynamicInt8Config, Fp16Config, StaticInt8Config, matmul_dominated
from edgeshrink.study.plan import CandidateSpec

__all__ = ["quantization_candidates"]


def quantization_candidates(task, *, finetune_epochs: int = 2) -> list:
    """The deployed quantization candidates a study should measure on ``task``.

    INT8 static with each calibrator (per-channel; per-tensor for min-max and the
    percentile), INT8 dynamic, FP16, weight-only INT4 where MatMuls dominate, and magnitude
    pruning at 50 % with fine-tuning then INT8 static.

    Example:
        >>> specs = quantization_candidates(load_task("zoo:lenet5-digits"))
    """
    from edgeshrink.prune import UnstructuredConfig
    from edgeshrink.quant.int4 import Int4WeightOnlyConfig
    from edgeshrink.train import FinetuneConfig

    specs = [CandidateSpec(f"int8-static-{c}", (StaticInt8Config(calibrator=c),))
             for c in CALIBRATORS]  # fmt: skip
    specs += [
        CandidateSpec(f"int8-static-{c}-per-tensor",
                      (StaticInt8Config(calibrator=c, per_channel=False),))
        for c in ("minmax", "mse")
    ]  # fmt: skip
    specs += [
        CandidateSpec("int8-dynamic", (DynamicInt8Config(),)),
        CandidateSpec("fp16", (Fp16Config(),)),
    ]
    if matmul_dominated(task.model, 32):
        specs.append(CandidateSpec("int4-weight-only-g32", (Int4WeightOnlyConfig(group_size=32),)))
    if task.train is not None:
        prune = (UnstructuredConfig(sparsity=0.5), FinetuneConfig(epochs=finetune_epochs))
        specs.append(CandidateSpec("prune-50+int8-static-mse",
                                   (*prune, StaticInt8Config(calibrator="mse"))))  # fmt: skip
    return specs

"""Study candidates for real pretrained models (issue 5): MobileNetV2, O-Net, MiniLM.

One list per task covering INT8 static (best calibrator for the model kind), INT8 dynamic,
FP16, weight-only INT4 where MatMuls dominate, one-shot Wanda at 50 % and 2:4, structured
channels (CNNs) or FFN neurons/heads (transformers), prune-then-quantize, and the
mixed-precision variants that keep the first and last layers in FP32. Choices are the ones
``benchmarks/bench_pretrained.py`` measured best (numbers in benchmarks/RESULTS.md).

Example:
    >>> specs = pretrained_candidates(load_task("zoo:mobilenetv2-imagenet"))
"""

from __future__ import annotations

import importlib.util
import re

from torch import nn

from edgeshrink.quant.pretrained import edge_layers, narrowing_layers
from edgeshrink.study.plan import CandidateSpec

__all__ = ["pretrained_candidates"]


def _transformer(model: nn.Module) -> bool:
    """No convolutions, and Linear layers hold most weights apart from embedding tables
    (MiniLM's 11.7 M-entry word embedding outweighs its 10.6 M Linear weights)."""
    modules = list(model.modules())
    if any(isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) for m in modules):
        return False
    embed = sum(m.weight.numel() for m in modules if isinstance(m, nn.Embedding))
    linear = sum(m.weight.numel() for m in modules if isinstance(m, nn.Linear))
    return linear > (sum(p.numel() for p in model.parameters()) - embed) / 2


def _quant_specs(task, transformer: bool) -> list:
    from edgeshrink.quant.int4 import Int4WeightOnlyConfig
    from edgeshrink.quant.ort import DynamicInt8Config, Fp16Config, StaticInt8Config
    from edgeshrink.quant.outliers import OUTLIER_PATTERN, OutlierSplitConfig
    from edgeshrink.quant.pertoken import PerTokenInt8Config
    from edgeshrink.quant.smooth import SmoothQuantConfig

    edges = edge_layers(task.model)
    specs = [CandidateSpec("int8-dynamic", (DynamicInt8Config(),)),
             CandidateSpec("fp16", (Fp16Config(),))]  # fmt: skip
    if transformer:
        # Static QDQ needs an answer to activation outliers first (SmoothQuant); residual
        # Adds and LayerNorms stay FP32 (ops = MatMul/Gemm only).
        static = StaticInt8Config(calibrator="percentile", ops=("MatMul", "Gemm"))
        specs += [
            CandidateSpec("smoothquant-0.5+int8-static", (SmoothQuantConfig(alpha=0.5), static)),
            CandidateSpec("int8-dynamic-keep-ffn-out",
                          (DynamicInt8Config(exclude=(r"\d\.output\.dense$",)),)),
            CandidateSpec("int4-weight-only-g32", (Int4WeightOnlyConfig(group_size=32),)),
            # per-token activation scales: on MiniLM the FFN down projections alone take
            # cosine 0.9919 -> 0.9952 at ~1.04x dynamic INT8's latency; all layers -> 0.9987
            # (symmetric, one op fewer per layer: 0.9970)
            CandidateSpec("int8-per-token-all", (PerTokenInt8Config(),)),
            CandidateSpec("int8-per-token-all-symmetric", (PerTokenInt8Config(symmetric=True),)),
        ]  # fmt: skip
        if narrowing := narrowing_layers(task.model):
            # LLM.int8()-style: the FFN down projections' outlier input channels in an FP32
            # side MatMul; on MiniLM cosine 0.9950 at 0.58x ORT FP32 (dynamic alone 0.57x)
            split = OutlierSplitConfig(layers="|".join(narrowing))
            specs += [
                CandidateSpec("int8-per-token-ffn-down", (PerTokenInt8Config(layers=narrowing),)),
                CandidateSpec("outlier-split-ffn-down+int8-dynamic",
                              (split, DynamicInt8Config(exclude=(OUTLIER_PATTERN,)))),
            ]  # fmt: skip
    else:
        specs += [
            CandidateSpec("int8-static-percentile", (StaticInt8Config(calibrator="percentile"),)),
            CandidateSpec("int8-static-mse", (StaticInt8Config(calibrator="mse"),)),
            CandidateSpec("int8-static-percentile-keep-ends",
                          (StaticInt8Config(calibrator="percentile", exclude=edges),)),
            CandidateSpec("int8-static-percentile-biascorr",
                          (StaticInt8Config(calibrator="percentile", bias_correction=True),)),
        ]  # fmt: skip
        if importlib.util.find_spec("openvino"):
            from edgeshrink.quant.openvino import OpenVinoInt8Config

            specs += [CandidateSpec("openvino-int8", (OpenVinoInt8Config(activations="uint8"),)),
                      CandidateSpec("openvino-int8-mixed",
                                    (OpenVinoInt8Config(activations="mixed"),))]  # fmt: skip
    return specs


def _prune_specs(task, transformer: bool) -> list:
    from edgeshrink.prune.obs import WandaConfig
    from edgeshrink.prune.structured import StructuredConfig
    from edgeshrink.quant.ort import DynamicInt8Config, StaticInt8Config
    from edgeshrink.train import FinetuneConfig

    # one-shot pruning handles Linear and ungrouped convs: depthwise convs stay dense
    grouped = tuple(re.escape(f"{name}.weight") for name, m in task.model.named_modules()
                    if isinstance(m, nn.Conv2d) and m.groups > 1)  # fmt: skip
    specs = [CandidateSpec("wanda-50", (WandaConfig(0.5, exclude=grouped),)),
             CandidateSpec("wanda-2:4", (WandaConfig(pattern="2:4", exclude=grouped),))]  # fmt: skip
    # transformers: heads and FFN neurons only; the residual stream's width (embeddings,
    # the Linears that write into it, LayerNorms; Hugging Face BERT names) stays
    residual = (r".*embeddings.*", r".*attention\.output\.dense", r".*layer\.\d+\.output\.dense",
                r".*LayerNorm")  # fmt: skip
    # head_ratio only where the attention modules are ones the pruner recognises (num_heads +
    # q/k/v): Hugging Face BERT's are not, and there head_ratio silently removed nothing
    from edgeshrink.prune.structured import _attention

    heads = 0.25 if _attention(task.model) else 0.0
    structured = (StructuredConfig(ratio=0.25, head_ratio=heads, exclude=residual) if transformer
                  else StructuredConfig(ratio=0.25, round_to=16))  # fmt: skip
    prefix: tuple = (structured,)
    if task.train is not None:  # distillation from the FP32 model on unlabelled data
        prefix = (structured, FinetuneConfig(epochs=2))
    quant = DynamicInt8Config() if transformer else StaticInt8Config(calibrator="percentile")
    specs += [CandidateSpec("structured-25", prefix),
              CandidateSpec(f"structured-25+{quant.kind}", (*prefix, quant))]  # fmt: skip
    return specs


def pretrained_candidates(task) -> list:
    """The issue-5 candidate recipes for a pretrained ``task`` (CNN or transformer).

    Example:
        >>> [s.name for s in pretrained_candidates(load_task("zoo:minilm"))][:2]
        ['int8-dynamic', 'fp16']
    """
    transformer = _transformer(task.model)
    return _quant_specs(task, transformer) + _prune_specs(task, transformer)

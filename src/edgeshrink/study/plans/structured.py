"""Study candidates for structured (channel) pruning: fewer MACs, fine-tuned, and + INT8.

Example:
    >>> [s.name for s in structured_candidates(None)]
    ['channels-30mac', 'channels-50mac', 'channels-50mac+int8-static']
"""

from __future__ import annotations

from edgeshrink.prune.structured import StructuredConfig
from edgeshrink.study.plan import CandidateSpec

__all__ = ["structured_candidates"]


def structured_candidates(task=None, *, finetune_epochs: int = 3) -> list:
    """Structured candidates for a study: 30 % / half the MACs removed, fine-tuned with
    distillation from the unpruned model, and + INT8.

    Fine-tuning is included only when the task has labelled training data.
    """
    from edgeshrink.quant import StaticInt8Config
    from edgeshrink.task import has_labels
    from edgeshrink.train import FinetuneConfig

    labelled = has_labels(task)
    # distilled from the unpruned model: ResNet-20/MNIST at 54 % fewer MACs kept 97.2 % with
    # distill=0.5 against 95.4 % on labels alone (baseline 97.6 %; benchmarks/RESULTS.md)
    ft = (FinetuneConfig(epochs=finetune_epochs, distill=0.5),) if labelled else ()
    specs = []
    for pct in (30, 50):
        prune = StructuredConfig(macs_reduction=pct / 100, importance="taylor")
        specs.append(CandidateSpec(f"channels-{pct}mac", (prune, *ft)))
    half = StructuredConfig(macs_reduction=0.5, importance="taylor")
    specs.append(CandidateSpec("channels-50mac+int8-static", (half, *ft, StaticInt8Config())))
    return specs

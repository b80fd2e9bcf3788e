"""Study candidates for the unstructured / N:M / one-shot pruning family.

Example:
    >>> [c.name for c in pruning_candidates(task)][:2]
    ['magnitude-90+ft+distill', 'random-50']
"""

from __future__ import annotations

from edgeshrink.study.plan import CandidateSpec

__all__ = ["pruning_candidates"]


def pruning_candidates(task=None, *, finetune_epochs: int = 3):
    """Named recipes: magnitude 90 % with fine-tuning and distillation, random 50 % (the
    baseline that shows what a criterion is worth), Wanda and SparseGPT at 50 % one-shot,
    2:4 by Wanda, iterative and gradual (cubic) schedules to 90 %.

    ``task`` may be None; a task without training data gets only the one-shot candidates.
    """
    from edgeshrink.prune.nm import NMConfig  # noqa: F401  (registers the kind)
    from edgeshrink.prune.obs import SparseGPTConfig, WandaConfig
    from edgeshrink.prune.schedule import GradualConfig, IterativeConfig
    from edgeshrink.prune.unstructured import UnstructuredConfig
    from edgeshrink.train import FinetuneConfig

    epochs = max(1, finetune_epochs)
    one_shot = [
        CandidateSpec("random-50", (UnstructuredConfig(0.5, criterion="random"),)),
        CandidateSpec("magnitude-50-oneshot", (UnstructuredConfig(0.5, scope="layer"),)),
        CandidateSpec("wanda-50", (WandaConfig(0.5),)),
        CandidateSpec("sparsegpt-50", (SparseGPTConfig(0.5),)),
        CandidateSpec("wanda-2:4", (WandaConfig(pattern="2:4"),)),
    ]
    if task is not None and getattr(task, "train", None) is None:
        return one_shot
    trained = [
        CandidateSpec("magnitude-90+ft+distill", (
            UnstructuredConfig(0.9), FinetuneConfig(epochs=epochs, distill=0.5),
        )),
        CandidateSpec("iterative-90", (
            IterativeConfig(0.9, steps=3, epochs_per_step=max(1, epochs // 2), distill=0.5),
        )),
        CandidateSpec("gradual-90", (
            GradualConfig(final=0.9, epochs=epochs + 1, end_epoch=float(epochs), distill=0.5),
        )),
    ]
    return trained[:1] + one_shot + trained[1:]

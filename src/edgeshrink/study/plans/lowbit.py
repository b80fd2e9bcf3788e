"""Study candidates for the simulated precisions and QAT.

Example:
    >>> [s.name for s in lowbit_candidates(task)][:2]
    ['qat-int8', 'qat-int4']
"""

from __future__ import annotations

from edgeshrink.quant.advanced import AdvancedPtqConfig
from edgeshrink.quant.lowbit import LowBitConfig
from edgeshrink.quant.mixed import MixedConfig
from edgeshrink.quant.nonuniform import KMeansConfig, Po2Config, deep_compression_recipe
from edgeshrink.quant.qat import QatConfig
from edgeshrink.study.plan import CandidateSpec

__all__ = ["lowbit_candidates"]


def lowbit_candidates(task=None, *, epochs: int = 2):
    """QAT 8/4-bit, PTQ 4-bit (min-max and AdaRound), binary, ternary, k-means 4-bit,
    power-of-two, mixed 8/4 and Deep Compression; tasks without training data get only
    the post-training ones."""
    trainable = task is None or task.train is not None
    specs = [
        CandidateSpec("ptq-int4", (LowBitConfig(bits=4),)),
        CandidateSpec("adaround-int4", (AdvancedPtqConfig(bits=4),)),
        CandidateSpec("mixed-8/4", (MixedConfig(low=4, high=8),)),
        CandidateSpec("po2-4", (Po2Config(bits=4),)),
    ]
    if not trainable:
        return specs
    return [
        CandidateSpec("qat-int8", (QatConfig(bits=8, epochs=epochs),)),
        CandidateSpec("qat-int4", (QatConfig(bits=4, act_bits=0, epochs=epochs),)),
        *specs,
        CandidateSpec("binary", (LowBitConfig(scheme="binary", ends_bits=8, epochs=epochs,
                                              lr=1e-3),)),
        CandidateSpec("ternary", (LowBitConfig(scheme="ternary", ends_bits=8, epochs=epochs,
                                               lr=1e-3),)),
        CandidateSpec("kmeans-4", (KMeansConfig(bits=4, epochs=1),)),
        CandidateSpec("deep-compression", deep_compression_recipe()),
    ]

"""Which candidates a study builds: named recipes.

The default plan covers the seeds' basic techniques; a user's plan is a YAML mapping
``name: [config, ...]`` (see ``edgeshrink.config`` for the config dicts).

Example plan file::

    prune-70:
      - {kind: unstructured, sparsity: 0.7}
      - {kind: finetune, epochs: 2}
    int8:
      - {kind: int8_static, calibrator: percentile}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeshrink.config import Config, check_artifact_last, config_from_dict, config_to_dict
from edgeshrink.errors import UserError

__all__ = [
    "CandidateSpec", "default_plan", "named_plan", "resolve_plan", "load_plan", "PLANS",
    "family_of", "sparsity_kind_of",
]


@dataclass(frozen=True)
class CandidateSpec:
    """A named recipe."""

    name: str
    recipe: tuple[Config, ...]

    def __post_init__(self) -> None:
        if not self.recipe and self.name != "baseline":  # the study's own baseline entry
            raise UserError(_empty(self.name))

    def recipe_dicts(self) -> list[dict]:
        return [config_to_dict(c) for c in self.recipe]


def _empty(name: str) -> str:
    return (f"candidate {name!r} has an empty recipe: it would be the baseline itself; give "
            "it at least one transform.")


def family_of(recipe) -> str:
    families = {c.family for c in recipe if c.family}
    if not families:
        return "baseline"
    return families.pop() if len(families) == 1 else "both"


def sparsity_kind_of(recipe) -> str:
    kinds = [c.sparsity_kind for c in recipe if c.sparsity_kind != "none"]
    return kinds[-1] if kinds else "none"


def default_plan(task=None, *, finetune_epochs: int = 3) -> list[CandidateSpec]:
    """Unstructured pruning at 50/80/90 % with fine-tuning, INT8 static / dynamic, FP16,
    and pruning 80 % then INT8 static."""
    from edgeshrink.prune import UnstructuredConfig
    from edgeshrink.quant import DynamicInt8Config, Fp16Config, StaticInt8Config
    from edgeshrink.train import FinetuneConfig

    ft = FinetuneConfig(epochs=finetune_epochs)
    specs = [
        CandidateSpec(f"prune-{int(s * 100)}", (UnstructuredConfig(sparsity=s), ft))
        for s in (0.5, 0.8, 0.9)
    ]
    specs += [
        CandidateSpec("int8-static", (StaticInt8Config(),)),
        CandidateSpec("int8-static-percentile", (StaticInt8Config(calibrator="percentile"),)),
        CandidateSpec("int8-dynamic", (DynamicInt8Config(),)),
        CandidateSpec("fp16", (Fp16Config(),)),
        CandidateSpec(
            "prune-80+int8-static", (UnstructuredConfig(sparsity=0.8), ft, StaticInt8Config())
        ),
    ]
    return specs


def load_plan(path: Path | str) -> list[CandidateSpec]:
    """Read a YAML plan ``{name: [config dict, ...]}``."""
    from edgeshrink.transforms import load_handlers

    load_handlers()
    from edgeshrink.userfiles import load_yaml_file

    path = Path(path)
    data = load_yaml_file(path, "plan file")
    if not isinstance(data, dict) or not data:
        raise UserError(f"plan file {path} must map candidate names to lists of configs.")
    specs = []
    for name, items in data.items():
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise UserError(f"plan file {path}: candidate {name!r} must be a list of configs "
                            "such as {kind: int8_static}.")
        if not items:
            raise UserError(f"plan file {path}: {_empty(str(name))}")
        recipe = tuple(config_from_dict(i) for i in items)
        check_artifact_last(list(recipe), f"plan file {path}: candidate {name!r}")
        specs.append(CandidateSpec(str(name), recipe))
    return specs


def _pruning(task, epochs: int) -> list[CandidateSpec]:
    from edgeshrink.study.plans.pruning import pruning_candidates
    from edgeshrink.study.plans.structured import structured_candidates

    return (pruning_candidates(task, finetune_epochs=epochs)
            + structured_candidates(task, finetune_epochs=epochs))


def _quantization(task, epochs: int) -> list[CandidateSpec]:
    from edgeshrink.study.plans.lowbit import lowbit_candidates
    from edgeshrink.study.plans.quantization import quantization_candidates

    return (quantization_candidates(task, finetune_epochs=epochs)
            + lowbit_candidates(task, epochs=max(1, epochs - 1)))


def _pretrained(task, _epochs: int) -> list[CandidateSpec]:
    from edgeshrink.study.plans.pretrained import pretrained_candidates

    return pretrained_candidates(task)


def _full(task, epochs: int) -> list[CandidateSpec]:
    return default_plan(task, finetune_epochs=epochs) + _pruning(task, epochs) + _quantization(
        task, epochs)


PLANS = {
    "default": ("the basic techniques: unstructured 50/80/90 %, INT8 static/dynamic, FP16, "
                "prune+INT8", lambda task, epochs: default_plan(task, finetune_epochs=epochs)),
    "pruning": ("every pruning family: magnitude, random, Wanda, SparseGPT, 2:4, iterative, "
                "gradual, structured channels (+INT8)", _pruning),
    "quantization": ("every precision: INT8 by calibrator, dynamic, FP16, INT4, QAT, low-bit, "
                     "binary/ternary, k-means, power-of-two, mixed, Deep Compression",
                     _quantization),
    "pretrained": ("for a large pretrained model: INT8 static (best calibrators, bias "
                   "correction) / dynamic, FP16, INT4 where MatMuls dominate, OpenVINO INT8, "
                   "Wanda 50 % and 2:4, structured (+INT8)", _pretrained),
    "full": ("default + pruning + quantization", _full),
}


def named_plan(name: str, task, *, finetune_epochs: int = 3) -> list[CandidateSpec]:
    """One of :data:`PLANS`, without duplicate names or recipes (the first one wins)."""
    if name not in PLANS:
        raise UserError(f"unknown plan {name!r}; give one of {', '.join(PLANS)} or a YAML file.")
    specs, seen = [], set()
    for spec in PLANS[name][1](task, finetune_epochs):
        if spec.name not in seen and spec.recipe not in seen:
            seen.update((spec.name, spec.recipe))
            specs.append(spec)
    return specs


def resolve_plan(plan: str | None, task, *, finetune_epochs: int = 3, device=None,
                 priority: str | None = None, limits=(), on_note=None) -> list[CandidateSpec]:
    """``--plan``: a plan name, a YAML file, or None: the device-driven plan when ``device``
    (a profile or its name) is given (:func:`edgeshrink.study.plans.device.device_plan`,
    with ``priority``, ``limits`` and ``on_note``), else the default plan."""
    if plan is None and device is not None:
        from edgeshrink.devices import load_profile
        from edgeshrink.study.plans.device import device_plan

        return device_plan(task, load_profile(device), finetune_epochs=finetune_epochs,
                           priority=priority, limits=limits, on_note=on_note)
    if plan is None or plan in PLANS:
        return named_plan(plan or "default", task, finetune_epochs=finetune_epochs)
    if not plan.endswith((".yaml", ".yml")) and not Path(plan).exists():
        raise UserError(f"unknown plan {plan!r}; give one of {', '.join(PLANS)} or a YAML file.")
    return load_plan(plan)

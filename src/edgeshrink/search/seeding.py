"""Sensitivity scans that build, prune and seed the search space of a model on a device.

Three one-at-a-time scans on the calibration split (PyTorch, so the held-out eval set does
not steer the search): each dependency group alone losing each channel ratio (metric drop
and MACs removed), each layer alone in INT8 (:func:`edgeshrink.quant.mixed.layer_sensitivity`)
and, on devices with sparse kernels, each layer alone at each sparsity
(:func:`edgeshrink.prune.sensitivity.scan`). Choices whose drop alone already exceeds
``prune_limit`` leave the space; greedy allocations over the scans (least predicted drop per
MAC removed, Han et al. 2015's sensitivity reasoning) become the first trials, together with
every fixed-plan candidate the space can represent exactly (the pruning plan's Taylor-ranked,
MAC-targeted ``channels-*mac`` with distilled fine-tuning, plain INT8, the quantization
plan's ``qat-int8``), so that the search starts where the plans are and the sampler improves
from there.

Example:
    >>> space, scans = build_space(task, load_profile("rpi4"), max_drop=1.0)
    >>> first = seeds(space, scans, max_drop=1.0, plans=plan_recipes(task, 3))
"""

from __future__ import annotations

import copy
from typing import Any

from edgeshrink.devices import Profile
from edgeshrink.measure.model_stats import count_macs, torch_outputs
from edgeshrink.search.space import (
    MACS,
    RATIOS,
    SPARSITIES,
    SearchSpace,
    int4_group,
    precision_of,
    recipe_of,
    walk,
)

__all__ = ["build_space", "group_scan", "seeds", "complete", "params_of", "plan_recipes"]

# fixed plans whose representable candidates seed a search, with the config kinds a seed
# must hold (None: any); the quantization plan's INT8-by-calibrator variants are left to the
# sampler (the space has them, but 7 seeds of them would crowd out everything else)
SEED_PLANS = (("pruning", None), ("default", None), ("quantization", "qat"))

# priorities that start from light structured removal in INT8 (:func:`_fast_seeds`)
FAST_PRIORITIES = ("speed", "energy")

_SCAN_SAMPLES = 500


def group_scan(task, groups: list[str], ratios=RATIOS) -> dict[str, Any]:
    """``{"ratios", "drop": {group: [...]}, "macs_removed": {group: [...]}}``, one group at
    a time pruned to each ratio (L1 ranking, no fine-tuning)."""
    from edgeshrink.prune.layerwise import GroupStructuredConfig, prune_groups

    data = task.calibration.head(min(_SCAN_SAMPLES, len(task.calibration)))
    example = task.example_inputs()
    base = task.metric(torch_outputs(task.model, data), data.targets)
    base_macs = count_macs(task.model, example)[0]
    drop, macs = {}, {}
    for g in groups:
        drop[g], macs[g] = [0.0], [0.0]
        for r in ratios[1:]:
            m = prune_groups(copy.deepcopy(task.model), GroupStructuredConfig((g,), (r,)), example)
            drop[g].append(round(task.metric.drop(base, task.metric(
                torch_outputs(m, data), data.targets)), 4))
            macs[g].append(round(1.0 - count_macs(m, example)[0] / base_macs, 6))
    return {"ratios": list(ratios), "drop": drop, "macs_removed": macs}


def _most_macs_removed(task) -> float:
    """The fraction of MACs uniform channel pruning at its largest ratio removes: a MAC
    target above it is refused by ``structured`` (the trial would fail)."""
    from edgeshrink.prune.structured import StructuredConfig, prune_structured

    example = task.example_inputs()
    base = count_macs(task.model, example)[0]
    try:
        m = prune_structured(copy.deepcopy(task.model), StructuredConfig(ratio=0.9), example)
    except Exception:  # noqa: BLE001 - a model structured pruning refuses: no MAC targets
        return 0.0
    return round(1.0 - count_macs(m, example)[0] / base, 4)


def _precisions(task, profile: Profile, space: SearchSpace) -> list[str]:
    from torch import nn

    out = ["fp32", "int8"]
    if space.qat_epochs:
        out.append("qat8")
    if profile.supports("fp16"):
        out.append("fp16")
    if profile.supports("int4"):
        widths = [m.in_features for m in task.model.modules() if isinstance(m, nn.Linear)]
        space.int4_group = int4_group(widths)
        if space.int4_group is not None:
            out.append("int4")
        else:
            space.notes.append("no INT4: no INT4 group size (16-256) divides the input size "
                               f"of a Linear layer ({widths})")
    return out


def build_space(task, profile: Profile, *, max_drop: float = 1.0,
                max_epochs: int = 3) -> tuple[SearchSpace, dict[str, Any]]:
    """The space for ``task`` on ``profile``, narrowed by the scans; returns the scans too."""
    from edgeshrink.prune.layerwise import prunable_groups
    from edgeshrink.quant.calibrate import CALIBRATORS
    from edgeshrink.quant.fake import quantizable_layers
    from edgeshrink.quant.mixed import layer_sensitivity

    base = task.metric(torch_outputs(task.model, task.calibration), task.calibration.targets)
    limit = max(10.0 * max_drop, 0.3 * abs(base))  # fine-tuning recovers much; not a wreck
    from edgeshrink.task import has_labels

    labelled = has_labels(task)
    space = SearchSpace(calibrators=list(CALIBRATORS), bias_correction=[False, True],
                        epochs=list(range(max_epochs + 1)) if labelled else [0],
                        distill=[0.0, 0.5] if labelled else [0.0],
                        importance=["l1", "taylor"],
                        qat_epochs=list(range(1, max_epochs + 1)) if labelled else [],
                        qat_distill=[0.0, 0.5])
    if not space.qat_epochs:
        space.notes.append("no QAT: " + ("no fine-tuning epochs (--finetune-epochs 0)"
                                         if labelled else "no labelled training data"))
    space.precisions = _precisions(task, profile, space)
    scans: dict[str, Any] = {"prune_limit": limit}
    try:
        groups = prunable_groups(copy.deepcopy(task.model), task.example_inputs())
    except Exception as exc:  # a layer the dependency graph cannot take: no width dimension
        groups = []
        space.notes.append(f"no structured widths: {exc}")
    scans["groups"] = group_scan(task, groups)
    for g in groups:
        row = scans["groups"]["drop"][g]
        space.groups[g] = [r for r, d in zip(RATIOS, row, strict=True) if r == 0 or d <= limit]
    if groups:
        scans["max_macs_removed"] = most = _most_macs_removed(task)
        space.macs = [m for m in MACS if m <= most]
        if len(space.macs) < len(MACS):
            space.notes.append(f"MAC targets up to {most:.1%}: the most uniform channel "
                               "pruning removes from this model (ratio 0.9, widths rounded)")
    bits = layer_sensitivity(task.model, task.calibration, task.metric, levels=(8,))
    scans["int8"] = {n: task.metric.drop(bits["reference"], v[0])
                     for n, v in bits["layers"].items()}
    space.quant_layers = list(quantizable_layers(task.model))
    if profile.supports("unstructured"):
        _sparsity_dims(task, space, scans, limit)
    else:
        space.notes.append(f"no per-layer sparsity: {profile.name} has no sparse kernels, so "
                           "zeros buy neither speed nor stored bytes there")
    return space, scans


def _sparsity_dims(task, space: SearchSpace, scans: dict, limit: float) -> None:
    from edgeshrink.prune.sensitivity import scan

    table = scan(task.model, task, levels=SPARSITIES)["sparsity"]
    higher = table.get("higher_is_better", True)
    scans["sparsity"] = table
    for name, values in table["layers"].items():
        drops = [(values[0] - v) if higher else (v - values[0]) for v in values]
        space.layers[name] = [s for s, d in zip(SPARSITIES, drops, strict=True)
                              if s == 0 or d <= limit]


def _allocate_groups(space: SearchSpace, scan: dict, target: float) -> dict[str, float]:
    """Greedy: raise the ratio of the group with the least predicted drop per MAC removed
    until ``target`` of the MACs are predicted gone (drops and MACs assumed additive)."""
    ratios = scan["ratios"]
    pos = dict.fromkeys(space.groups, 0)

    def removed() -> float:
        return sum(scan["macs_removed"][g][ratios.index(space.groups[g][i])]
                   for g, i in pos.items())

    while removed() < target:
        best, cost = None, float("inf")
        for g, i in pos.items():
            if i + 1 >= len(space.groups[g]):
                continue
            a, b = ratios.index(space.groups[g][i]), ratios.index(space.groups[g][i + 1])
            gain = scan["macs_removed"][g][b] - scan["macs_removed"][g][a]
            c = (max(scan["drop"][g][b] - scan["drop"][g][a], 0.0) + 1e-3) / max(gain, 1e-9)
            if c < cost:
                best, cost = g, c
        if best is None:
            break
        pos[best] += 1
    return {g: space.groups[g][i] for g, i in pos.items()}


def _int8(space: SearchSpace, scans: dict, max_drop: float, *, careful: bool,
          per_channel: bool = True) -> dict:
    sensitive = {n for n, d in scans.get("int8", {}).items() if d > max(max_drop / 2, 0.1)}
    params: dict[str, Any] = {"precision": "int8", "calibrator": "minmax",
                              "bias_correction": careful, "per_channel": per_channel}
    params.update({f"q:{n}": not (careful and n in sensitive) for n in space.quant_layers})
    return params


def seeds(space: SearchSpace, scans: dict, *, max_drop: float = 1.0,
          plans: list[tuple] | tuple = (), priority: str | None = None) -> list[dict[str, Any]]:
    """The first trials (Optuna ``enqueue_trial``): plain INT8; each fixed-plan recipe the
    space represents exactly (``plans``), an FP32 MAC-targeted one also in INT8 and an INT8
    one also one MAC step further; per-tensor INT8 sparing the sensitive layers; the light
    end (the smallest MAC target by Taylor ranking, with and without distilled fine-tuning,
    and a quarter of every group's channels, each in that careful INT8); the sensitivity
    allocation of 30 % of the MACs over the groups, fine-tuned, in INT8. A QAT seed (the
    quantization plan's ``qat-int8``) also runs with per-tensor weight scales, and the
    lightest FP32 MAC-targeted one also ends in QAT, there and a MAC step further with
    per-tensor weight scales. Distinct recipes.

    With ``priority`` speed or energy (and INT8 and MAC targets offered), the search starts
    where lossless speed-ups live: right after the plans' seeds, the smallest MAC target by
    each ranking, fine-tuned, in per-tensor INT8 with the last layer (and the layers the INT8
    scan finds sensitive) in FP32, and in plain per-channel INT8 (:func:`_fast_seeds`). To
    leave the sampler the same room, they replace seeds that cannot be fast there: the
    plans' FP32 MAC-targeted recipes (their INT8 twins stay), the pruned QAT ones and the
    light end without fine-tuning. Any other priority: the list above, unchanged."""
    int8 = "int8" in space.precisions
    fast = priority in FAST_PRIORITIES and int8 and bool(space.macs)
    careful = _int8(space, scans, max_drop, careful=True, per_channel=False) if int8 \
        else {"precision": "fp32"}
    out: list[dict[str, Any]] = [_int8(space, scans, max_drop, careful=False)] if int8 else []
    from_plans = [p for p in (params_of(space, r) for r in plans) if p is not None]
    fp32_macs = [p for p in from_plans if p.get("prune") == "macs" and precision_of(p) == "fp32"]
    out += [p for p in from_plans if not (fast and p in fp32_macs)]
    out += [n for p in from_plans for n in _neighbours(space, p)]
    ft = {"epochs": max(space.epochs), "distill": max(space.distill)}
    if fast:
        out += _fast_seeds(space, scans, max_drop, ft)
    if fp32_macs and "qat8" in space.precisions and not fast:  # the lightest one ends in QAT,
        qat = {**min(fp32_macs, key=lambda p: p["macs"]), "precision:pruned": "qat8",
               "qat_distill": 0.5,  # the quantization plan's QAT epochs: one fewer
               "qat_epochs": max(1, max(space.epochs) - 1)}  # than fine-tuning's
        out += [qat, *_neighbours(space, qat)]
    if int8:
        out.append(careful)
    if space.macs:
        light = {"prune": "macs", "macs": space.macs[0], "importance": space.importance[-1]}
        out += [{**light, **ft, **careful}] + ([] if fast else [{**light, **careful}])
    if space.groups:
        quarter = {f"w:{g}": 0.25 if 0.25 in c else 0.0 for g, c in space.groups.items()}
        out.append({"prune": "groups", **quarter, "importance": space.importance[-1], **ft,
                    **careful})
        widths = {f"w:{g}": r for g, r in _allocate_groups(space, scans["groups"], 0.3).items()}
        tail = _int8(space, scans, max_drop, careful=True) if int8 else {"precision": "fp32"}
        out.append({"prune": "groups", **widths, **ft, **tail})
    if space.layers and "sparsity" in scans:
        out.append({**_sparsity_seed(space, scans), **ft,
                    **(_int8(space, scans, max_drop, careful=True) if int8 else {})})
    out += [{"precision": p} for p in ("fp16", "int4") if p in space.precisions]
    return _distinct(space, out)


def _fast_seeds(space: SearchSpace, scans: dict, max_drop: float,
                ft: dict[str, Any]) -> list[dict[str, Any]]:
    """Light structured removal for a speed or energy priority: the smallest MAC target
    the space offers, by each ranking it offers, fine-tuned, then calibrated INT8 twice: per
    tensor with the layers the INT8 scan finds sensitive kept FP32, and per channel on every
    layer. (lenet300-mnist on a Pi 4: random search found 20 % of the MACs by L1, fine-tuned,
    per-tensor INT8, 0.07398 ms at -0.10 against plain INT8's 0.07585 ms at +0.00. Keeping the
    last layer FP32 regardless of the scan was tried and left: its extra Q/DQ boundary made
    it slower than plain INT8 on all three zoo tasks, e.g. 0.07685 ms on lenet300-mnist.)"""
    spare = {n for n, d in scans.get("int8", {}).items() if d > max(max_drop / 2, 0.1)}
    tensor = {**_int8(space, scans, max_drop, careful=False, per_channel=False),
              **{f"q:{n}": n not in spare for n in space.quant_layers}}
    channel = _int8(space, scans, max_drop, careful=False)
    out = []
    for importance in space.importance:
        light = {"prune": "macs", "macs": space.macs[0], "importance": importance, **ft}
        out += [{**light, **tensor}, {**light, **channel}]
    return out


def _neighbours(space: SearchSpace, params: dict[str, Any]) -> list[dict[str, Any]]:
    """An unpruned QAT point with per-tensor weight scales; an FP32 MAC-targeted point in
    INT8; an INT8 one a MAC step further; a QAT one a MAC step further with per-tensor
    weight scales."""
    precision = precision_of(params)
    if params.get("prune") != "macs":
        twin = precision == "qat8" and params.get("per_channel", True) and \
            False in space.per_channel
        return [{**params, "per_channel": False}] if twin else []
    if precision == "fp32":
        return [{**params, "precision:pruned": "int8"}] if "int8" in space.precisions else []
    further = [m for m in space.macs if m > params["macs"]]
    if not further:
        return []
    step = {**params, "macs": further[0]}
    if precision == "qat8" and False in space.per_channel:  # smaller still: QAT learns the
        step["per_channel"] = False  # one step per tensor (lenet5-mnist: +0.6 either way)
    return [step]


def plan_recipes(task, finetune_epochs: int) -> list[tuple]:
    """The recipes of the fixed plans :data:`SEED_PLANS` for ``task`` that hold the kind
    each names (a plan that cannot be built for this task contributes nothing)."""
    from edgeshrink.study.plan import named_plan

    out = []
    for name, kind in SEED_PLANS:
        try:
            specs = named_plan(name, task, finetune_epochs=finetune_epochs)
        except Exception:  # noqa: BLE001 - a plan this task cannot take seeds nothing
            continue
        out += [s.recipe for s in specs if kind is None or kind in {c.kind for c in s.recipe}]
    return out


def params_of(space: SearchSpace, recipe: tuple) -> dict[str, Any] | None:
    """The point of ``space`` whose recipe is exactly ``recipe``, or None when the space
    cannot represent it (another config kind, a field value the space does not offer)."""
    kinds = [c.kind for c in recipe]
    params: dict[str, Any] = {}
    rest = list(recipe)
    if kinds[:1] == ["structured"]:
        cfg = rest.pop(0)
        params.update(prune="macs", macs=cfg.macs_reduction, importance=cfg.importance)
    if rest and rest[0].kind == "finetune":
        params.update(epochs=rest[0].epochs, distill=rest[0].distill)
        rest.pop(0)
    if len(rest) > 1:
        return None
    if rest:
        cfg = rest[0]
        params["precision"] = {"int8_static": "int8", "fp16": "fp16", "qat": "qat8",
                               "int4_weight_only": "int4"}.get(cfg.kind, "?")
        if cfg.kind == "int8_static":
            params.update(calibrator=cfg.calibrator, per_channel=cfg.per_channel,
                          bias_correction=cfg.bias_correction)
        if cfg.kind == "qat":  # other fields (bits, lr, ...): the final equality decides
            params.update(qat_epochs=cfg.epochs, qat_distill=cfg.distill,
                          per_channel=cfg.per_channel)
    try:
        point = complete(space, params)
    except ValueError:
        return None
    return point if recipe_of(space, point) == tuple(recipe) else None


def _sparsity_seed(space: SearchSpace, scans: dict) -> dict[str, Any]:
    from edgeshrink.prune.sensitivity import allocate

    sizes = {n: 1 for n in space.layers}  # equal weight: the device pays per layer
    per = allocate({"sparsity": scans["sparsity"]}, sizes, 0.8, by="metric")
    return {f"s:{n}": min(space.layers[n], key=lambda s, v=v: abs(s - v))
            for n, v in per.items()}


def complete(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """The point ``params`` names, every dimension it leaves out at its no-change value and
    under the names :func:`~edgeshrink.search.space.suggest` asks (an enqueued trial fixes
    only the parameters it names; the sampler would draw the others). Raises ValueError
    for a value the space does not offer."""
    defaults = {"prune": "groups", "importance": "l1", "precision": "fp32",
                "calibrator": "minmax", "per_channel": True, "bias_correction": False,
                "epochs": 0, "distill": 0.0, "qat_distill": 0.5}

    def pick(name: str, choices: list) -> Any:
        name_in = "precision" if name == "precision:pruned" and name not in params else name
        if name_in not in params:
            default = 0.0 if name[:2] in ("w:", "s:") else True if name[:2] == "q:" \
                else defaults.get(name_in)
            return default if default in choices else choices[0]
        value = params[name_in]
        if value not in choices:
            raise ValueError(f"{name}={value!r} is not one of {choices}")
        return value

    return walk(space, pick)


def _distinct(space: SearchSpace, points: list[dict]) -> list[dict]:
    """Each recipe once, as complete points; a point the space cannot take is left out."""
    seen, out = set(), []
    for q in points:
        try:
            p = complete(space, q)
        except ValueError:
            continue
        key = recipe_of(space, p)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out

"""Sensitivity scans that build, prune and seed the search space of a model on a device.

Three one-at-a-time scans on the calibration split (PyTorch, so the held-out eval set does
not steer the search): each dependency group alone losing each channel ratio (metric drop
and MACs removed), each layer alone in INT8 (:func:`edgeshrink.quant.mixed.layer_sensitivity`)
and, on devices with sparse kernels, each layer alone at each sparsity
(:func:`edgeshrink.prune.sensitivity.scan`). Choices whose drop alone already exceeds
``prune_limit`` leave the space; greedy allocations over the scans (least predicted drop per
MAC removed, Han et al. 2015's sensitivity reasoning) become the first trials.

Example:
    >>> space, scans = build_space(task, load_profile("rpi4"), max_drop=1.0)
    >>> first = seeds(space, scans, max_drop=1.0)
"""

from __future__ import annotations

import copy
from typing import Any

from edgeshrink.devices import Profile
from edgeshrink.measure.model_stats import count_macs, torch_outputs
from edgeshrink.search.space import RATIOS, SPARSITIES, SearchSpace, recipe_of

__all__ = ["build_space", "group_scan", "seeds", "complete"]

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


def _labelled(task) -> bool:
    train = getattr(task, "train", None)
    return train is not None and len(train) > 0 and train.targets.ndim == 1


def _precisions(task, profile: Profile) -> list[str]:
    from torch import nn

    linear = any(isinstance(m, nn.Linear) for m in task.model.modules())
    out = ["fp32", "int8"]
    if profile.supports("fp16"):
        out.append("fp16")
    if profile.supports("int4") and linear:
        out.append("int4")
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
    space = SearchSpace(precisions=_precisions(task, profile), calibrators=list(CALIBRATORS),
                        bias_correction=[False, True],
                        epochs=list(range(max_epochs + 1)) if _labelled(task) else [0])
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


def seeds(space: SearchSpace, scans: dict, *, max_drop: float = 1.0) -> list[dict[str, Any]]:
    """The first trials (Optuna ``enqueue_trial``): plain INT8, per-tensor INT8 sparing the
    sensitive layers, and sensitivity-allocated channel pruning at 30/50/15 % of the MACs
    with fine-tuning, in INT8 and FP32; distinct recipes only."""
    out: list[dict[str, Any]] = []
    int8 = "int8" in space.precisions
    if int8:
        out += [_int8(space, scans, max_drop, careful=False),
                _int8(space, scans, max_drop, careful=True, per_channel=False)]
    epochs = {"epochs": max(space.epochs)}
    for target, precision in ((0.3, "int8"), (0.5, "int8"), (0.15, "int8"), (0.5, "fp32")):
        if not space.groups:
            break
        widths = {f"w:{g}": r for g, r in _allocate_groups(space, scans["groups"],
                                                           target).items()}
        tail = _int8(space, scans, max_drop, careful=True) if precision == "int8" and int8 \
            else {"precision": "fp32"}
        out.append({**widths, **epochs, **tail})
    if space.layers and "sparsity" in scans:
        out.append({**_sparsity_seed(space, scans), **epochs,
                    **(_int8(space, scans, max_drop, careful=True) if int8 else {})})
    out += [{"precision": p} for p in ("fp16", "int4") if p in space.precisions]
    return _distinct(space, out)


def _sparsity_seed(space: SearchSpace, scans: dict) -> dict[str, Any]:
    from edgeshrink.prune.sensitivity import allocate

    sizes = {n: 1 for n in space.layers}  # equal weight: the device pays per layer
    per = allocate({"sparsity": scans["sparsity"]}, sizes, 0.8, by="metric")
    return {f"s:{n}": min(space.layers[n], key=lambda s, v=v: abs(s - v))
            for n, v in per.items()}


def complete(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with every dimension it leaves out at its no-change value: an enqueued
    trial fixes only the parameters it names (the sampler would draw the others)."""
    full = {f"w:{g}": 0.0 for g in space.groups}
    full.update({f"s:{n}": 0.0 for n in space.layers})
    full["precision"] = "fp32"
    full.update(params)
    if full["precision"] == "int8":
        full = {f"q:{n}": True for n in space.quant_layers} | {
            "calibrator": space.calibrators[0], "bias_correction": False,
            "per_channel": True} | full
    if any(v > 0 for k, v in full.items() if k[:2] in ("w:", "s:")):
        full.setdefault("epochs", 0)
    return full


def _distinct(space: SearchSpace, points: list[dict]) -> list[dict]:
    seen, out = set(), []
    for p in map(lambda q: complete(space, q), points):
        key = recipe_of(space, p)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out

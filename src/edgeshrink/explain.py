"""The advisor's words: the verdict, the reasons, why not the others, why nothing fits.

Every number here comes from the advisor's device figures (the same ones stored in the
recommendation's ``estimates``, which the report's device view shows) and is formatted by
:mod:`edgeshrink.units`, so a figure reads the same in the reasons, the cards, the tables
and the plots.
"""

from __future__ import annotations

from typing import Any

from edgeshrink.results import CandidateRecord
from edgeshrink.ties import drop_ci
from edgeshrink.units import fmt_bytes, fmt_interval, fmt_mj, fmt_ms, fmt_points

__all__ = ["verdict", "reasons", "why_not", "no_fit", "technique", "fmt_drop_ci"]

_LIMIT_TEXT = {"max_size": "size", "max_latency": "latency", "max_energy": "energy",
               "max_drop": "metric drop"}


def technique(c: CandidateRecord) -> str:
    parts = []
    if c.sparsity_kind not in ("none", "") and c.sparsity > 0:
        parts.append(f"{c.sparsity_kind} pruning {c.sparsity:.0%}")
    if c.precision != "fp32":
        parts.append(c.precision)
    return " + ".join(parts) or "no compression"


def fmt_drop_ci(c: CandidateRecord) -> str:
    """``'+0.12 [-0.05, +0.30]'``: the drop and its 95 % interval where measured."""
    ci = drop_ci(c)
    text = fmt_points(c.metric_drop)
    return f"{text} {fmt_interval(ci, signed=True)}" if ci and c.family != "baseline" else text


def _latency(f) -> str:
    return f"{fmt_ms(f.latency_ms)} ({f.latency_source})"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "-"


def verdict(f, base, figs, profile) -> str:
    """One line for the top of the report: what to do on this device, and what it buys."""
    c = f.rec
    pruned = c.sparsity_kind not in ("none", "") and c.sparsity > 0
    quant = c.precision != "fp32"
    action = {(True, True): "prune and quantize", (False, True): "quantize, don't prune",
              (True, False): "prune, don't quantize", (False, False): "keep it as it is"}
    what = action[(pruned, quant)]
    if c.family == "baseline":
        what = "ship the baseline"
    prune_only = [g for g in figs if g.rec.family == "pruning" and g.fits]
    if quant and not pruned and prune_only and all(
            g.size_bytes >= f.size_bytes and g.latency_ms >= f.latency_ms for g in prune_only):
        what += " (pruning alone buys less here)"
    return (f"on {profile.name}: {what}: {c.name}, {fmt_bytes(f.size_bytes)} "
            f"({_ratio(base.size_bytes, f.size_bytes)} smaller), {_latency(f)}, "
            f"drop {fmt_drop_ci(c)} points")


def _bought(f, base, profile) -> str:
    c = f.rec
    why = "; ".join(f.notes[:1]) or _gain_note(c, profile)
    return (f"{c.name} ({technique(c)}) on {profile.name}: {fmt_bytes(f.size_bytes)} "
            f"({f.size_form}, {_ratio(base.size_bytes, f.size_bytes)} smaller), "
            f"{_latency(f)}, {_ratio(base.latency_ms, f.latency_ms)} the baseline's speed, "
            f"drop {fmt_drop_ci(c)} points" + (f" — {why}." if why else "."))


def _gain_note(c: CandidateRecord, profile) -> str:
    parts = []
    if c.sparsity_kind == "structured" and c.sparsity > 0:
        parts.append("channels are physically removed, so fewer dense MACs run on any device")
    if c.precision != "fp32":
        parts.append(f"{c.precision} is accelerated on {profile.name}")
    return "; ".join(parts)


def _fmt_score(f, priority: str) -> str:
    return {"accuracy": lambda: f"drop {fmt_drop_ci(f.rec)} points",
            "size": lambda: fmt_bytes(f.size_bytes), "speed": lambda: fmt_ms(f.latency_ms),
            "energy": lambda: fmt_mj(f.energy_mj)}[priority]()


def reasons(choice, base, figs, binding, cons, profile, priority) -> list[str]:
    """Plain sentences; the first says what was chosen, the second any tie on accuracy."""
    f, c = choice.chosen, choice.chosen.rec
    out = [f"On {profile.name} with priority {priority}, {c.name} ({technique(c)}) is best: "
           f"{fmt_bytes(f.size_bytes)} ({f.size_form}), {_latency(f)}, "
           f"{fmt_mj(f.energy_mj)} per inference (estimate), metric drop {fmt_drop_ci(c)} "
           "points."]
    if choice.tied:
        others = "; ".join(f"{g.rec.name} (drop {fmt_drop_ci(g.rec)}, {t.how})"
                           for g, t, _ in choice.tied)
        told = "; ".join(_told_apart(f, g, by, profile) for g, _, by in choice.tied)
        out.append(f"Tied on accuracy: the evaluation set cannot tell {c.name} (drop "
                   f"{fmt_drop_ci(c)}) from {others}; decided on {choice.decided_on}: {told}.")
    out.append("Binding: " + ", ".join(binding) + f" excluded candidates that were better on "
               f"{priority}." if binding else "No constraint binds: the choice is the best on "
               f"{priority} among all candidates that fit {profile.name}.")
    if cons.max_drop is not None:
        which = ("the upper end of each drop's 95 % interval" if cons.drop_estimate == "upper"
                 else "each measured drop (point estimate)")
        out.append(f"--max-drop {cons.max_drop:g} is checked against {which}.")
    out += [_bought(g, base, profile) for g in figs if g is not base]
    if c.runtime == "simulated":
        out.append(f"{c.name}'s metric is simulated (no runtime kernel for its format); it "
                   f"ships as its {f.size_form}, decoded to dense FP32 at load.")
    if (c.notes or {}).get("accuracy_caveat"):  # e.g. its INT8 weights saturate only here
        out.append(f"{c.name}: {c.notes['accuracy_caveat']}")
    return out


def _told_apart(winner, loser, by: str, profile) -> str:
    """How ``winner`` beat ``loser`` once they were tied on accuracy."""
    w, lo = winner.rec.name, loser.rec.name
    if by in ("size", "speed", "energy"):
        return f"{w} {_fmt_score(winner, by)} vs {lo} {_fmt_score(loser, by)}"
    same = (f"equal on {profile.name} ({fmt_bytes(winner.size_bytes)}, "
            f"{fmt_ms(winner.latency_ms)}, {fmt_mj(winner.energy_mj)})")
    if by == "simpler recipe":
        return (f"{w} and {lo} are {same}, so {lo}'s extra steps buy nothing there: the "
                f"simpler recipe ({len(winner.rec.recipe)} step(s) vs "
                f"{len(loser.rec.recipe)}) wins")
    if by == "drop":
        return f"{w} and {lo} are {same}; {w} has the smaller measured drop"
    return f"{w} and {lo} are {same}; {w} comes first"


def _memory_reason(f, profile) -> str:
    if not f.fits_ram:
        return (f"it needs {fmt_bytes(f.ram_bytes)} of RAM and {profile.name} offers "
                f"{fmt_bytes(profile.ram_bytes)}")
    return (f"its {fmt_bytes(f.size_bytes)} {f.size_form} exceeds the "
            f"{fmt_bytes(profile.storage_bytes)} of storage on {profile.name}")


def fmt_violation(name: str, value: float, limit: float, cons=None) -> str:
    if name == "max_size":
        return f"size {fmt_bytes(value)} > {fmt_bytes(limit)}"
    if name == "max_latency":
        return f"latency {fmt_ms(value)} > {fmt_ms(limit)}"
    if name == "max_energy":
        return f"energy {fmt_mj(value)} > {fmt_mj(limit)}"
    upper = cons is None or cons.drop_estimate == "upper"
    return (f"metric drop{' (upper 95 % bound)' if upper else ''} {value:.2f} > "
            f"{limit:.2f} points")


def why_not(f, choice, cons, profile, priority, violations) -> str:
    chosen = choice.chosen
    if not f.fits:
        return f"does not fit: {_memory_reason(f, profile)}."
    v = violations(f, cons)
    if v:
        return "fails " + "; ".join(fmt_violation(k, *x, cons) for k, x in v.items()) + "."
    tie = next(((t, by) for g, t, by in choice.tied if g is f), None)
    if tie is not None:
        return (f"tied on accuracy with {chosen.rec.name} ({tie[0].how}); "
                f"{_told_apart(chosen, f, tie[1], profile)}.")
    pair = f"{_fmt_score(f, priority)} vs {_fmt_score(chosen, priority)}"
    if priority != "accuracy" and f.drop > chosen.drop and \
            abs(f.size_bytes - chosen.size_bytes) <= 0.02 * chosen.size_bytes:
        return f"as good on {priority} ({pair}) but less accurate: drop {fmt_drop_ci(f.rec)}."
    extra = f" ({f.notes[0]})" if f.notes and not f.accelerated else ""
    return f"worse on {priority}: {pair}{extra}."


def no_fit(figs, fitting, cons, profile, violations) -> tuple[str, list[dict[str, Any]]]:
    """The message when nothing qualifies, and the nearest candidate per binding constraint
    (``[{"constraint", "candidate", "value", "limit", "text"}]``)."""
    if not fitting:
        small = min(figs, key=lambda f: f.ram_bytes)
        text = _memory_reason(small, profile)
        return (f"no candidate fits in the memory of {profile.name}: the nearest, "
                f"{small.rec.name}, does not because {text}; prune or quantize harder, or "
                "pick a larger device.",
                [{"constraint": "memory", "candidate": small.rec.name, "value": small.ram_bytes,
                  "limit": profile.ram_bytes, "text": text}])
    failing = {k for f in fitting for k in violations(f, cons)}
    nearest = []
    for k in ("max_size", "max_latency", "max_drop", "max_energy"):
        if k not in failing:
            continue
        near = min(fitting, key=lambda f, k=k: violations(f, cons).get(k, (0.0, 1.0))[0])
        value, limit = violations(near, cons).get(k) or (None, None)
        entry = {"constraint": k, "candidate": near.rec.name, "value": value, "limit": limit}
        entry["text"] = (f"{near.rec.name}: {fmt_violation(k, value, limit, cons)}"
                         if value is not None else f"{near.rec.name} meets {k}")
        nearest.append(entry)
    alone = [k for k in failing if all(k in violations(f, cons) for f in fitting)]
    what = (f"{' and '.join(sorted(alone))} cannot be met by any candidate" if alone
            else "the constraints cannot be met together")
    near_text = "; ".join(f"nearest on {_LIMIT_TEXT[e['constraint']]}: {e['text']}"
                          for e in nearest)
    return (f"no candidate meets the constraints on {profile.name}: {what}; {near_text}; "
            "relax that limit.", nearest)

"""``edgeshrink search`` against the fixed plans, random search, and NNCF's accuracy control.

For each zoo task and device budget: the best feasible candidate (fits the device, meets
the budget; best on the budget's priority) of every fixed plan (one study each; the budget
only filters its records), of the search (TPE, constrained, seeded by the sensitivity
scans and by every fixed-plan candidate the space represents exactly, e.g. the pruning plan's
Taylor-ranked MAC-targeted ``channels-*mac`` and the quantization plan's ``qat-int8``) and of a
random search over the same space with
the same number of trials, for 3 seeds (medians; ``EDGESHRINK_BENCH_SEARCH_SEEDS=0,1``
for fewer; ``EDGESHRINK_BENCH_SEARCH_TRIALS`` for another trial count). Device figures come from :func:`edgeshrink.advisor.candidate_figures`,
the same for every method (roofline estimates for these two devices, so that the
comparison does not depend on this shared machine's timing noise). Then NNCF's
``quantize_with_accuracy_control`` at the same ``max_drop`` against our best INT8-only
trial, both timed here side by side (OpenVINO vs ONNX Runtime, 1 thread).

Pieces are cached under the work folder (``$EDGESHRINK_BENCH_SEARCH_DIR`` to share one
between processes), so a stopped run resumes.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

TASKS = ("lenet5-digits", "lenet5-mnist", "lenet300-mnist")
BUDGETS = (  # (label, device, priority, constraints)
    ("M7 size", "cortex-m7", "size", {"max_drop": 1.0}),
    ("Pi 4 speed", "raspberry-pi-4", "speed", {"max_drop": 1.0}),
)
PLANS = ("default", "pruning", "quantization")
SEEDS = tuple(int(x) for x in os.environ.get("EDGESHRINK_BENCH_SEARCH_SEEDS", "0,1,2").split(","))
TRIALS = int(os.environ.get("EDGESHRINK_BENCH_SEARCH_TRIALS", "20"))  # per search, ours and random
EPOCHS = 1


def _dir(ctx) -> Path:
    return Path(os.environ.get("EDGESHRINK_BENCH_SEARCH_DIR") or ctx.work / "search")


def plan_run(task_name: str, plan: str, work: Path) -> Path:
    """One fixed-plan study (cached)."""
    from edgeshrink.study import named_plan, run_study
    from edgeshrink.task import load_task

    out = work / f"plan-{task_name}-{plan}"
    if not (out / "done").exists():
        task = load_task(f"zoo:{task_name}")
        run_study(task, named_plan(plan, task, finetune_epochs=EPOCHS), out, threads=(1,),
                  budget_s=0.1)
        (out / "done").write_text("")
    return out


def search_run(task_name: str, budget: tuple, sampler: str, seed: int, work: Path) -> Path:
    """One search (cached): ``sampler`` tpe (ours) or random, ``TRIALS`` trials."""
    from edgeshrink.search import SearchSettings, run_search

    label, device, priority, cons = budget
    out = work / f"{sampler}-{task_name}-{device}-{seed}"
    if not (out / "done").exists():
        from edgeshrink.advisor import Constraints
        from edgeshrink.search import clean_search_dir

        if os.environ.get("EDGESHRINK_BENCH_PIECE"):  # parallel pieces: claim it, or skip it
            try:
                (work / "claims").mkdir(exist_ok=True)
                (work / "claims" / out.name).mkdir()
            except FileExistsError:
                return out
        clean_search_dir(out)
        start = time.perf_counter()
        settings = SearchSettings(
            task=f"zoo:{task_name}", device=device, trials=TRIALS, out=str(out),
            constraints=Constraints(**{"max_drop": None, **cons}).to_dict(), priority=priority,
            threads=(1,), budget_s=0.1, sampler=sampler, seed=seed, max_epochs=EPOCHS)
        run_search(settings)
        (out / "done").write_text(f"{time.perf_counter() - start:.0f}")
    return out


def feasible(run, device: str, priority: str, cons: dict, *, simulated: bool = True):
    """[(score, drop, name)] of the candidates that fit the device and the budget."""
    from edgeshrink.advisor import candidate_figures
    from edgeshrink.devices import load_profile

    profile = load_profile(device)
    out = []
    for c in run.candidates:
        if c.runtime == "simulated" and not simulated:
            continue
        f = candidate_figures(c, profile)
        if not f.fits or c.metric_drop > cons["max_drop"]:
            continue
        score = {"size": f.size_bytes, "speed": f.latency_ms, "energy": f.energy_mj,
                 "accuracy": c.metric_drop}[priority]
        out.append((score, c.metric_drop, c.name))
    return out


def best_feasible(run, device: str, priority: str, cons: dict, *, simulated: bool = True):
    """(score, drop, name) of the best feasible candidate, or None."""
    return min(feasible(run, device, priority, cons, simulated=simulated), default=None)


def _beats(trials: list, plan_best) -> tuple[bool, bool]:
    """(best trial better on the priority than the plan's best, both within the budget;
    some trial better on the priority at the same or lower drop than the plan's best)."""
    if plan_best is None:
        return bool(trials), bool(trials)
    best = min(trials, default=None)
    return (best is not None and best[0] < plan_best[0],
            any(t[0] < plan_best[0] and t[1] <= plan_best[1] for t in trials))


def _margin(ours: list, plans: dict, budget) -> str:
    """How much better on the priority (relative) the median seed's best is than the best
    feasible candidate of all plans."""
    _, device, priority, cons = budget
    found = [best_feasible(r, device, priority, cons) for r in plans.values()]
    found = [b for b in found if b is not None]
    if not found or not ours or None in ours:
        return "n/a"
    plan, med = min(found), statistics.median(b[0] for b in ours)
    return f"{(plan[0] - med) / plan[0] * 100:+.1f} % better than {plan[2]} ({_fmt(plan, priority)})"


def _fmt(best, priority: str) -> str:
    if best is None:
        return "none"
    value = f"{best[0] / 1e3:.1f} KB" if priority == "size" else f"{best[0]:.4g} ms"
    return f"{value} (drop {best[1]:+.2f}, {best[2]})"


def _budget_rows(budget, task_name, work, load_run) -> tuple[list, list]:
    label, device, priority, cons = budget
    rows, verdicts = [], []
    plans = {p: load_run(plan_run(task_name, p, work)) for p in PLANS}
    trials = [feasible(load_run(search_run(task_name, budget, "tpe", s, work)),
                       device, priority, cons) for s in SEEDS]
    ours = [min(t, default=None) for t in trials]
    rand = [best_feasible(load_run(search_run(task_name, budget, "random", s, work)),
                          device, priority, cons) for s in SEEDS]
    inf = float("inf")
    med_ours = statistics.median(b[0] if b else inf for b in ours)
    med_rand = statistics.median(b[0] if b else inf for b in rand)
    for p, run in plans.items():
        for sim in (True, False):
            pb = best_feasible(run, device, priority, cons, simulated=sim)
            if not sim and pb == best_feasible(run, device, priority, cons):
                continue  # no simulated candidate changes this plan's answer
            wins = [_beats(t, pb) for t in trials]
            rows.append([task_name, label, f"plan {p}{'' if sim else ' (runtime-run only)'}",
                         _fmt(pb, priority), f"{sum(w[0] for w in wins)}/{len(SEEDS)}",
                         f"{sum(w[1] for w in wins)}/{len(SEEDS)}"])
            verdicts.append(2 * sum(w[1] for w in wins) > len(SEEDS))
    rows.append([task_name, label, "search (TPE), per seed", "; ".join(_fmt(b, priority)
                                                                  for b in ours), "", ""])
    rows.append([task_name, label, "search's median best vs the best plan's",
                 _margin(ours, plans, budget), "", ""])
    rows.append([task_name, label, "random search, per seed", "; ".join(_fmt(b, priority)
                                                                      for b in rand), "", ""])
    beat = med_ours < med_rand
    rows.append([task_name, label, "median: search vs random",
                 f"{med_ours:.4g} vs {med_rand:.4g}", "yes" if beat else "no", ""])
    return rows, [*verdicts, beat]


def _verdicts(budget, task_name, work, load_run) -> list:
    """One row per task x budget: does the bar hold (a majority of seeds has a trial
    strictly better on the priority at the same or lower drop than each plan's best)? For a
    plan where it does not: the plan's best, and our best trial at or under its drop, with
    the 95 % interval of the drop difference (the eval set's noise)."""
    from edgeshrink.ties import drop_ci

    label, device, priority, cons = budget
    runs = [load_run(search_run(task_name, budget, "tpe", s, work)) for s in SEEDS]
    trials = [feasible(r, device, priority, cons) for r in runs]
    held, misses = [], []
    for p in PLANS:
        run = load_run(plan_run(task_name, p, work))
        pb = best_feasible(run, device, priority, cons)
        ok = 2 * sum(_beats(t, pb)[1] for t in trials) > len(SEEDS)
        held.append(ok)
        if not ok:
            best = min((t for ts in trials for t in ts if t[0] < pb[0]), default=None)
            if best is not None:
                rec = next(c for r in runs for c in r.candidates if c.name == best[2])
                ci = drop_ci(rec)
                ci_s = f", its drop's 95 % interval [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else ""
                misses.append(f"{p}: {_fmt(pb, priority)}; our best faster/smaller is "
                              f"{_fmt(best, priority)}{ci_s}")
            else:
                misses.append(f"{p}: {_fmt(pb, priority)}; no trial better on {priority}")
    return [task_name, label, "yes" if all(held) else "no", "; ".join(misses) or "-"]


def run(ctx) -> str:
    from edgeshrink.results import load_run

    work = _dir(ctx)
    work.mkdir(parents=True, exist_ok=True)
    start, load = time.perf_counter(), os.getloadavg()[0]
    rows, cells = [], []
    for task_name in TASKS:
        for budget in BUDGETS:
            r, _ = _budget_rows(budget, task_name, work, load_run)
            rows += r
            cells.append(_verdicts(budget, task_name, work, load_run))
    seconds = {p.name: p.joinpath("done").read_text() for p in sorted(work.glob("tpe-*"))}
    text = (
        f"Search: {TRIALS} trials (TPE, constrained, 4 objectives; first trials: the "
        "sensitivity scans' seeds, every fixed-plan candidate the space represents exactly "
        "(the pruning plan's channels-*mac, the quantization plan's qat-int8) and its "
        "neighbours, the light end of the space, and for a speed or energy priority the "
        "smallest MAC step by L1 and Taylor + fine-tuning + INT8; see docs/search.md; QAT "
        "offered alone and after "
        "structured pruning), fine-tuning and QAT up to "
        f"{EPOCHS} epochs; random search: the same space and trial "
        f"count; fixed plans `{'`, `'.join(PLANS)}` with {EPOCHS} fine-tuning epochs. Best "
        "feasible = fits the device, drop <= 1.0 point, best on the priority (device figures "
        "are the roofline estimates for both devices). 'better' counts the seeds whose best "
        "feasible trial is strictly better on the priority than the plan's best feasible "
        "candidate (both within the 1.0-point budget); 'better at <= drop' counts the seeds "
        "with a feasible trial strictly better on the priority at the same or lower drop than "
        "the plan's best. This pass took "
        f"{time.perf_counter() - start:.0f} s (cached pieces excluded); load average "
        f"{load:.1f} at its start, {os.getloadavg()[0]:.1f} at its end.\n\n"
        + ctx.table(["task", "budget", "method", "best feasible", "better",
                     "better at <= drop"], rows)
        + "\nThe bar, per task x budget: a majority of seeds has a trial strictly better on the "
        "priority than every plan's best feasible candidate, at the same or lower drop.\n\n"
        + ctx.table(["task", "budget", "holds", "where not"], cells)
        + "\nSeconds per search (wall, loaded shared machine): "
        + ", ".join(f"{k} {v}" for k, v in seconds.items()) + "\n\n")
    return text + _nncf_section(ctx, work)


def _nncf_section(ctx, work: Path) -> str:
    try:
        from search_nncf import compare
    except ImportError:
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from search_nncf import compare
    return compare(ctx, work)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    if len(sys.argv) > 1 and sys.argv[1] == "piece":  # parallel workers: piece TASK [plans]
        w = Path(os.environ["EDGESHRINK_BENCH_SEARCH_DIR"])
        os.environ["EDGESHRINK_BENCH_PIECE"] = "1"
        w.mkdir(parents=True, exist_ok=True)
        import torch

        torch.set_num_threads(1)  # a shared 2-core machine: one core per piece
        t = sys.argv[2]
        if "plans" in sys.argv[3:]:
            for p in PLANS:
                plan_run(t, p, w)
        if "search" in sys.argv[3:] or "search-reversed" in sys.argv[3:]:
            pieces = [(b, sampler, s) for sampler in ("tpe", "random") for s in SEEDS
                      for b in BUDGETS[::-1]]  # a second process takes them backwards
            for b, sampler, s in pieces[::-1] if "search-reversed" in sys.argv[3:] else pieces:
                search_run(t, b, sampler, s, w)
        print(json.dumps({"done": t}))
        raise SystemExit(0)
    from run import main

    raise SystemExit(main(["--only", "search"]))

"""The demo study's report (issue #17): one set of numbers, its size, the advisor's pick on
the Cortex-M7 with its intervals, and the packed files of the simulated formats.

Sizes here are bytes (SI: 1 kB = 1000 B), not timings: no A/B timing is involved.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE_BYTES = 4_848_808  # report.html of the demo before #17 (plotly.js inlined), 2026-11-30


def _page_numbers():
    path = ROOT / "tests" / "unit" / "report" / "page_numbers.py"
    spec = importlib.util.spec_from_file_location("page_numbers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _packed_rows(task, work: Path) -> list[list[str]]:
    from edgeshrink.packed import pack_onnx
    from edgeshrink.quant.lowbit import LowBitConfig
    from edgeshrink.quant.nonuniform import KMeansConfig, Po2Config
    from edgeshrink.transforms import TransformContext, apply_recipe

    cfgs = {"int4": LowBitConfig(bits=4), "int3": LowBitConfig(bits=3),
            "int2": LowBitConfig(bits=2), "ternary": LowBitConfig(scheme="ternary"),
            "binary": LowBitConfig(scheme="binary"), "po2-4": Po2Config(bits=4),
            "kmeans-4": KMeansConfig(bits=4, epochs=0)}
    rows = []
    for name, cfg in cfgs.items():
        art = apply_recipe([cfg], TransformContext(task=task, workdir=work, name=name))
        packed = pack_onnx(art.path).stat().st_size  # written and round-trip checked
        rows.append([name, f"{art.path.stat().st_size:,}", f"{art.size_encoded_bytes:,}",
                     f"{packed:,}", f"{packed / art.size_encoded_bytes:.2f}"])
    return rows


def run(ctx) -> str:
    from edgeshrink.advisor import Constraints, advise_run
    from edgeshrink.report import write_report
    from edgeshrink.results import load_run
    from edgeshrink.study import named_plan, run_study
    from edgeshrink.task import load_task

    out = ctx.work / "demo"
    task = load_task("zoo:lenet5-mnist")
    run_study(task, named_plan("default", task), out, threads=(1, 2), sensitivity=True)
    rec = advise_run(out, "cortex-m7", Constraints(max_drop=1.0))
    page = write_report(out).read_text()
    numbers = _page_numbers()
    bad = numbers.mismatches(page, rec["candidate"])
    run = load_run(out)
    rows = [[c.name, f"{c.value:.1f}", f"{c.metric['ci95'][0]:.1f} .. {c.metric['ci95'][1]:.1f}",
             f"{c.metric_drop:+.1f}",
             ("" if c.family == "baseline" else
              f"{c.metric['drop_ci95'][0]:+.2f} .. {c.metric['drop_ci95'][1]:+.2f}"),
             f"{c.metric.get('drop_p', 1.0):.2f}" if c.family != "baseline" else ""]
            for c in run.all_candidates()]
    text = (
        "Command: `edgeshrink study --sensitivity --device cortex-m7` (what `make demo` runs), "
        f"then the page parsed.\n\n- report.html: {len(page.encode()):,} bytes "
        f"(before #17: {BEFORE_BYTES:,} bytes with plotly.js inlined); "
        f"{page.count('<svg')} inline SVG plots, the same figures as the PNGs.\n"
        f"- numbers that differ between card, reasons, verdict, table and plot for one "
        f"candidate in one view: {len(bad)}\n- verdict: `{rec['verdict']}`\n"
        f"- tied on accuracy with the pick: "
        + ", ".join(f"{t['name']} ({t['how']})" for t in rec["tied"]) + "\n\n"
        "Metric and paired drop, 95 % intervals on the evaluation samples (exact "
        "Clopper-Pearson; Newcombe paired score interval; exact McNemar p):\n\n"
        + ctx.table(["candidate", "accuracy %", "95 % CI", "drop", "drop 95 % CI", "McNemar p"],
                    rows)
        + "\nSimulated formats of the same LeNet-5: bytes of the computed bit-packed size "
        "(what the advisor used before, backed by no file) and of the packed file now "
        "written and round-trip checked (`artifacts/NAME.eskp`, per-row codebooks):\n\n"
        + ctx.table(["format", "dense ONNX", "computed (before)", "written .eskp", "ratio"],
                    _packed_rows(task, ctx.work))
    )
    return text


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from run import main

    raise SystemExit(main(["--only", "report"]))

"""``make bench``: run every ``benchmarks/bench_*.py`` section and write benchmarks/RESULTS.md.

Each section module exposes ``run(ctx) -> str`` (markdown) and is run in name order. A
section that raises is reported as failed, with its error, and the others still run.
``--only NAME`` (repeatable; NAME is the file name without ``bench_``) reruns some sections
and keeps the others' last results in RESULTS.md.

Timing figures are ratios of variants timed side by side (A B B A ...) in one process,
medians over repeats (FIELD-NOTES "Measuring"); :class:`Ctx` gives sections the helpers.

Usage:
    .venv/bin/python benchmarks/run.py                 # everything
    .venv/bin/python benchmarks/run.py --only runtime  # one section
    .venv/bin/python benchmarks/run.py --quick         # fewer repeats: a smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
PACKAGES = ("edgeshrink", "torch", "onnxruntime", "onnx", "onnxscript", "numpy", "torch-pruning",
            "scikit-learn", "nncf", "openvino", "ai-edge-litert", "litert-torch", "executorch",
            "torchao")  # fmt: skip
_FLAG_GROUPS = (
    ("AVX2", ("avx2",)),
    ("AVX-512", ("avx512f",)),
    ("VNNI", ("avx512_vnni", "avx_vnni")),
    ("BF16", ("avx512_bf16",)),
    ("AMX", ("amx_tile", "amx_int8", "amx_bf16")),
    ("NEON dot", ("asimddp",)),
    ("i8mm", ("i8mm",)),
)
_SECTION_RE = re.compile(r"<!-- section: (\S+) -->\n.*?<!-- /section: \1 -->\n", re.S)


@dataclass
class Ctx:
    """What a section gets: scratch space, settings, and helpers for side-by-side timing.

    Helpers every section should use for its timings (so that all of RESULTS.md is
    measured the same way): :meth:`time_interleaved` for any callables (ORT sessions,
    OpenVINO compiled models, torch modules), :meth:`ratio_medians` for "how much faster
    than the baseline", :meth:`ort_callable` to turn an .onnx file into a callable.
    """

    work: Path
    quick: bool = False
    threads: int = 1
    notes: list[str] = field(default_factory=list)

    # ---- models ---------------------------------------------------------------------------
    def export_onnx(self, model, example, path: Path | str, **kwargs: Any) -> Path:
        """Export a torch module (put in eval mode) to a single self-contained .onnx file.

        TorchScript exporter first (0.2 s for a small CNN, no sidecar); the dynamo one
        (seconds, writes ``.onnx.data``, folded back into the file here) if that fails.
        Unlike :func:`edgeshrink.export.export_onnx` this keeps the exporter's tensor names
        (peer tools quantize this file: ORT's S8S8 output of a compacted file does not load)
        and does not check the file against PyTorch.
        """
        import warnings

        import torch

        path = Path(path)
        model.eval()
        assert not any(m.training for m in model.modules()), "export needs eval mode"
        args = example if isinstance(example, tuple) else (example,)
        kwargs.setdefault("input_names", ["input"])
        kwargs.setdefault("output_names", ["output"])
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(model, args, str(path), dynamo=False, **kwargs)
            except Exception:
                kwargs.pop("dynamic_axes", None)
                torch.onnx.export(model, args, str(path), dynamo=True, **kwargs)
                _inline_external_data(path)
        return path

    def ort_session(self, path: Path | str, threads: int | None = None):
        from edgeshrink.bench import open_session

        return open_session(path, threads=self.threads if threads is None else threads)

    def ort_callable(self, model, feeds: dict | None = None, threads: int | None = None):
        """A no-argument callable that runs an .onnx file (or a session) once."""
        from edgeshrink.bench import generate_feeds, input_specs

        sess = self.ort_session(model, threads) if isinstance(model, str | Path) else model
        feeds = feeds if feeds is not None else generate_feeds(input_specs(sess))
        return lambda: sess.run(None, feeds)

    # ---- timing ---------------------------------------------------------------------------
    def time_interleaved(self, fns: dict, *, warmup: int = 10, runs: int = 100) -> dict:
        """``{name: summary stats}`` of callables timed in alternation, plus ``_cpu``."""
        from edgeshrink.bench import CpuMeter, summarize, time_interleaved

        with CpuMeter() as cpu:
            samples = time_interleaved(fns, warmup=warmup, runs=runs)
        out: dict[str, Any] = {name: summarize(s) for name, s in samples.items()}
        out["_cpu"] = cpu.result()
        return out

    def ratio_medians(
        self, fns: dict, baseline: str, *, repeats: int = 5, runs: int = 50, warmup: int = 5
    ) -> dict[str, Any]:
        """Repeat interleaved timings; per repeat each variant's p50 over the baseline's.

        Returns ``{"p50_ms": {name: median p50}, "ratio": {name: median ratio},
        "spread": {name: (min ratio, max ratio)}, "others_cpu_cores": max seen}``.
        """
        import statistics

        repeats = max(2, repeats // 2) if self.quick else repeats
        p50s: dict[str, list[float]] = {n: [] for n in fns}
        ratios: dict[str, list[float]] = {n: [] for n in fns}
        others: list[float] = []
        for _ in range(repeats):
            stats = self.time_interleaved(fns, warmup=warmup, runs=runs)
            others.append(stats["_cpu"]["others_cpu_cores"] or 0.0)
            for n in fns:
                p50s[n].append(stats[n]["p50"])
                ratios[n].append(stats[n]["p50"] / stats[baseline]["p50"])
        return {
            "p50_ms": {n: statistics.median(v) for n, v in p50s.items()},
            "ratio": {n: statistics.median(v) for n, v in ratios.items()},
            "spread": {n: (min(v), max(v)) for n, v in ratios.items()},
            "others_cpu_cores": max(others),
            "repeats": repeats,
        }

    def others_load(self, seconds: float = 1.0) -> float | None:
        """Cores used by other processes over the next ``seconds`` (/proc/stat; None elsewhere)."""
        from edgeshrink.bench import CpuMeter

        with CpuMeter() as cpu:
            time.sleep(seconds)
        return cpu.result()["others_cpu_cores"]

    def wait_quiet(self, threshold_cores: float = 0.25, max_wait_s: float = 10.0) -> float | None:
        """Wait (at most ``max_wait_s``) until others use under ``threshold_cores``; their load.

        FIELD-NOTES: timings taken while others used more than ~10 % of a core mislead.
        """
        deadline = time.perf_counter() + (max_wait_s / 4 if self.quick else max_wait_s)
        load = self.others_load()
        while load is not None and load > threshold_cores and time.perf_counter() < deadline:
            load = self.others_load()
        return load

    # ---- output ---------------------------------------------------------------------------
    @staticmethod
    def table(headers: list[str], rows: list[list[Any]]) -> str:
        """A markdown table; floats shown with 3 significant decimals."""

        def cell(v: Any) -> str:
            return f"{v:.3f}" if isinstance(v, float) else str(v)

        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
        return "\n".join(lines) + "\n"

    def log(self, msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)


def _inline_external_data(path: Path) -> None:
    import onnx

    sidecar = path.with_name(path.name + ".data")
    if sidecar.exists():
        onnx.save(onnx.load(str(path)), str(path))  # load() reads the sidecar in
        sidecar.unlink()


def _versions() -> str:
    out = []
    for name in PACKAGES:
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def _machine_lines() -> list[str]:
    sys.path.insert(0, str(ROOT / "src"))
    from edgeshrink.bench.machine import machine_info

    m = machine_info()
    flags = set(m["cpu_flags"])
    groups = ", ".join(f"{g} {'yes' if flags & set(fs) else 'no'}" for g, fs in _FLAG_GROUPS)
    return [
        f"- machine: {m['cpu_model']} ({m['machine']}), {m['cpu_count']} cores "
        f"({m['cpu_affinity']} usable), {m['mem_total_mb'] or 0:.0f} MiB RAM, {m['platform']}",
        f"- CPU features: {groups}; flags: {' '.join(m['cpu_flags'])}",
        f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def _header(command: str) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: UP017
    return "\n".join([
        "# edgeshrink benchmark results",
        "",
        "Written by `make bench` (`benchmarks/run.py`). Timing figures are ratios of variants",
        "timed side by side (A B B A ...) in one run, medians over repeats.",
        "",
        f"- date: {now}",
        f"- command: `{command}`",
        *_machine_lines(),
        f"- versions: python {sys.version.split()[0]}, {_versions()}",
        "",
    ])  # fmt: skip


def discover(folder: Path = HERE) -> dict[str, Path]:
    """``{section name: file}`` for every ``bench_*.py`` in ``folder``, in name order."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(folder.glob("bench_*.py"))}


def run_section(name: str, path: Path, ctx: Ctx, command: str) -> str:
    """The section's markdown between markers; a failure becomes a 'failed' section."""
    t0 = time.perf_counter()
    try:
        spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses in a section look their module up
        spec.loader.exec_module(module)
        body = module.run(ctx).rstrip() + "\n"
        status = "ok"
    except Exception as exc:  # a broken section must not lose the others' results
        tb = traceback.format_exc(limit=8)
        body = (f"**FAILED**: `{type(exc).__name__}: {exc}`\n\n<details><summary>traceback"
                f"</summary>\n\n```\n{tb}```\n</details>\n")  # fmt: skip
        status = "FAILED"
    secs = time.perf_counter() - t0
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: UP017
    print(f"[{status}] {name} ({secs:.0f} s)", file=sys.stderr, flush=True)
    return (f"<!-- section: {name} -->\n## {name}\n\n_{status}: measured {when} by `{command}` "
            f"in {secs:.0f} s_\n\n{body}<!-- /section: {name} -->\n")  # fmt: skip


def write_results(path: Path, header: str, new: dict[str, str], order: list[str]) -> None:
    """Header + sections in ``order``; sections not rerun keep their previous text."""
    old = (
        {m.group(1): m.group(0) for m in _SECTION_RE.finditer(path.read_text())}
        if path.exists()
        else {}
    )
    names = order + sorted(set(old) - set(order))
    body = "\n".join(new.get(n) or old[n] for n in names if n in new or n in old)
    sys.path.insert(0, str(ROOT / "src"))
    from edgeshrink.results import atomic_write_text

    atomic_write_text(path, header + "\n" + body)


def main(argv: list[str] | None = None, *, folder: Path = HERE) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="section(s) to run")
    p.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results file")
    p.add_argument("--list", action="store_true", help="list the sections and exit")
    args = p.parse_args(argv)
    sections = discover(folder)
    if args.list:
        print("\n".join(sections))
        return 0
    unknown = sorted(set(args.only) - set(sections))
    if unknown:
        print(
            f"error: no section {unknown[0]!r}; sections: {', '.join(sections)}.", file=sys.stderr
        )
        return 2
    command = shlex.join([Path(sys.executable).name, "benchmarks/run.py", *(argv or sys.argv[1:])])
    chosen = {n: f for n, f in sections.items() if not args.only or n in args.only}
    header = _header(command)
    with tempfile.TemporaryDirectory(prefix="edgeshrink-bench-") as tmp:
        new = {}
        for name, file in chosen.items():
            work = Path(tmp) / name
            work.mkdir()
            new[name] = run_section(name, file, Ctx(work=work, quick=args.quick), command)
            write_results(args.out, header, new, list(sections))  # after each: nothing lost
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

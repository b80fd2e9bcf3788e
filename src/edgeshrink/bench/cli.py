"""``python -m edgeshrink.bench``: the benchmark as a program that runs on the device.

It needs only numpy and the runtime of the file it measures: onnxruntime for ``.onnx``,
ai-edge-litert for ``.tflite``, executorch for ``.pte`` (Rich, if installed, draws the
table). Bad input ends in one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgeshrink.bench.inputs import parse_dims
from edgeshrink.bench.render import render_compare, render_report
from edgeshrink.bench.runner import BenchOptions, bench_model, compare
from edgeshrink.bench.session import BenchError
from edgeshrink.bench.timing import DEFAULT_RUNS, DEFAULT_WARMUP
from edgeshrink.errors import exit_code_of

__all__ = ["main", "run", "build_parser"]

_EPILOG = """\
examples:
  python -m edgeshrink.bench model.onnx --threads 4 --runs 200
  python -m edgeshrink.bench model.onnx --budget 10 --json --out pi4.json
  python -m edgeshrink.bench fp32.onnx --compare int8.onnx
  python -m edgeshrink.bench model.tflite --threads 4        # LiteRT (pip install ai-edge-litert)
  python -m edgeshrink.bench model.pte                       # ExecuTorch (pip install executorch)
  python -m edgeshrink.bench fp32.onnx --compare int8.tflite int8.pte
  python -m edgeshrink.bench bert.onnx --dim sequence=128 --batch 8
  python -m edgeshrink.bench model.onnx --inputs sample.npz
On a device without edgeshrink installed: copy the file written by --write-pyz and run
  python3 edgeshrink-bench.pyz model.onnx ...
or copy src/edgeshrink/{__init__,errors}.py and src/edgeshrink/bench/ into DIR/edgeshrink/
and run PYTHONPATH=DIR python3 -m edgeshrink.bench model.onnx ...
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeshrink bench",
        description="Measure a model in its runtime on this machine: .onnx in ONNX Runtime, "
        ".tflite in LiteRT, .pte in ExecuTorch.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="the .onnx, .tflite or .pte file")
    p.add_argument(
        "--compare",
        nargs="+",
        metavar="MODEL",
        default=[],
        help="more models, timed interleaved with the first; prints ratios",
    )
    p.add_argument("--threads", type=int, default=1,
                   help="runtime threads (0 = the runtime's default)")
    p.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed runs first")
    p.add_argument(
        "--runs",
        type=int,
        default=None,
        help=f"timed runs (default {DEFAULT_RUNS}; the cap when --budget is set)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time budget for the timed runs",
    )
    p.add_argument("--batch", type=int, default=None, help="axis 0 of dynamic-batch inputs")
    p.add_argument("--inputs", default=None, metavar="NPZ", help=".npz with the input arrays")
    p.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=N",
        help="value of a dynamic dimension (repeatable)",
    )
    p.add_argument("--provider", default="CPUExecutionProvider",
                   help="ONNX Runtime execution provider (.onnx files only)")
    p.add_argument("--seed", type=int, default=0, help="seed of generated inputs")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--out", default=None, metavar="FILE", help="also write the JSON report here")
    p.add_argument(
        "--write-pyz",
        default=None,
        metavar="FILE",
        help="write a single-file copy of this tool for a device, then exit",
    )
    return p


def _options(ns: argparse.Namespace) -> BenchOptions:
    runs = ns.runs if ns.runs is not None or ns.budget is not None else DEFAULT_RUNS
    return BenchOptions(
        threads=ns.threads,
        warmup=ns.warmup,
        runs=runs,
        budget_s=ns.budget,
        batch=ns.batch,
        inputs=ns.inputs,
        dims=parse_dims(ns.dim),
        provider=ns.provider,
        seed=ns.seed,
    )


def _check_out(out: str | None) -> None:
    """Refuse an unusable --out before measuring anything."""
    if out is None:
        return
    path = Path(out)
    if path.is_dir():
        raise BenchError(f"--out {path} is a folder; give the JSON file to write, e.g. "
                         f"{path / 'bench.json'}.")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BenchError(f"--out {path}: {parent} is a file, not a folder.")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 ignores the user's umask
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(
    models: list[str], options: BenchOptions, *, as_json: bool = False, out: str | None = None
) -> dict[str, Any]:
    """Benchmark ``models`` (one: a report; several: an interleaved comparison) and print it.

    Example:
        >>> run(["model.onnx"], BenchOptions(runs=50), as_json=True)  # doctest: +SKIP
    """
    if not models:
        raise BenchError("give the .onnx, .tflite or .pte file to measure, e.g. "
                         "`edgeshrink bench model.onnx`.")
    _check_out(out)
    report = bench_model(models[0], options) if len(models) == 1 else compare(models, options)
    text = json.dumps(report, indent=2) + "\n"
    if out:
        _write_atomic(Path(out), text)
    if as_json:
        sys.stdout.write(text)
    else:
        plain = render_report(report) if len(models) == 1 else render_compare(report)
        if plain is not None:
            print(plain)
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m edgeshrink.bench``; returns the exit code."""
    ns = build_parser().parse_args(argv)
    return exit_code_of(lambda: _dispatch(ns))


def _dispatch(ns: argparse.Namespace) -> int:
    if ns.write_pyz:
        from edgeshrink.bench.portable import write_pyz

        print(write_pyz(ns.write_pyz))
        return 0
    models = ([ns.model] if ns.model else []) + list(ns.compare)
    if ns.compare and len(models) < 2:
        raise BenchError("--compare needs at least two models, e.g. A.onnx --compare B.onnx.")
    run(models, _options(ns), as_json=ns.json, out=ns.out)
    return 0

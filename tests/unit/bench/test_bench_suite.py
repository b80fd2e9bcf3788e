"""benchmarks/run.py: pluggable sections, a failing section reported not fatal, --only."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

RUN_PY = Path(__file__).resolve().parents[3] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("edgeshrink_benchmarks_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_sections_in_order_failure_reported_and_only_keeps_the_rest(suite, tmp_path):
    (tmp_path / "bench_b.py").write_text("def run(ctx):\n    raise ValueError('boom')\n")
    (tmp_path / "bench_a.py").write_text(
        "def run(ctx):\n    return ctx.table(['x', 'y'], [[1, 0.5]])\n"
    )
    out = tmp_path / "RESULTS.md"
    assert suite.main(["--out", str(out)], folder=tmp_path) == 0
    text = out.read_text()
    assert text.index("## a") < text.index("## b")
    assert "| 1 | 0.500 |" in text and "**FAILED**: `ValueError: boom`" in text
    assert "- command: `" in text and "CPU features: AVX2" in text and "onnxruntime" in text

    (tmp_path / "bench_a.py").write_text("def run(ctx):\n    return 'second run'\n")
    assert suite.main(["--only", "a", "--out", str(out)], folder=tmp_path) == 0
    text = out.read_text()
    assert "second run" in text and "| 1 | 0.500 |" not in text
    assert "ValueError: boom" in text  # b was not rerun: its last result stays
    assert suite.main(["--only", "nope", "--out", str(out)], folder=tmp_path) == 2


def test_ratio_medians_on_callables(suite, tmp_path):
    import time

    ctx = suite.Ctx(work=tmp_path)
    got = ctx.ratio_medians(
        {"fast": lambda: None, "slow": lambda: time.sleep(0.002)},
        "fast",
        repeats=2,
        runs=5,
        warmup=1,
    )
    assert got["ratio"]["fast"] == 1.0 and got["ratio"]["slow"] > 10
    assert got["p50_ms"]["slow"] >= 2.0 and got["repeats"] == 2

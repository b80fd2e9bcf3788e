"""Real studies on zoo tasks: results.json's contract and issue #2's bars, measured in ORT."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeshrink.export import ort_session, run_onnx
from edgeshrink.prune import UnstructuredConfig
from edgeshrink.quant import StaticInt8Config
from edgeshrink.study import CandidateSpec, run_study
from edgeshrink.train import FinetuneConfig

REQUIRED = {"name", "recipe", "metric", "metric_drop", "size_bytes", "size_compressed_bytes",
            "latency_ms", "peak_memory_mb", "params", "sparsity", "runtime", "artifact"}


def small_plan(epochs=2):
    ft = FinetuneConfig(epochs=epochs)
    return [
        CandidateSpec("prune-90", (UnstructuredConfig(sparsity=0.9), ft)),
        CandidateSpec("int8-static", (StaticInt8Config(),)),
        CandidateSpec("prune-80+int8-static",
                      (UnstructuredConfig(sparsity=0.8), ft, StaticInt8Config())),
    ]


@pytest.fixture(scope="module")
def mnist_run(mnist_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("mnist-run")
    run = run_study(mnist_task, small_plan(epochs=3), out, threads=(1, 2), budget_s=0.2)
    return run, out


def test_results_json_has_the_contract(mnist_run):
    run, out = mnist_run
    data = json.loads((out / "results.json").read_text())
    assert data["task"] == "zoo:lenet5-mnist"
    assert set(data) >= {"task", "baseline", "candidates", "pareto"}
    for c in [data["baseline"], *data["candidates"]]:
        assert set(c) >= REQUIRED, REQUIRED - set(c)
        assert c["metric"]["name"] == "accuracy" and 0 <= c["metric"]["value"] <= 100
        assert set(c["latency_ms"]) >= {"p50", "p90", "threads"}
        assert c["latency_ms"]["by_threads"].keys() == {"1", "2"}
        assert c["runtime"] == "onnxruntime"
        assert (out / c["artifact"]).is_file()
        assert c["size_bytes"] == (out / c["artifact"]).stat().st_size
    # the recipe is plain data that rebuilds exactly the configs that made the candidate
    from edgeshrink.config import config_from_dict

    recipe = data["candidates"][2]["recipe"]
    assert [d["kind"] for d in recipe] == ["unstructured", "finetune", "int8_static"]
    assert tuple(config_from_dict(d) for d in recipe) == small_plan(epochs=3)[2].recipe
    assert set(data["pareto"]) <= {c["name"] for c in [data["baseline"], *data["candidates"]]}
    assert data["pareto"]


def test_issue2_bars_on_lenet5_mnist(mnist_run):
    run, _ = mnist_run
    base = run.baseline
    int8, p90 = run.get("int8-static"), run.get("prune-90")
    assert int8.metric_drop <= 1.0
    assert int8.size_bytes <= 0.3 * base.size_bytes
    assert p90.size_compressed_bytes <= 0.25 * base.size_compressed_bytes
    assert p90.metric_drop <= 2.0
    assert p90.sparsity == pytest.approx(0.9, abs=1e-3)
    assert p90.metric_drop == pytest.approx(base.value - p90.value)


def test_artifacts_agree_with_their_pytorch_models(mnist_run, mnist_task):
    run, out = mnist_run
    for c in run.all_candidates():
        if c.precision == "fp32":
            assert c.notes["max_abs_diff_vs_pytorch"] <= 1e-4, c.name
        else:
            assert c.notes["top1_agreement_with_pytorch"] >= 99.0, c.name
    # and the baseline file really computes the task model's outputs
    x = mnist_task.eval.inputs[0][:32]
    got = run_onnx(ort_session(out / run.baseline.artifact), (x,))
    import torch

    ref = mnist_task.model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_resume_reuses_finished_candidates(digits_task, tmp_path):
    plan = small_plan(epochs=1)[:2]
    first = run_study(digits_task, plan, tmp_path, threads=(1,), budget_s=0.1)
    mtimes = {c.name: (tmp_path / c.artifact).stat().st_mtime_ns for c in first.all_candidates()}
    plan2 = plan + [CandidateSpec("int8-pct", (StaticInt8Config(calibrator="percentile"),))]
    second = run_study(digits_task, plan2, tmp_path, resume=True, threads=(1,), budget_s=0.1)
    assert [c.name for c in second.candidates] == ["prune-90", "int8-static", "int8-pct"]
    for name, mtime in mtimes.items():
        assert (tmp_path / second.get(name).artifact).stat().st_mtime_ns == mtime


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgeshrink", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["study", "--task", "zoo:nope"], "unknown zoo task 'nope'"),
        (["study", "--task", "missing/file.py:make"], "does not exist"),
        (["study", "--task", "nonsense"], "neither zoo:NAME nor path/to/file.py:function"),
        (["study", "--plan", "missing.yaml"], "plan file missing.yaml does not exist"),
        (["study", "--threads", "0"], "--threads must be"),
    ],
)
def test_cli_bad_input_is_one_sentence_and_exit_2(args, message, tmp_path):
    result = cli(*args, "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_bad_sparsity_in_a_plan_is_exit_2(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("p:\n  - {kind: unstructured, sparsity: 1.5}\n")
    result = cli("study", "--plan", str(plan), "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert result.returncode == 2
    assert "sparsity must be in [0.0, 1.0)" in result.stderr
    assert "Traceback" not in result.stderr


def test_user_task_file_is_loaded(tmp_path):
    from edgeshrink.task import load_task

    task_file = tmp_path / "mytask.py"
    task_file.write_text(
        "from edgeshrink.task import load_task\n"
        "def make():\n    t = load_task('zoo:lenet5-digits')\n    t.name = 'mine'\n    return t\n"
    )
    assert load_task(f"{task_file}:make").name == "mine"
    with pytest.raises(Exception, match="has no function 'other'"):
        load_task(f"{task_file}:other")


def test_a_candidate_the_method_cannot_handle_is_reported_and_the_study_goes_on(
    digits_task, tmp_path
):
    from edgeshrink.prune.structured import StructuredConfig
    from edgeshrink.report.html import write_report

    plan = [CandidateSpec("impossible", (StructuredConfig(macs_reduction=0.85,
                                                               exclude=(".*",)),)),
            CandidateSpec("int8-static", (StaticInt8Config(),))]
    run = run_study(digits_task, plan, tmp_path, threads=(1,), budget_s=0.05)
    assert [c.name for c in run.candidates] == ["int8-static"]
    assert run.failed[0]["name"] == "impossible" and "macs_reduction" in run.failed[0]["error"]
    assert "Not built on this model" in write_report(tmp_path).read_text()


def test_a_candidate_that_crashes_is_reported_and_the_study_goes_on(digits_task, tmp_path,
                                                                     monkeypatch):
    from edgeshrink.quant import Fp16Config
    from edgeshrink.transforms import HANDLERS

    def crash(*_args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setitem(HANDLERS, Fp16Config, crash)
    monkeypatch.delenv("EDGESHRINK_DEBUG", raising=False)
    plan = [CandidateSpec("crashes", (Fp16Config(),)),
            CandidateSpec("int8-static", (StaticInt8Config(),))]
    run = run_study(digits_task, plan, tmp_path, threads=(1,), budget_s=0.05)
    assert [c.name for c in run.candidates] == ["int8-static"]
    assert run.failed[0]["error"] == "RuntimeError: mat1 and mat2 shapes cannot be multiplied"
    monkeypatch.setenv("EDGESHRINK_DEBUG", "1")  # --debug: the traceback, not a record
    with pytest.raises(RuntimeError, match="mat1"):
        run_study(digits_task, plan[:1], tmp_path / "debug", threads=(1,), budget_s=0.05)


def test_sensitivity_scan_lands_in_the_record_and_the_report(digits_task, tmp_path):
    from edgeshrink.report.html import write_report

    plan = [CandidateSpec("int8-static", (StaticInt8Config(),))]
    run = run_study(digits_task, plan, tmp_path, threads=(1,), budget_s=0.05, sensitivity=True)
    sparsity, bits = run.sensitivity["sparsity"], run.sensitivity["bits"]
    assert set(sparsity["layers"]) == {"features.0.weight", "features.3.weight",
                                       "classifier.1.weight", "classifier.3.weight"}
    for values in sparsity["layers"].values():
        assert len(values) == len(sparsity["levels"])
        assert values[0] >= values[-1]  # more zeros never help a trained layer this much
    assert bits["levels"] == [8, 6, 4, 2] and len(bits["layers"]) == 4
    html = write_report(tmp_path).read_text()
    assert "Per-layer sensitivity" in html


def _page_numbers():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "unit" / "report" / "page_numbers.py"
    spec = importlib.util.spec_from_file_location("page_numbers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_intervals_and_packed_files_are_measured(mnist_run, mnist_task):
    from edgeshrink.measure.intervals import load_scores
    from edgeshrink.packed import unpack_onnx

    run, out = mnist_run
    n = len(mnist_task.eval.targets)
    for c in run.all_candidates():
        lo, hi = c.metric["ci95"]
        assert lo < c.value < hi and c.metric["n"] == n, c.name
        scores = load_scores(out / c.metric["samples"])
        assert scores.mean() == pytest.approx(c.value)  # the per-sample results are the metric
        if c.name != "baseline":
            lo, hi = c.metric["drop_ci95"]
            assert lo <= c.metric_drop <= hi and c.metric["drop_test"] == "exact McNemar"
    p90 = run.get("prune-90")
    packed = out / p90.notes["packed_artifact"]
    assert p90.size_encoded_bytes == packed.stat().st_size < 0.25 * p90.size_bytes
    restored = out / "restored.onnx"
    unpack_onnx(packed, restored)
    x = mnist_task.eval.inputs[0][:16]
    a = run_onnx(ort_session(out / p90.artifact, 1), (x,))
    assert np.array_equal(a, run_onnx(ort_session(restored, 1), (x,)))


def test_report_numbers_agree_and_recommend_rewrites_the_page(mnist_run):
    from edgeshrink.cli import main
    from edgeshrink.results import load_run

    _, out = mnist_run
    numbers = _page_numbers()
    main(["recommend", str(out), "--device", "cortex-m7"])
    first = (out / "report.html").read_text()
    rec = load_run(out).recommendation
    assert rec["verdict"].startswith("on cortex-m7:")
    assert numbers.mismatches(first, rec["candidate"]) == []
    assert len(first.encode()) < 1_500_000
    # a new device: the page changes in the same call
    main(["recommend", str(out), "--device", "rpi4", "--priority", "speed"])
    second = (out / "report.html").read_text()
    assert "on raspberry-pi-4:" in second and "on cortex-m7:" not in second
    assert numbers.mismatches(second, load_run(out).recommendation["candidate"]) == []
    # a budget nothing meets: the old pick is gone and the page says why
    with pytest.raises(SystemExit) as exc:
        main(["recommend", str(out), "--device", "rpi4", "--max-size", "1kB"])
    assert exc.value.code == 3  # no candidate meets the budget
    assert not (out / "recommended").exists()
    third = (out / "report.html").read_text()
    assert "nothing fits" in third and 'id="nearest"' in third and "1.0 kB" in third

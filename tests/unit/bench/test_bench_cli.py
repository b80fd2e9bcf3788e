"""``python -m edgeshrink.bench`` in process: the JSON report, compare, bad input -> exit 2."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pytest
from bench_onnx_models import make_mlp

from edgeshrink.bench import BenchOptions, compare
from edgeshrink.bench.cli import main


def _json(capsys, argv: list[str]) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_report_fields(capsys, mlp_path, tmp_path):
    out = tmp_path / "sub" / "r.json"
    rep = _json(capsys, [str(mlp_path), "--runs", "20", "--warmup", "2", "--batch", "3",
                         "--out", str(out)])  # fmt: skip
    assert rep["schema"] == "edgeshrink.bench/1"
    m = rep["model"]
    assert m["sha256"] == hashlib.sha256(mlp_path.read_bytes()).hexdigest()
    assert m["size_bytes"] == mlp_path.stat().st_size and m["name"] == "mlp.onnx"
    assert m["inputs"] == [{"name": "X", "shape": ["N", 16], "type": "tensor(float)"}]
    lat = rep["latency_ms"]
    assert lat["count"] == 20
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert rep["batch"] == 3
    assert rep["throughput_per_s"] == pytest.approx(3000 / lat["mean"])
    assert rep["load_ms"] > 0 and rep["first_inference_ms"] > 0
    assert rep["peak_rss_mb"] >= rep["rss_before_load_mb"] > 0
    assert rep["options"]["threads"] == 1 and rep["options"]["warmup"] == 2
    assert rep["machine"]["cpu_count"] >= 1 and isinstance(rep["machine"]["cpu_flags"], list)
    assert rep["versions"]["onnxruntime"] and isinstance(rep["contended"], bool)
    assert json.loads(out.read_text())["model"]["sha256"] == m["sha256"]


def test_npz_inputs_are_used(capsys, mlp_path, tmp_path):
    np.savez(tmp_path / "x.npz", X=np.ones((5, 16), np.float32))
    rep = _json(capsys, [str(mlp_path), "--runs", "3", "--inputs", str(tmp_path / "x.npz")])
    assert rep["batch"] == 5 and rep["options"]["inputs"].endswith("x.npz")


def test_budget_without_runs(capsys, mlp_path):
    rep = _json(capsys, [str(mlp_path), "--budget", "0.05", "--warmup", "0"])
    assert rep["options"]["runs"] is None and rep["latency_ms"]["count"] >= 3


def test_compare_interleaved_ratios(tmp_path):
    small = make_mlp(tmp_path / "small.onnx", width=16, layers=1)
    big = make_mlp(tmp_path / "big.onnx", width=256, layers=8)  # ~1000x the MACs
    rep = compare([small, big], BenchOptions(runs=60, warmup=5))
    r = rep["ratios"]["big.onnx/small.onnx"]
    assert r["size"] == pytest.approx(big.stat().st_size / small.stat().st_size)
    assert r["p50"] == pytest.approx(
        rep["models"][1]["latency_ms"]["p50"] / rep["models"][0]["latency_ms"]["p50"]
    )
    assert r["p50"] > 2  # 1000x the work is not hidden by call overhead
    assert [m["latency_ms"]["count"] for m in rep["models"]] == [60, 60]


def test_compare_cli_and_plain_text_without_rich(capsys, tmp_path, monkeypatch):
    a, b = make_mlp(tmp_path / "a.onnx"), make_mlp(tmp_path / "b.onnx", seed=1)
    # a bare device: no Rich (its submodules too: once imported, they resolve without it)
    for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")] or ["rich"]:
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["--compare", str(a), str(b), "--runs", "5"]) == 0
    text = capsys.readouterr().out
    assert "ratio b.onnx/a.onnx" in text and "p50 x" in text and "latency p99" in text


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["missing.onnx"], "does not exist"),
        ("corrupt", ["bad.onnx"], "is not a loadable ONNX model"),
        ("npz", ["MLP", "--inputs", "x.npz"], "has no array for model input 'X'"),
        ("tokens", ["tok.onnx"], "--dim seq=N"),
        (None, ["MLP", "--threads", "-1"], "threads must be >= 0"),
        (None, ["MLP", "--provider", "NoSuchProvider"], "not available"),
        (None, ["--compare", "MLP"], "at least two models"),
        (None, [], "give the .onnx, .tflite or .pte file"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(
    capsys, monkeypatch, tmp_path, mlp_path, token_path, setup, args, message
):
    monkeypatch.chdir(tmp_path)
    if setup == "corrupt":
        (tmp_path / "bad.onnx").write_bytes(mlp_path.read_bytes()[:40])
    if setup == "npz":
        np.savez(tmp_path / "x.npz", input=np.ones((1, 16), np.float32))
    if setup == "tokens":
        token_path.rename(tmp_path / "tok.onnx")
    argv = [str(mlp_path) if a == "MLP" else a for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_typer_command_delegates(capsys, mlp_path):
    from edgeshrink.cli import main as cli_main

    cli_main(["bench", str(mlp_path), "--runs", "3", "--json"])
    assert json.loads(capsys.readouterr().out)["latency_ms"]["count"] == 3
    with pytest.raises(SystemExit) as exc:
        cli_main(["bench", str(mlp_path), str(mlp_path)])  # two models without --compare
    assert exc.value.code == 2 and "--compare" in capsys.readouterr().err

"""The FedAvg simulation on real digits: it learns, bytes are the messages, bad ones are refused."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeshrink.errors import UserError
from edgeshrink.federated import simulate as sim
from edgeshrink.federated.data import load_task_data, split_clients
from edgeshrink.federated.device import device_view
from edgeshrink.federated.report import render_federated, summary_rows

TINY = sim.FedConfig(task="digits", clients=4, rounds=6, alpha=None, hidden=32, local_steps=20,
                     lr=0.3)


@pytest.fixture(scope="module")
def digits():
    return load_task_data("digits")


@pytest.fixture(scope="module")
def result(digits, tmp_path_factory):
    run = tmp_path_factory.mktemp("fed")
    return run, sim.simulate(TINY, ["none", "q8", "stc:0.05"], run, data=digits)


def test_a_tiny_federation_on_digits_learns_and_compression_keeps_it(result):
    _, payload = result
    rows = {r["compressor"]: r for r in summary_rows(payload)}
    base = payload["runs"][0]["rounds"]
    assert base[0]["accuracy"] < base[-1]["accuracy"] and base[-1]["accuracy"] > 85.0
    assert rows["q8"]["drop"] < 2.0 and rows["q8"]["upload_ratio"] > 4.0
    assert rows["topk:0.05+ternary+ef"]["accuracy"] > 60.0
    assert rows["topk:0.05+ternary+ef"]["upload_ratio"] > 50.0


def test_round_records_count_the_real_message_bytes(result, digits):
    _, payload = result
    fp32 = payload["runs"][0]
    dense = fp32["dense_message_bytes"]
    assert dense == 20 + len("fp32") + 4 + 4 * fp32["params"] + 4
    for r in fp32["rounds"]:
        assert r["bytes_up"] == r["clients"] * dense and r["refused"] == 0
    first = payload["runs"][1]["rounds"][0]
    assert first["bytes_down"] == first["clients"] * dense  # everyone downloads the model once
    assert payload["runs"][1]["rounds"][-1]["cum_up"] == sum(r["bytes_up"] for r in payload["runs"][1]["rounds"])


def test_results_are_json_in_the_run_folder_and_the_page_escapes_names(result):
    run, payload = result
    assert json.loads((run / sim.RESULTS_FILE).read_text()) == json.loads(json.dumps(payload))
    evil = json.loads(json.dumps(payload))
    evil["runs"][0]["compressor"] = "<script>alert(1)</script>"
    html = render_federated(evil)
    assert "<script>" not in html and "&lt;script&gt;" in html and "<svg" in html


def test_a_corrupted_upload_is_refused_and_not_applied(digits, monkeypatch):
    real = sim.Compressor.compress

    def truncate_client_zero(self, update, round_=0):
        msg, sent = real(self, update, round_)
        cut = self.seed == 0 and self.direction == sim.UPLOAD  # client 0 of seed 0
        return (msg[:-3] if cut else msg), sent

    monkeypatch.setattr(sim.Compressor, "compress", truncate_client_zero)
    cfg = sim.FedConfig(task="digits", clients=3, rounds=2, alpha=None, hidden=16, local_steps=5)
    runs = sim.simulate(cfg, ["q8"], data=digits)["runs"][0]["rounds"]
    assert [r["refused"] for r in runs] == [1, 1]
    assert all(r["bytes_up"] > 0 for r in runs)


def test_dirichlet_split_covers_every_sample_once_and_skews_classes():
    y = np.repeat(np.arange(10), 200)
    for alpha in (None, 0.1):
        parts = split_clients(y, 10, alpha=alpha, seed=0)
        assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(y)))
    def top2(parts):  # mean share of a client's samples in its two largest classes
        return np.mean([np.sort(np.bincount(y[p], minlength=10))[-2:].sum() / len(p) for p in parts])

    assert top2(split_clients(y, 10, alpha=0.1, seed=0)) > 0.7 > 0.3 > top2(split_clients(y, 10, alpha=None, seed=0))
    with pytest.raises(UserError, match="clients need"):
        split_clients(y[:50], 10, alpha=None, seed=0)


def test_device_view_reports_upload_compute_and_memory(result):
    _, payload = result
    rows = {r["compressor"]: r for r in device_view(payload, "rpi4")}
    assert rows["q8"]["upload_bytes_per_client_round"] < rows["fp32"]["upload_bytes_per_client_round"] / 3
    assert rows["topk:0.05+ternary+ef"]["state_bytes"] == 4 * payload["runs"][0]["params"]
    assert rows["fp32"]["state_bytes"] == 0 and all(r["encode_ms_estimate"] > 0 for r in rows.values())


def test_the_codec_layer_imports_no_torch():
    code = ("import sys, edgeshrink.federated, edgeshrink.federated.simulate, "
            "edgeshrink.federated.dp; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dp_clips_and_noises_each_update_before_compression(digits, monkeypatch):
    from edgeshrink.federated.dp import privatize

    g = np.full(10_000, 0.1, np.float32)
    clipped = privatize(g, clip=1.0, noise=0.0, rng=np.random.default_rng(0))
    assert abs(float(np.linalg.norm(clipped)) - 1.0) < 1e-5
    noised = privatize(g, clip=1.0, noise=0.5, rng=np.random.default_rng(0))
    assert abs(float(np.std(noised - clipped)) - 0.5) < 0.02
    seen, real = [], sim.Compressor.compress

    def record(self, update, round_=0):
        if self.direction == sim.UPLOAD:
            seen.append(float(np.linalg.norm(update)))
        return real(self, update, round_)

    monkeypatch.setattr(sim.Compressor, "compress", record)
    cfg = sim.FedConfig(task="digits", clients=2, rounds=2, alpha=None, hidden=16, local_steps=5,
                        dp_clip=0.01)
    sim.simulate(cfg, ["topk:0.1+ef"], data=digits)
    assert len(seen) == 4 and max(seen) <= 0.01 + 1e-6  # the compressor only sees clipped updates


def test_a_client_that_missed_broadcasts_downloads_them_all_or_the_dense_model():
    from edgeshrink.federated.compress import Layout

    layout = Layout(((50, 20), (50,)))
    server = sim._Server(np.zeros(layout.size, np.float32),
                         sim.FedConfig(task="digits", download="topk:0.1"), layout)
    server.broadcast(0)
    assert server.download_bytes(0, 0) == server.dense  # first contact: the dense model
    for t in range(1, 4):
        server.x = server.x + np.float32(0.01 * t)
        server.broadcast(t)
    assert server.download_bytes(0, 3) == sum(server.sizes[1:4]) < server.dense
    server.sizes[3] = 10 * server.dense
    assert server.download_bytes(1, 3) == server.dense
    for t in range(4, 14):  # the model stops moving: what was not sent goes out later
        server.broadcast(t)
    np.testing.assert_allclose(server.held, server.x, rtol=0, atol=1e-6)


def test_client_sampling_trains_a_fraction_and_counts_catch_up_downloads(digits):
    cfg = sim.FedConfig(task="digits", clients=4, rounds=4, fraction=0.5, alpha=None, hidden=16,
                        local_steps=3, download="q8")
    run = sim.simulate(cfg, ["q8"], data=digits)["runs"][0]
    assert [r["clients"] for r in run["rounds"]] == [2, 2, 2, 2]
    dense = run["dense_message_bytes"]
    assert run["rounds"][0]["bytes_down"] == 2 * dense  # both first contacts get the dense model
    assert all(0 < r["bytes_down"] <= 2 * dense for r in run["rounds"])
    assert sum(r["bytes_down"] for r in run["rounds"]) < 8 * dense  # later syncs are compressed

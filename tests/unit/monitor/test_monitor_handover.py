"""What the study hands over (recommended/monitor-profile.json, reference.onnx, README) and
the page `edgeshrink report --monitor` draws from a state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from monitor_models import inputs

from edgeshrink.errors import UserError
from edgeshrink.monitor import Monitor, Profile
from edgeshrink.monitor.handover import save_reference_sample, write_monitor_files
from edgeshrink.monitor.page import write_page
from edgeshrink.monitor.profile import Calibration


def test_recommended_folder_gets_a_calibrated_profile_and_the_reference(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(600, 4)) * 3
    labels = logits.argmax(1)
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "baseline.onnx").write_bytes(b"fp32")
    save_reference_sample(tmp_path, "baseline", logits, labels)
    int8 = logits + rng.normal(size=logits.shape) * 0.3  # a slightly different copy
    save_reference_sample(tmp_path, "int8", int8, labels)
    dest = tmp_path / "rec"
    dest.mkdir()
    (dest / "README.md").write_text("# int8\n")
    cal = Calibration(window=100, step=20, horizon=1000, streams=50)
    path = write_monitor_files(tmp_path, "int8", "artifacts/int8.onnx", "baseline",
                               "artifacts/baseline.onnx", dest, cal)
    prof = Profile.load(path)
    assert prof.agreement == pytest.approx(np.mean(int8.argmax(1) == labels))
    assert prof.accuracy == pytest.approx(np.mean(int8.argmax(1) == labels))
    assert (dest / "reference.onnx").read_bytes() == b"fp32"
    readme = (dest / "README.md").read_text()
    assert "monitor run int8.onnx" in readme and "--reference reference.onnx" in readme
    # a run from before monitoring existed: nothing is written, nothing fails
    assert write_monitor_files(tmp_path, "gone", "a.onnx", None, None, dest) is None


def test_embedding_outputs_give_an_embedding_profile(tmp_path):
    emb = np.random.default_rng(1).normal(size=(400, 32)) + 2.0
    save_reference_sample(tmp_path, "emb", emb, emb.astype(np.float32))  # float targets
    (tmp_path / "rec").mkdir()
    cal = Calibration(window=100, step=20, horizon=1000, streams=50)
    prof = Profile.load(write_monitor_files(tmp_path, "emb", "emb.onnx", None, None,
                                            tmp_path / "rec", cal))
    assert prof.kind == "embedding" and set(prof.sketches) == {"norm", "cosine"}
    mon = Monitor(prof)
    quiet = mon.observe(np.random.default_rng(2).normal(size=(300, 32)) + 2.0)
    moved = mon.observe(np.random.default_rng(3).normal(size=(300, 32)) + 1.0)
    assert quiet == [] and moved[0]["alert"] == "drift"
    assert float(mon.buffers["centroid"] @ prof.centroid) < 0.999  # the running centroid moved


def test_report_page_plots_the_series_and_escapes_names(clf, tmp_path):
    from edgeshrink.cli import main

    state = tmp_path / "monitor.sqlite"
    mon = Monitor(clf["profile"], state)
    x = inputs(1500, seed=40)
    w = clf["w"]
    for s in range(0, 1500, 25):
        scale = 1.0 if s < 1000 else 0.3
        mon.observe((scale * x[s:s + 25]) @ w, labels=((x[s:s + 25]) @ w).argmax(1),
                    latency_ms=0.05)
    mon.alerts.recent.append({"alert": "<script>x</script>", "samples": 1})
    mon.close()
    prof = json.loads(clf["profile"].read_text())
    prof["meta"]["model"] = "<b>m</b>.onnx"
    (tmp_path / "monitor-profile.json").write_text(json.dumps(prof))
    main(["report", "--monitor", str(state)])
    page = (tmp_path / "monitor.html").read_text()
    assert page.count("<svg") >= 6 and "<polyline" in page and "alarm" in page
    assert "<script>x" not in page and "&lt;script&gt;x" in page and "&lt;b&gt;m" in page
    with pytest.raises(UserError, match="does not exist"):
        write_page(tmp_path / "gone.sqlite", tmp_path / "x.html")

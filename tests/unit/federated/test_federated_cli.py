"""``edgeshrink federated``: a small run writes its files; every bad option is exit 2, nothing written."""

from __future__ import annotations

import json

import pytest

from edgeshrink.cli import main


def _run(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code, capsys.readouterr()


@pytest.mark.parametrize(("args", "match"), [
    (["--compressor", "zip"], "unknown compressor term"),
    (["--compressor", "topk:2"], "density"),
    (["--compressor", "q8", "--compressor", "int8"], "once"),
    (["--alpha", "abc"], "--alpha"),
    (["--alpha", "-1"], "--alpha"),
    (["--clients", "0"], "--clients"),
    (["--rounds", "0"], "--rounds"),
    (["--fraction", "1.5"], "--fraction"),
    (["--lr", "0"], "--lr"),
    (["--task", "cifar"], "unknown federated task"),
    (["--dp-noise", "1.0"], "--dp-clip"),
    (["--download", "sign+topk:0.1"], "ternary"),
    (["--device", "no-such-device"], "unknown device"),
])
def test_bad_options_are_one_sentence_exit_2_and_write_nothing(args, match, tmp_path, capsys):
    out = tmp_path / "run"
    code, cap = _run(["federated", "--task", "digits", "--out", str(out), *args], capsys)
    assert code == 2 and match in cap.err and "Traceback" not in cap.err
    assert len(cap.err.strip().splitlines()) == 1 and not out.exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("keep me")
    code, cap = _run(["federated", "--task", "digits", "--out", str(out)], capsys)
    assert code == 2 and "is a file" in cap.err and out.read_text() == "keep me"


def test_a_small_run_writes_results_report_and_device_view(tmp_path, capsys):
    out = tmp_path / "run"
    main(["federated", "--task", "digits", "--clients", "3", "--rounds", "2", "--hidden", "16",
          "--local-steps", "5", "--compressor", "efsign", "--alpha", "iid", "--device", "rpi4",
          "--out", str(out)])
    payload = json.loads((out / "federated.json").read_text())
    assert [r["compressor"] for r in payload["runs"]] == ["fp32", "sign+ef"]
    assert all(len(r["rounds"]) == 2 for r in payload["runs"])
    assert [d["device"] for d in payload["device"]] == ["raspberry-pi-4"] * 2
    assert "sign+ef" in (out / "federated.html").read_text()
    assert "report:" in capsys.readouterr().out

"""A TensorRT candidate's report says that no engine was built or timed here."""

from __future__ import annotations

from sample_run import sample_run

from edgeshrink.report.html import render_page
from edgeshrink.targets.tensorrt import NOT_TIMED_HERE, trtexec_command


def _run_with_trt():
    run = sample_run()
    trt = run.candidates[4]  # int8-static, relabelled as TensorRT's QDQ file
    trt.runtime = "tensorrt"
    trt.latency_ms = {**trt.latency_ms, "source": "estimate", "estimated_on": "jetson-orin-nano"}
    trt.notes = {"not_timed_here": NOT_TIMED_HERE, "trtexec": trtexec_command("int8-static.onnx")}
    return run, trt


def test_page_and_terminal_say_no_engine_was_built_or_timed():
    from rich.console import Console

    from edgeshrink.report.terminal import print_summary

    run, trt = _run_with_trt()
    page = render_page(run, plots={})
    section = page[page.index('id="not-timed"'):]
    assert "No TensorRT engine was built or timed on this machine" in section
    assert "trtexec --onnx=int8-static.onnx --int8 --fp16" in section
    assert f"<b>{trt.name}</b>" in section
    assert 'id="not-timed"' not in render_page(sample_run(), plots={})  # only where it applies
    console = Console(record=True, width=200)
    print_summary(run, console)
    text = console.export_text()
    assert f"not timed here: {trt.name}: No TensorRT engine was built" in text
    assert "TensorRT" in text and "est" in text


def test_a_mixed_precision_file_shows_its_split():
    run = sample_run()
    dyn = run.candidates[4]
    dyn.notes = {"macs_by_precision": {"fp32": 82_944, "int8": 8_832}}
    page = render_page(run, plots={})
    assert "fp32 90 % · int8 10 % of MACs" in page
    assert page.count("of MACs") == 2  # the host and device rows of that candidate only


def test_a_metric_measured_here_but_not_the_devices_is_said_on_page_and_terminal():
    from rich.console import Console

    from edgeshrink.report.terminal import print_summary

    run = sample_run()
    cand = run.candidates[4]
    cand.notes = {"accuracy_caveat": "8-bit weights built for device rpi4 saturate here."}
    page = render_page(run, plots={})
    section = page[page.index('id="accuracy-caveats"'):]
    assert f"<b>{cand.name}</b>: 8-bit weights built for device rpi4 saturate here." in section
    assert 'id="accuracy-caveats"' not in render_page(sample_run(), plots={})
    console = Console(record=True, width=300)
    print_summary(run, console)
    assert (f"metric measured here, not the device's: {cand.name}: 8-bit weights built for "
            "device rpi4 saturate here.") in console.export_text()

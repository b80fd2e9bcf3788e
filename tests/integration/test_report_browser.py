"""report.html in a real browser: headless Chromium with the network made unusable.

The page records its own health on <body> (``data-plots-rendered``: inline SVG plots the
browser laid out with a non-empty box, ``data-script-errors``); Chromium's ``--dump-dom``
gives us that DOM, and ``--enable-logging=stderr`` gives every console message and uncaught error
(``INFO:CONSOLE`` lines). A control page that needs the CDN proves the harness would see a
page that depends on the network. The screenshot lands in ``test-artifacts/report.png``.
"""

from __future__ import annotations

import html
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeshrink.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (installed by .ci/system-packages.sh)",
)


def _module(name: str):
    path = ROOT / "tests" / "unit" / "report" / name
    spec = importlib.util.spec_from_file_location(f"report_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sample_module():
    return _module("sample_run.py")


def _chromium(page: Path, work: Path, *, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """Open ``page`` offline; return (the DOM after scripts ran, console lines)."""
    args = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={work / 'profile'}",
        # every non-file request goes to a closed local port: the network is unusable
        "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000",
        "--window-size=1400,2750", "--hide-scrollbars", "--dump-dom",
    ]
    if screenshot is not None:
        args.append(f"--screenshot={screenshot}")
    proc = subprocess.run([*args, page.resolve().as_uri()], capture_output=True, text=True,
                          timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return proc.stdout, console


def _body(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', tag))


def test_report_renders_offline_without_errors(tmp_path):
    sample = _sample_module()
    run_dir = tmp_path / "run"
    sample.write_sample_run(run_dir)
    page = write_report(run_dir)
    shot = tmp_path / "report.png"

    dom, console = _chromium(page, tmp_path, screenshot=shot)

    body = _body(dom)
    assert body.get("ready") == "1", f"render script never finished: {body}"
    assert body["plots-expected"] == "6" and body["plots-rendered"] == "6", body
    assert body["script-errors"] == "0", re.search(r'id="report-errors"[^>]*>([^<]*)', dom)
    assert console == [], "console messages / uncaught errors:\n" + "\n".join(console)
    for key in ("device_size", "device_latency", "host_size", "host_latency",
                "sensitivity_sparsity", "sensitivity_bits"):
        fig = re.search(rf'<figure class="plot" id="plot-{key}">.*?</figure>', dom, re.S)
        assert fig and "<svg" in fig.group(0), f"{key} has no SVG"
    # the live DOM still says the same numbers in card, table and plot (after the scripts ran)
    numbers = _module("page_numbers.py")
    assert numbers.mismatches(dom, sample.RECOMMENDED) == []
    # the layer/candidate named like markup is text in the live DOM, not an element
    assert sample.EVIL not in dom and html.escape(sample.EVIL, quote=False) in dom

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "report.png")


def test_harness_sees_a_page_that_needs_the_network(tmp_path):
    page = tmp_path / "cdn.html"
    page.write_text(
        '<html><body><div id="p"></div>'
        '<script src="https://cdn.plot.ly/plotly-2.35.2.min.js" '
        "onerror=\"document.body.dataset.blocked='1'\"></script>"
        "<script>Plotly.newPlot('p', [])</script></body></html>"
    )
    dom, console = _chromium(page, tmp_path)
    assert _body(dom).get("blocked") == "1"  # the CDN could not be reached
    assert any("Plotly is not defined" in ln for ln in console), console

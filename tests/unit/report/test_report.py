"""The report: a self-contained page with escaped names, one set of numbers, PNGs, terminal."""

from __future__ import annotations

import html
import io
import re
import struct
from html.parser import HTMLParser

import pytest
from page_numbers import mismatches, parse
from rich.console import Console
from sample_run import EVIL, RECOMMENDED, sample_run, write_sample_run

from edgeshrink.cli import main
from edgeshrink.report import print_summary
from edgeshrink.report.html import render_page
from edgeshrink.results import RunRecord

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNGS = ("device_size", "device_latency", "host_size", "host_latency", "sensitivity_sparsity",
        "sensitivity_bits")


class _Page(HTMLParser):
    """Collects scripts (attrs + text) and the text of every table cell."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[dict, str]] = []
        self.cells: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append((dict(attrs), ""))
            self._in = "script"
        elif tag == "td":
            self.cells.append("")
            self._in = "td"

    def handle_endtag(self, tag):
        if tag in ("script", "td"):
            self._in = None

    def handle_data(self, data):
        if self._in == "script":
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        elif self._in == "td":
            self.cells[-1] += data


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    write_sample_run(run_dir)
    main(["report", "--quiet", str(run_dir)])  # through the CLI, as a user would
    return run_dir, (run_dir / "report.html").read_text(encoding="utf-8")


def test_page_is_self_contained_and_small(report):
    _, page = report
    assert 'src="http' not in page and 'href="http' not in page.replace(
        'href="http://www.w3.org', "")
    assert not re.search(r"<script[^>]*\bsrc=", page), "every script must be inline"
    assert not re.search(r"<link\b", page), "the stylesheet must be inline"
    assert "Plotly" not in page and len(page.encode()) < 600_000  # was 4.8 MB with plotly.js
    assert page.count("<svg") == len(PNGS)  # every plot inline, drawn once


def test_markup_in_names_is_text_not_markup(report):
    _, page = report
    assert EVIL not in page
    assert html.escape(EVIL, quote=False) in page
    parser = _Page()
    parser.feed(page)
    # error trap + ready + sort: nothing injected
    assert len(parser.scripts) == 3
    assert all("alert(1)" not in text for _, text in parser.scripts)
    # the name is the text of table cells: device view, host view, why-not table
    assert parser.cells.count(EVIL) == 3


def test_every_number_about_a_candidate_reads_the_same_everywhere(report):
    _, page = report
    assert mismatches(page, RECOMMENDED) == []
    p = parse(page)
    card = p.cards[("device", RECOMMENDED)]
    assert card["size"] == "30.7 kB"  # the packed file that ships, in SI units
    assert card["latency"] == p.tables[("device", RECOMMENDED)]["latency"]
    assert card["drop"] == "+0.50"
    assert p.verdict.startswith(f"on raspberry-pi-4: prune and quantize: {RECOMMENDED}, 30.7 kB")
    # every candidate is a labelled, hoverable point in both plots of both views
    for view in ("device", "host"):
        for c in sample_run().all_candidates():
            assert len(p.points[(view, c.name)]) == 2, (view, c.name)
    # the host view shows the file measured here, not the device's figure
    assert p.tables[("host", RECOMMENDED)]["size"] == "65.5 kB"


def test_points_have_hover_titles_and_budgets_are_drawn(report):
    _, page = report
    size = re.search(r'<figure class="plot" id="plot-device_size">.*?</figure>', page, re.S)[0]
    title = re.search(r'<g id="pt-device-size-\d+" class="pt"[^>]*data-candidate="'
                      + re.escape(RECOMMENDED) + r'"[^>]*><title>([^<]*)</title>', size)
    assert title and "30.7 kB (packed file)" in title[1] and "(estimate)" in title[1]
    assert "budget 100.0 kB" in size and "max drop 1.5 (upper 95 % bound)" in size
    assert "meets the budgets" in size and f"★ {RECOMMENDED}" in size


def test_pngs_are_real_images(report):
    run_dir, page = report
    for key in PNGS:
        data = (run_dir / f"{key}.png").read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, key
        width, height = struct.unpack(">II", data[16:24])  # IHDR
        assert width >= 1000 and height >= 400, (key, width, height)
        assert f'href="{key}.png"' in page


def test_heat_map_labels_stay_clear_of_the_title():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from edgeshrink.report._common import sensitivity_maps
    from edgeshrink.report.plots import _heatmap

    run = sample_run()
    for kind, m in sensitivity_maps(run).items():
        fig = _heatmap(run, kind, m)
        renderer = FigureCanvasAgg(fig).get_renderer()
        ax = fig.axes[0]
        title = ax.title.get_window_extent(renderer)
        ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
        assert ticks and not any(t.overlaps(title) for t in ticks), kind


def test_page_without_device_or_sensitivity_has_only_host_plots():
    run = sample_run()
    run = RunRecord(task=run.task, metric=run.metric, baseline=run.baseline,
                    candidates=run.candidates)
    page = render_page(run)
    assert page.count("<svg") == 2 and 'id="view-host"' in page
    assert 'id="recommendation"' not in page and 'id="view-device"' not in page
    assert mismatches(page, None) == []


def test_failed_recommendation_is_on_the_page():
    from edgeshrink.advisor import Constraints, NoFit, recommend

    run = sample_run()
    with pytest.raises(NoFit) as exc:
        recommend(run, "rpi4", Constraints(max_size_bytes=1_000, max_latency_ms=1e-6), "size")
    run.recommendation = exc.value.record
    page = render_page(run)
    p = parse(page)
    assert p.verdict.startswith("on raspberry-pi-4: nothing fits — no candidate meets")
    nearest = re.search(r'<table id="nearest">.*?</table>', page, re.S)[0]
    assert "max_size" in nearest and "int2-ternary: size 16.4 kB &gt; 1.0 kB" in nearest
    assert "max_latency" in nearest
    device = re.search(r'<table class="sortable" id="table-device">.*?</table>', page, re.S)[0]
    assert "★" not in device and "Recommended" not in page
    assert mismatches(page, None) == []


def _summary(run: RunRecord) -> str:
    console = Console(file=io.StringIO(), width=220, record=True)
    print_summary(run, console)
    return console.export_text()


def test_terminal_summary_has_the_same_numbers_and_marks():
    run = sample_run()
    text = _summary(run)
    device = text[text.index("on raspberry-pi-4"):]
    row = next(ln for ln in device.splitlines() if f" {RECOMMENDED} " in ln)
    assert "30.7 kB (packed file)" in row and "+0.50 [-0.05, +1.15]" in row and "★" in row
    assert "int2-ternary" in text and "simulated" in text
    assert "Recommended: prune-50+int8 for raspberry-pi-4" in text
    assert run.recommendation["verdict"] in text.replace("\n", " ") or "prune and quantize" in text


def test_terminal_prints_names_literally():
    run = sample_run()
    run.candidates[0].name = "[red]boom[/red]"
    assert "[red]boom[/red]" in _summary(run)


def test_report_of_missing_run_is_a_user_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "nope")])
    assert exc.value.code == 2
    assert "nope" in capsys.readouterr().err


def test_an_outlier_does_not_squash_the_rest():
    from edgeshrink.report.plots import _trade_off
    from edgeshrink.report.views import host_view

    run = sample_run()
    collapsed = run.candidates[5]  # int2-ternary collapses to 20 %, and is 100x slower
    collapsed.metric["value"], collapsed.metric["ci95"] = 20.0, [17.6, 22.6]
    collapsed.latency_ms["p50"] = 40.0
    fig, _ = _trade_off(run, host_view(run), "latency")
    ax = fig.axes[0]
    assert ax.get_ylim()[0] > 80  # the other candidates keep the height of the plot
    assert ax.get_xscale() == "log"
    texts = [t.get_text() for t in ax.texts]
    assert "↓ 20.0 %" in texts

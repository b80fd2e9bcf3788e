"""The report: a self-contained page with escaped names, PNGs, and the terminal summary."""

from __future__ import annotations

import html
import io
import json
import re
import struct
from html.parser import HTMLParser

import pytest
from rich.console import Console
from sample_run import EVIL, RECOMMENDED, sample_run, write_sample_run

from edgeshrink.cli import main
from edgeshrink.report import print_summary
from edgeshrink.report.html import render_page, script_json
from edgeshrink.results import RunRecord, pareto_front

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNGS = ("metric_vs_size", "metric_vs_latency", "sensitivity_sparsity", "sensitivity_bits")


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


def test_page_is_self_contained(report):
    _, page = report
    assert 'src="http' not in page and '<link href="http' not in page
    assert not re.search(r"<script[^>]*\bsrc=", page), "every script must be inline"
    assert not re.search(r"<link\b", page), "the stylesheet must be inline"
    parser = _Page()
    parser.feed(page)
    bundle = max((text for _, text in parser.scripts), key=len)
    assert len(bundle) > 3_000_000 and "newPlot" in bundle  # plotly.js itself, inlined


def test_markup_in_names_is_text_not_markup(report):
    _, page = report
    assert EVIL not in page  # not even inside JSON: there it is \u003c...
    assert html.escape(EVIL) in page
    parser = _Page()
    parser.feed(page)
    # 1 error trap + 4 figure specs + plotly.js + render + sort: nothing injected
    assert len(parser.scripts) == 8
    assert all("alert(1)" not in text for attrs, text in parser.scripts if not attrs)
    # the name is the text of table cells: candidates, alternatives, device estimates
    assert parser.cells.count(EVIL) == 3


def test_figure_specs_round_trip_with_names_escaped_for_plotly(report):
    _, page = report
    parser = _Page()
    parser.feed(page)
    specs = {a["id"]: json.loads(t) for a, t in parser.scripts if a.get("type") == "application/json"}
    assert sorted(specs) == sorted(f"fig-{k}" for k in PNGS)
    heat = specs["fig-sensitivity_bits"]["data"][0]
    assert heat["y"][3] == html.escape(EVIL)  # plotly.js decodes entities back to text
    assert heat["z"][0] == [97.8, 97.6, 95.0, 60.0]
    size = specs["fig-metric_vs_size"]
    front = next(t for t in size["data"] if t["name"] == "Pareto front")
    # the 2-D front (accuracy up, stored size down), left to right
    assert front["x"] == [16.0, 24.0, 30.0, 52.0, 130.0, 222.0]
    families = [t["name"] for t in size["data"][1:]]
    assert families == ["baseline", "pruning", "quantization", "both", "recommended"]
    quant = size["data"][3]
    assert quant["marker"]["symbol"] == ["circle", "circle-open"]  # open = simulated


def test_script_json_cannot_close_a_script_block():
    text = script_json({"name": "</script><!--&\u2028"})
    assert not set("<>&") & set(text) and "\u2028" not in text
    assert json.loads(text) == {"name": "</script><!--&\u2028"}
    assert json.loads(script_json({"z": [1.0, float("nan"), float("inf")]})) == {"z": [1.0, None, None]}


def test_pngs_are_real_images(report):
    run_dir, page = report
    for key in PNGS:
        data = (run_dir / f"{key}.png").read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, key
        width, height = struct.unpack(">II", data[16:24])  # IHDR
        assert width >= 1000 and height >= 400, (key, width, height)
        assert f'href="{key}.png"' in page


def test_page_without_device_or_sensitivity_has_only_trade_off_plots():
    run = sample_run()
    run = RunRecord(task=run.task, metric=run.metric, baseline=run.baseline,
                    candidates=run.candidates)
    page = render_page(run)
    assert page.count("data-figure=") == 2
    assert 'id="recommendation"' not in page and 'id="device"' not in page


def _summary(run: RunRecord) -> str:
    console = Console(file=io.StringIO(), width=220, record=True)
    print_summary(run, console)
    return console.export_text()


def test_terminal_summary_has_names_and_marks():
    run = sample_run()
    text = _summary(run)
    rows = {c.name: next(ln for ln in text.splitlines() if f" {c.name} " in ln)
            for c in run.all_candidates()}
    front = set(pareto_front(run.all_candidates()))
    assert front == set(rows) - {"prune-80"}  # int8-static beats it on all three
    for name, row in rows.items():
        assert ("◆" in row) == (name in front), row
        assert ("★" in row) == (name == RECOMMENDED), row
    assert "simulated" in rows["int2-ternary"] and "0.45 (simulated)" in rows["int2-ternary"]
    assert "97.30 %" in rows[RECOMMENDED] and "+0.50" in rows[RECOMMENDED]
    assert "30.0 KiB" in rows[RECOMMENDED]  # stored = deflated/encoded size
    assert "Recommended: prune-50+int8 for rpi4" in text
    assert "It is the smallest candidate within 1.0 point of the baseline." in text


def test_terminal_prints_names_literally():
    run = sample_run()
    run.candidates[0].name = "[red]boom[/red]"
    assert "[red]boom[/red]" in _summary(run)


def test_report_of_missing_run_is_a_user_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "nope")])
    assert exc.value.code == 2
    assert "nope" in capsys.readouterr().err


"""`make demo` itself (minutes: marked slow, run by `make bench`): the page it writes agrees
with itself, is small, and `recommend` with a new device rewrites it in the same call."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _page_numbers():
    path = Path(__file__).parents[1] / "unit" / "report" / "page_numbers.py"
    spec = importlib.util.spec_from_file_location("page_numbers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_study_page_says_one_number_per_quantity_per_view(tmp_path):
    from edgeshrink.cli import main
    from edgeshrink.results import load_run

    out = tmp_path / "demo"
    main(["study", "--sensitivity", "--device", "cortex-m7", "--out", str(out)])  # make demo
    numbers = _page_numbers()
    page = (out / "report.html").read_text()
    rec = load_run(out).recommendation
    assert numbers.mismatches(page, rec["candidate"]) == []
    assert len(page.encode()) < 1_500_000
    parsed = numbers.parse(page)
    assert parsed.verdict.startswith("on cortex-m7: ")
    assert len(parsed.points) == 2 * len(load_run(out).all_candidates())  # both views
    main(["recommend", str(out), "--device", "rpi4", "--max-size", "100kB"])
    page = (out / "report.html").read_text()
    assert numbers.parse(page).verdict.startswith("on raspberry-pi-4: ")
    assert numbers.mismatches(page, load_run(out).recommendation["candidate"]) == []

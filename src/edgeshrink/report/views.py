"""The report's two views of a study, each with one figure per quantity per candidate.

* **device view** (when the run has a device): the size of the file that ships on the
  device, its latency there (``measured``, a bench file, or a roofline ``estimate``, always
  labelled) and the energy estimate, exactly the numbers the advisor decided on (the
  recommendation's ``estimates``), with the device budgets;
* **host view**: the artifact file measured on the machine the study ran on, and its p50
  latency there.

Cards, reasons, tables, plots and the terminal read a view's rows and format them with
:mod:`edgeshrink.units` only, so one number about one candidate in one view reads the same
everywhere. Pure functions of result records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeshrink.report._common import metric_info
from edgeshrink.results import CandidateRecord, RunRecord
from edgeshrink.ties import drop_ci
from edgeshrink.units import fmt_bytes, fmt_interval, fmt_mj, fmt_ms, fmt_points

__all__ = ["Row", "View", "accuracy_caveats", "device_view", "host_view", "not_timed_here", "views"]


@dataclass(frozen=True)
class Row:
    """One candidate in one view: the numbers and their one text form each."""

    rec: CandidateRecord
    size_bytes: int
    size_form: str
    latency_ms: float
    latency_source: str
    energy_mj: float | None = None
    fits: bool = True
    pareto: bool = False
    recommended: bool = False

    @property
    def name(self) -> str:
        return self.rec.name

    @property
    def metric_ci(self) -> list[float] | None:
        ci = (self.rec.metric or {}).get("ci95")
        return [float(ci[0]), float(ci[1])] if ci else None

    @property
    def drop_ci(self) -> tuple[float, float] | None:
        return drop_ci(self.rec) if self.rec.family != "baseline" else None

    def text(self, unit: str) -> dict[str, str]:
        """Every quantity of the row as the page and the terminal show it."""
        ci = self.metric_ci
        return {
            "metric": f"{self.rec.value:.2f} {unit}".rstrip(),
            "metric_ci": fmt_interval(ci),
            "drop": "-" if self.rec.family == "baseline" else fmt_points(self.rec.metric_drop),
            "drop_ci": fmt_interval(self.drop_ci, signed=True),
            "size": fmt_bytes(self.size_bytes),
            "latency": fmt_ms(self.latency_ms),
            "energy": fmt_mj(self.energy_mj) if self.energy_mj is not None else "",
            "source": self.latency_source,
        }


@dataclass(frozen=True)
class View:
    """All candidates seen from one place (``key``: ``device`` or ``host``)."""

    key: str
    title: str
    size_label: str
    latency_label: str
    rows: list[Row]
    budgets: dict[str, Any] = field(default_factory=dict)

    def row(self, name: str) -> Row | None:
        return next((r for r in self.rows if r.name == name), None)


def _front(rows: list[Row], higher: bool) -> set[str]:
    """Names no other row beats on (metric, size, latency)."""
    def key(r: Row) -> tuple[float, float, float]:
        return (-r.rec.value if higher else r.rec.value, r.size_bytes, r.latency_ms)

    pts = [(r.name, key(r)) for r in rows]
    return {n for n, p in pts
            if not any(all(a <= b for a, b in zip(q, p, strict=True)) and q != p for _, q in pts)}


def _marked(rows: list[Row], run: RunRecord) -> list[Row]:
    _, _, higher = metric_info(run)
    front = _front(rows, higher)
    pick = (run.recommendation or {}).get("candidate")
    return [Row(**{**r.__dict__, "pareto": r.name in front, "recommended": r.name == pick})
            for r in rows]


def host_view(run: RunRecord) -> View:
    """The artifacts as measured on the study's machine."""
    threads = {int((c.latency_ms or {}).get("threads", 1)) for c in run.all_candidates()}
    rows = [Row(c, int(c.size_bytes), "file", float(c.p50),
                str((c.latency_ms or {}).get("source", "measured")))
            for c in run.all_candidates()]
    where = f"{max(threads)} thread{'s' if max(threads) > 1 else ''}" if threads else ""
    return View("host", "On the study host (measured here)", "artifact file",
                f"p50 latency on the host ({where})", _marked(rows, run))


def device_view(run: RunRecord) -> View | None:
    """The candidates on the run's device, from the advisor's own figures; None without."""
    rec = run.recommendation or {}
    est = rec.get("estimates") or {}
    device = rec.get("device") or (run.device or {}).get("name")
    if not est or not device:
        return None
    rows = []
    for c in run.all_candidates():
        e = est.get(c.name)
        if e is None:
            continue
        rows.append(Row(c, int(e["size_bytes"]), str(e.get("size_form", "file")),
                        float(e["latency_ms"]), str(e.get("latency_source", "estimate")),
                        float(e["energy_mj"]), bool(e.get("fits_memory", True))))
    cons = rec.get("constraints") or {}
    budgets = {k: cons.get(k) for k in ("max_size_bytes", "max_latency_ms", "max_drop",
                                        "drop_estimate")}
    sources = sorted({r.latency_source for r in rows})
    return View("device", f"On {device}", "size of the file that ships",
                f"latency on {device} ({', '.join(sources)})", _marked(rows, run), budgets)


def views(run: RunRecord) -> list[View]:
    """The device view first (when there is one), then the host view."""
    dev = device_view(run)
    return ([dev] if dev else []) + [host_view(run)]


def not_timed_here(run: RunRecord) -> list[dict[str, str]]:
    """Candidates whose runtime this machine cannot time (TensorRT: the engine is built on
    the device), each with its sentence and the command that builds and times it there."""
    return [{"name": c.name, "why": str(c.notes["not_timed_here"]),
             "command": str(c.notes.get("trtexec", ""))}
            for c in run.all_candidates() if (c.notes or {}).get("not_timed_here")]


def accuracy_caveats(run: RunRecord) -> list[dict[str, str]]:
    """Candidates whose metric measured here is not the device's (``notes["accuracy_caveat"]``:
    e.g. INT8 weights built for the device that saturate on this host), each with why."""
    return [{"name": c.name, "why": str(c.notes["accuracy_caveat"])}
            for c in run.all_candidates() if (c.notes or {}).get("accuracy_caveat")]

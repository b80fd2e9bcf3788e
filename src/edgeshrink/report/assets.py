"""The report page's inline stylesheet and scripts (kept as strings: the page has no files).

``ERROR_TRAP`` runs first in <head> and records every script error; ``READY`` runs last,
sets ``body[data-plots-rendered]`` to the number of inline SVG plots the browser laid out
and shows any recorded error in ``#report-errors`` (so a broken page says so, and a
headless browser's ``--dump-dom`` can check it). ``SORT`` makes every ``table.sortable`` sortable by clicking a
header (cells may carry ``data-sort``, a number, to sort by instead of their text).
"""

from __future__ import annotations

__all__ = ["CSS", "ERROR_TRAP", "READY", "SORT"]

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff;
  --accent:#d62728; --ok:#1b7f5b; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif; }
header { background:#1f2933; color:#fff; padding:22px 32px 18px; }
header h1 { margin:0; font-size:22px; font-weight:600; letter-spacing:.2px; }
header .sub { color:#cbd2d9; margin-top:4px; font-size:13px; }
main { max-width:1320px; margin:0 auto; padding:20px 32px 40px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px;
  padding:18px 22px; margin:0 0 18px; }
h2 { font-size:16px; margin:0 0 12px; font-weight:600; }
h3 { font-size:14px; margin:14px 0 6px; font-weight:600; }
.muted, .caption { color:var(--muted); font-size:12.5px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(220px,1fr)); gap:14px;
  margin-bottom:18px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.5px; }
.card .value { font-size:18px; font-weight:600; margin:2px 0; word-break:break-word; }
.card.rec { border-color:var(--accent); box-shadow:inset 4px 0 0 var(--accent); }
.plots { display:grid; grid-template-columns:repeat(auto-fit,minmax(480px,1fr)); gap:14px; }
.plot { margin:0; border:1px solid var(--line); border-radius:6px; padding:4px; }
.plot svg { width:100%; height:auto; display:block; }
g.pt { cursor:help; }
g.pt:hover { opacity:.6; }
header .verdict { margin:10px 0 0; font-size:16px; font-weight:600; color:#fff; }
header .verdict.fail { color:#ffb3b3; }
section.nofit { border-color:#ffa39e; }
.card .q { font-size:13px; }
.card.fail { border-color:var(--accent); }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { padding:6px 8px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#f0f3f7; font-weight:600; white-space:nowrap; position:sticky; top:0; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td .muted { font-size:11.5px; }
table.sortable th { cursor:pointer; user-select:none; }
table.sortable th:hover { background:#e4e9f0; }
th[aria-sort=ascending]::after { content:" \\25B2"; font-size:10px; }
th[aria-sort=descending]::after { content:" \\25BC"; font-size:10px; }
tr.recommended td { background:#fff4f4; }
tr.baseline td { background:#f7f7f7; }
.scroll { overflow-x:auto; max-height:640px; overflow-y:auto; }
.recipe { min-width:240px; font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px;
  color:#334e68; }
.fam { display:inline-block; padding:1px 8px; border-radius:10px; color:#fff; font-size:12px; }
.tag { display:inline-block; padding:0 6px; border-radius:4px; font-size:11.5px;
  border:1px solid var(--line); color:var(--muted); }
.tag.sim { border-color:#e69f00; color:#9a6700; background:#fff8e6; }
.mark-pareto { color:#334e68; font-weight:600; }
.mark-rec { color:var(--accent); font-weight:700; }
.kv { width:auto; min-width:50%; }
.kv th { width:1%; background:none; position:static; color:var(--muted); font-weight:500; }
.two { display:grid; grid-template-columns:repeat(auto-fit,minmax(360px,1fr)); gap:18px; }
ul.reasons { margin:6px 0 0; padding-left:20px; }
.errors { background:#fff1f0; border:1px solid #ffa39e; color:#a8071a; border-radius:8px;
  padding:12px 16px; margin-bottom:18px; white-space:pre-wrap; }
a { color:#0b5cad; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:8px 0 24px; }
"""

ERROR_TRAP = """
window.__reportErrors = [];
window.addEventListener("error", function (e) {
  window.__reportErrors.push(String(e.message || e.type) + (e.filename ? " (" + e.lineno + ")" : ""));
}, true);
window.addEventListener("unhandledrejection", function (e) {
  window.__reportErrors.push("unhandled rejection: " + String(e.reason));
});
"""

READY = """
(function () {
  var body = document.body, errors = window.__reportErrors;
  var figs = Array.prototype.slice.call(document.querySelectorAll("figure.plot"));
  var ok = figs.filter(function (f) {
    var svg = f.querySelector("svg");
    return svg && svg.getBBox && svg.getBBox().width > 0;
  }).length;
  body.dataset.plotsExpected = String(figs.length);
  body.dataset.plotsRendered = String(ok);
  if (ok !== figs.length) errors.push((figs.length - ok) + " plot(s) did not render");
  var box = document.getElementById("report-errors");
  if (errors.length) {
    box.textContent = "This page hit a problem while drawing; some parts may be missing:\\n" +
      errors.join("\\n");
    box.hidden = false;
  }
  body.dataset.scriptErrors = String(errors.length);
  body.dataset.ready = "1";
})();
"""

SORT = """
(function () {
  function key(cell) {
    var v = cell.getAttribute("data-sort");
    if (v !== null && v !== "" && !isNaN(+v)) return {n: +v};
    return {s: cell.textContent.trim().toLowerCase()};
  }
  function cmp(a, b) {
    if ("n" in a && "n" in b) return a.n - b.n;
    if ("n" in a) return -1;
    if ("n" in b) return 1;
    return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.tabIndex = 0;
      function sort() {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var c = cmp(key(r1.cells[col]), key(r2.cells[col]));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") sort(); });
    });
  });
})();
"""

"""Parse report.html and check that one candidate's numbers in one view read the same in
the cards, the reasons, the verdict, the tables and the plots (shared by the unit test on
the sample study and the integration test on a real one)."""

from __future__ import annotations

from html.parser import HTMLParser

QUANTITIES = ("size", "latency", "energy", "metric", "drop")


class PageNumbers(HTMLParser):
    """Cards, table cells and plot points keyed by (view, candidate), plus reasons/verdict."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cards: dict[tuple[str, str], dict[str, str]] = {}
        self.tables: dict[tuple[str, str], dict[str, str]] = {}
        self.points: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.reasons: list[str] = []
        self.verdict = ""
        self._card = self._table = self._row = None
        self._q: tuple[dict, str] | None = None  # (where, quantity) being read
        self._li = self._in_verdict = False
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "div" and "card" in cls:
            self._card = (a["data-view"], a["data-candidate"]) if "data-candidate" in a else None
        if tag == "table" and (a.get("id") or "").startswith("table-"):
            self._table = a["id"].removeprefix("table-")
        if tag == "tr" and self._table and "data-candidate" in a:
            self._row = (self._table, a["data-candidate"])
        if tag == "span" and self._card and "data-q" in a:
            self._q = (self.cards.setdefault(self._card, {}), a["data-q"])
        if tag == "td" and self._row and "data-q" in a:
            self._q = (self.tables.setdefault(self._row, {}), a["data-q"])
        if tag == "div" and self._q and self._q[0] is self.tables.get(self._row):
            self._q = None  # the muted second line of a cell is not the figure itself
        if tag == "g" and "pt" in cls:
            key = (a["data-view"], a["data-candidate"])
            self.points.setdefault(key, []).append(
                {k.removeprefix("data-"): v for k, v in a.items() if k.startswith("data-")})
        if tag == "li" and self._ul_reasons:
            self._li = True
            self.reasons.append("")
        if tag == "ul":
            self._ul_reasons = "reasons" in cls
        if tag == "p" and a.get("id") == "verdict":
            self._in_verdict = True

    _ul_reasons = False

    def handle_endtag(self, tag):
        if tag in ("span", "td"):
            self._q = None
        if tag == "table":
            self._table = None
        if tag == "tr":
            self._row = None
        if tag == "li":
            self._li = False
        if tag == "ul":
            self._ul_reasons = False
        if tag == "p":
            self._in_verdict = False

    def handle_data(self, data):
        if self._q is not None:
            where, q = self._q
            where[q] = (where.get(q, "") + data).strip()
        if self._li:
            self.reasons[-1] += data
        if self._in_verdict:
            self.verdict += data


def parse(page: str) -> PageNumbers:
    p = PageNumbers()
    p.feed(page)
    return p


def mismatches(page: str, recommended: str | None) -> list[str]:
    """Every place where a candidate's figure in a view differs between two parts."""
    p = parse(page)
    bad = []
    for key, row in p.tables.items():
        for pt in p.points.get(key, []):
            bad += [f"{key} {q}: table {row[q]!r} != plot {pt[q]!r}"
                    for q in QUANTITIES if q in row and row[q] != pt.get(q)]
        if not p.points.get(key):
            bad.append(f"{key}: in the table but not in the plots")
    for key, card in p.cards.items():
        row = p.tables.get(key, {})
        bad += [f"{key} {q}: card {card[q]!r} != table {row.get(q)!r}"
                for q in QUANTITIES if q in card and card[q] != row.get(q)]
    if recommended:
        card = p.cards[("device", recommended)]
        first = p.reasons[0]
        bad += [f"reason 1 lacks the card's {q} {card[q]!r}: {first}"
                for q in ("size", "latency", "energy", "drop") if card[q] not in first]
        bad += [f"verdict lacks the card's {q} {card[q]!r}: {p.verdict}"
                for q in ("size", "latency", "drop") if card[q] not in p.verdict]
    for (view, name), row in p.tables.items():
        if view != "device" or name == recommended:
            continue
        said = [r for r in p.reasons if r.startswith(f"{name} (")]
        bad += [f"reason about {name} lacks its {q} {row[q]!r}" for r in said
                for q in ("size", "latency") if row[q] not in r]
    return bad

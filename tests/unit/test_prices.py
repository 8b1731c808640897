"""The GDMTH price table: loaded by month and division, refused with located errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from vatio.agent.metrics.prices import load_prices, parse_prices
from vatio.common.yamlconf import ConfigError, load_yaml_text

ROW = """\
  - month: {month}
    division: {division}
    energy_base: 1.1
    energy_intermedia: 1.9
    energy_punta: 2.2
    transmission: 0.1
    cenace: 0.01
    scnmem: 0.005
    fixed: 500
    capacity: 350
    distribution: {distribution}
    vat_pct: 16
    source: "hand-made"
"""


def table(*rows: tuple[str, str] | tuple[str, str, str]) -> str:
    out = "tariff: GDMTH\nrows:\n"
    for r in rows:
        month, division, *rest = r
        out += ROW.format(month=month, division=division, distribution=rest[0] if rest else 100)
    return out


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_prices(load_yaml_text(text, "p.yaml"))
    return [str(p) for p in info.value.problems]


def test_rows_are_selected_by_month_and_division():
    t = parse_prices(
        load_yaml_text(table(("2026-10", "a"), ("2026-11", "a"), ("2026-11", "b")), "p.yaml")
    )
    row = t.row("a", "2026-11")
    assert row is not None and row.month == "2026-11"
    assert row.energy_intermedia == Decimal("1.9")  # the file's text, not a binary float
    assert t.row("a", "2026-12") is None
    assert t.divisions == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            table(("2026-09", "a"), ("2026-11", "a")),
            "p.yaml:16: rows[1].month: division a has no prices for the 1 month(s) before 2026-11",
        ),
        (
            table(("2026-11", "a"), ("2026-11", "a")),
            "p.yaml:16: rows[1].month: 2026-11 is given twice for division a (also row 0)",
        ),
        (table(("2026-11", "a", "-1")), "p.yaml:13: rows[0].distribution:"),
        (table(("2026-11", "a")).replace("    cenace: 0.01\n", ""), "p.yaml:3: rows[0].cenace:"),
        (table(("2026-13", "a")), "p.yaml:3: rows[0].month: '2026-13' is not a month"),
        (table(("2026-11", "a")).replace('    source: "hand-made"\n', ""), "p.yaml:3: rows[0]:"),
    ],
)
def test_bad_tables_are_refused_with_file_line_row_and_field(text, expected):
    out = problems(text)
    assert len(out) == 1, out
    assert out[0].startswith(expected), out


def test_a_negative_price_says_why():
    (msg,) = problems(table(("2026-11", "a", "-1")))
    assert "greater than or equal to 0" in msg or ">= 0" in msg or "0 or more" in msg, msg


def test_the_shipped_table_loads_and_says_its_rows_are_examples():
    t = load_prices()
    assert t.tariff == "GDMTH"
    assert "valle-de-mexico-centro" in t.divisions
    for division in t.divisions:
        months = t.months(division)
        assert months == sorted(set(months))
    # no row of the shipped table could be sourced (see its header): each must say so
    assert all(r.example or r.source for r in t.rows)

"""GDMTH periods, from the schedule tables of domain.md §4.3 (cases name their row)."""

import datetime as dt

import pytest

from vatio.agent.metrics.tariff import holidays, is_summer, period_at

D = dt.datetime


@pytest.mark.parametrize(
    "moment,region,expected,why",
    [
        (D(2025, 4, 7, 20, 30), "SIN", "punta", "SIN verano Mon–Fri 20–22 punta"),
        (D(2025, 4, 7, 19, 59), "SIN", "intermedia", "SIN verano Mon–Fri 6–20 intermedia"),
        (D(2025, 4, 7, 5, 59), "SIN", "base", "SIN verano Mon–Fri 0–6 base"),
        (D(2025, 4, 7, 23, 0), "SIN", "intermedia", "SIN verano 22–24 intermedia (CFE page)"),
        (
            D(2025, 4, 5, 19, 30),
            "SIN",
            "punta",
            "2025-04-05 is the Saturday before summer: invierno Sat 19–21 punta",
        ),
        (D(2025, 4, 12, 19, 30), "SIN", "intermedia", "SIN verano Sat 7–24 intermedia"),
        (D(2025, 6, 1, 18, 59), "SIN", "base", "SIN verano Sun 0–19 base"),
        (
            D(2025, 10, 27, 19, 0),
            "SIN",
            "punta",
            "after the last Sunday of October: invierno Mon–Fri 18–22 punta",
        ),
        (D(2025, 9, 16, 20, 30), "SIN", "intermedia", "16 Sep is a holiday: counts as Sunday"),
        (
            D(2025, 11, 17, 19, 0),
            "SIN",
            "intermedia",
            "third Monday of November: holiday, invierno Sun 18–24 intermedia",
        ),
        (
            D(2025, 5, 1, 15, 0),
            "BC",
            "intermedia",
            "1 May is a holiday (Sunday rules, verano Sun all intermedia)",
        ),
        (D(2025, 5, 2, 15, 0), "BC", "punta", "BC verano Mon–Fri 14–18 punta"),
        (D(2025, 4, 30, 15, 0), "BC", "base", "BC summer starts 1 May: invierno Mon–Fri 0–17"),
        (D(2025, 7, 15, 12, 0), "BCS", "punta", "BCS verano Mon–Fri 12–22 punta"),
        (D(2025, 12, 3, 19, 0), "BCS", "intermedia", "BCS invierno Mon–Fri 18–22, no punta"),
    ],
)
def test_periods(moment, region, expected, why):
    assert period_at(moment, region) == expected, why


def test_season_edges_2025():
    assert not is_summer(dt.date(2025, 4, 5), "SIN")
    assert is_summer(dt.date(2025, 4, 6), "SIN")  # first Sunday of April
    assert is_summer(dt.date(2025, 10, 25), "SIN")  # Saturday before the last Sunday
    assert not is_summer(dt.date(2025, 10, 26), "SIN")
    assert not is_summer(dt.date(2025, 4, 30), "BC") and is_summer(dt.date(2025, 5, 1), "BC")


def test_holidays():
    h = holidays(2025)
    assert dt.date(2025, 2, 3) in h and dt.date(2025, 3, 17) in h  # Feb 1st Mon, Mar 3rd Mon
    assert dt.date(2024, 10, 1) in holidays(2024) and dt.date(2025, 10, 1) not in h


def test_an_extra_holiday_can_be_declared():
    moment = D(2025, 12, 12, 19, 0)  # a Friday, invierno punta
    assert period_at(moment) == "punta"
    assert period_at(moment, extra_holidays=[dt.date(2025, 12, 12)]) == "intermedia"

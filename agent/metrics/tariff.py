"""CFE GDMTH time-of-use periods (base, intermedia, punta) as data (domain.md §4.3).

Seasons: SIN and BCS summer runs from the first Sunday of April to the Saturday before the
last Sunday of October; BC summer from 1 May to that same Saturday. Holidays count as
Sundays (Ley Federal del Trabajo Art. 74, except fr. IX; extra days can be passed in).
Times are the site's local wall clock. The schedules are set yearly by the CRE: they are kept
here as plain tables so a new acuerdo is a data change, and the SIN 22:00–24:00 weekday
period (intermedia per CFE's page; the A/158/2024 PDF is ambiguous) is one place to edit.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from typing import Literal

Region = Literal["SIN", "BC", "BCS"]
Period = Literal["base", "intermedia", "punta"]
DayType = Literal["weekday", "saturday", "sunday"]

# (from hour, to hour, period) covering 0–24
Schedule = tuple[tuple[int, int, Period], ...]

SCHEDULES: dict[Region, dict[str, dict[DayType, Schedule]]] = {
    "SIN": {
        "summer": {
            "weekday": (
                (0, 6, "base"),
                (6, 20, "intermedia"),
                (20, 22, "punta"),
                (22, 24, "intermedia"),
            ),
            "saturday": ((0, 7, "base"), (7, 24, "intermedia")),
            "sunday": ((0, 19, "base"), (19, 24, "intermedia")),
        },
        "winter": {
            "weekday": (
                (0, 6, "base"),
                (6, 18, "intermedia"),
                (18, 22, "punta"),
                (22, 24, "intermedia"),
            ),
            "saturday": (
                (0, 8, "base"),
                (8, 19, "intermedia"),
                (19, 21, "punta"),
                (21, 24, "intermedia"),
            ),
            "sunday": ((0, 18, "base"), (18, 24, "intermedia")),
        },
    },
    "BC": {
        "summer": {
            "weekday": ((0, 14, "intermedia"), (14, 18, "punta"), (18, 24, "intermedia")),
            "saturday": ((0, 24, "intermedia"),),
            "sunday": ((0, 24, "intermedia"),),
        },
        "winter": {
            "weekday": ((0, 17, "base"), (17, 22, "intermedia"), (22, 24, "base")),
            "saturday": ((0, 18, "base"), (18, 21, "intermedia"), (21, 24, "base")),
            "sunday": ((0, 24, "base"),),
        },
    },
    "BCS": {
        "summer": {
            "weekday": ((0, 12, "intermedia"), (12, 22, "punta"), (22, 24, "intermedia")),
            "saturday": ((0, 19, "intermedia"), (19, 22, "punta"), (22, 24, "intermedia")),
            "sunday": ((0, 24, "intermedia"),),
        },
        "winter": {
            "weekday": ((0, 18, "base"), (18, 22, "intermedia"), (22, 24, "base")),
            "saturday": ((0, 18, "base"), (18, 21, "intermedia"), (21, 24, "base")),
            "sunday": ((0, 19, "base"), (19, 21, "intermedia"), (21, 24, "base")),
        },
    },
}


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th ``weekday`` (Mon=0) of a month; n=-1 for the last."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


@functools.lru_cache(maxsize=8)
def holidays(year: int) -> frozenset[dt.date]:
    """LFT Art. 74 rest days (fr. I–VIII; fr. IX, election days, excluded as CFE does)."""
    days = {
        dt.date(year, 1, 1),
        _nth_weekday(year, 2, 0, 1),  # Constitución: first Monday of February
        _nth_weekday(year, 3, 0, 3),  # Juárez: third Monday of March
        dt.date(year, 5, 1),
        dt.date(year, 9, 16),
        _nth_weekday(year, 11, 0, 3),  # Revolución: third Monday of November
        dt.date(year, 12, 25),
    }
    if (year - 2024) % 6 == 0:
        days.add(dt.date(year, 10, 1))  # transmisión del Poder Ejecutivo Federal
    return frozenset(days)


@functools.lru_cache(maxsize=8)
def _summer(year: int, region: Region) -> tuple[dt.date, dt.date]:
    start = dt.date(year, 5, 1) if region == "BC" else _nth_weekday(year, 4, 6, 1)
    end = _nth_weekday(year, 10, 6, -1) - dt.timedelta(days=1)  # Saturday before
    return start, end


def is_summer(day: dt.date, region: Region) -> bool:
    start, end = _summer(day.year, region)
    return start <= day <= end


def day_type(day: dt.date, extra_holidays: Iterable[dt.date] = ()) -> DayType:
    if day in holidays(day.year) or day in set(extra_holidays) or day.weekday() == 6:
        return "sunday"
    return "saturday" if day.weekday() == 5 else "weekday"


def period_at(
    moment: dt.datetime, region: Region = "SIN", extra_holidays: Iterable[dt.date] = ()
) -> Period:
    """The GDMTH period of a local wall-clock time."""
    season = "summer" if is_summer(moment.date(), region) else "winter"
    hour = moment.hour + moment.minute / 60 + moment.second / 3600
    for start, end, period in SCHEDULES[region][season][day_type(moment.date(), extra_holidays)]:
        if start <= hour < end:
            return period
    raise AssertionError("schedules cover 0-24 h")  # pragma: no cover

"""US EPA Air Quality Index for particles, and the NowCast (domain.md §1).

Rules (EPA-454/B-24-002 as quoted by AirNow, see domain.md §1.4–1.5):

* concentrations are **truncated** before the index: PM2.5 to 0.1 µg/m³, PM10 to 1 µg/m³;
* the index is linear within a band and **rounded half-up** to an integer (Decimal, so 0.5
  cases are exact);
* above the top breakpoint (PM2.5 > 325.4, PM10 > 604) the value is "Beyond the AQI". We
  extrapolate the last band, as 40 CFR 58 App. G §12(ii) allows, and flag it
  (``beyond_scale``), so an operator sees both how bad it is and that it is off the scale;
* NowCast: the last 12 hourly means, weight w = min/max floored at 0.5, valid only with 2 of
  the 3 most recent hours; missing hours drop out but keep their exponent; the result is
  truncated like a concentration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Literal

Pollutant = Literal["pm2_5", "pm10"]

# (C_lo, C_hi, I_lo, I_hi); PM2.5 since 2024-05-06, PM10 unchanged since 2012 (domain.md §1.3)
BREAKPOINTS: dict[str, list[tuple[str, str, int, int]]] = {
    "pm2_5": [("0.0", "9.0", 0, 50), ("9.1", "35.4", 51, 100), ("35.5", "55.4", 101, 150),
              ("55.5", "125.4", 151, 200), ("125.5", "225.4", 201, 300),
              ("225.5", "325.4", 301, 500)],
    "pm2_5_legacy": [("0.0", "12.0", 0, 50), ("12.1", "35.4", 51, 100),
                     ("35.5", "55.4", 101, 150), ("55.5", "150.4", 151, 200),
                     ("150.5", "250.4", 201, 300), ("250.5", "350.4", 301, 400),
                     ("350.5", "500.4", 401, 500)],
    "pm10": [("0", "54", 0, 50), ("55", "154", 51, 100), ("155", "254", 101, 150),
             ("255", "354", 151, 200), ("355", "424", 201, 300), ("425", "604", 301, 500)],
}  # fmt: skip

TRUNCATE = {"pm2_5": Decimal("0.1"), "pm2_5_legacy": Decimal("0.1"), "pm10": Decimal("1")}

CATEGORIES = [
    (50, "Good", "#00E400"),
    (100, "Moderate", "#FFFF00"),
    (150, "Unhealthy for Sensitive Groups", "#FF7E00"),
    (200, "Unhealthy", "#FF0000"),
    (300, "Very Unhealthy", "#8F3F97"),
    (500, "Hazardous", "#7E0023"),
]  # colours UNCONFIRMED (domain.md §1.2): keep them presentation-only


@dataclass(frozen=True)
class Aqi:
    value: int
    category: str
    colour: str
    concentration: Decimal  # the truncated concentration the index was computed from
    beyond_scale: bool = False


def truncate(concentration: float, pollutant: str) -> Decimal:
    return Decimal(str(concentration)).quantize(TRUNCATE[pollutant], rounding=ROUND_DOWN)


def aqi(concentration: float, pollutant: str = "pm2_5") -> Aqi:
    """The AQI of a (24-hour or NowCast) concentration in µg/m³."""
    if concentration < 0:
        raise ValueError("a concentration cannot be negative")
    c = truncate(concentration, pollutant)
    table = BREAKPOINTS[pollutant]
    # truncation leaves no value between two bands (9.0 | 9.1); past the top, extrapolate
    lo, hi, i_lo, i_hi = next((band for band in table if c <= Decimal(band[1])), table[-1])
    c_lo, c_hi = Decimal(lo), Decimal(hi)
    beyond = c > Decimal(table[-1][1])
    index = (Decimal(i_hi - i_lo) / (c_hi - c_lo)) * (c - c_lo) + i_lo
    value = int(index.quantize(Decimal("1"), rounding=ROUND_HALF_UP))
    category, colour = next(((n, col) for top, n, col in CATEGORIES if value <= top),
                            CATEGORIES[-1][1:])  # fmt: skip
    return Aqi(value, category, colour, c, beyond)


def nowcast(hourly: Sequence[float | None], pollutant: str = "pm2_5") -> Decimal | None:
    """NowCast from hourly means, **newest first** (``hourly[0]`` is the current hour).

    Returns None when fewer than 2 of the 3 most recent hours are valid.
    """
    hours = list(hourly[:12])
    if sum(v is not None for v in hours[:3]) < 2:
        return None
    valid = [v for v in hours if v is not None]
    c_max, c_min = max(valid), min(valid)
    w = 1.0 if c_max == 0 else max(c_min / c_max, 0.5)
    num = sum(v * w**i for i, v in enumerate(hours) if v is not None)
    den = sum(w**i for i, v in enumerate(hours) if v is not None)
    return truncate(num / den, pollutant)

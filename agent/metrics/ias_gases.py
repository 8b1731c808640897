"""Mexico's Índice AIRE Y SALUD for the gases of NOM-172-SEMARNAT-2023: O3, NO2, SO2, CO.

Indicators, bands and rounding follow domain.md §2.3–2.4 (the NOM text itself was not
readable; the tables come from monitoring networks' code, see there):

============  ===========================  ==========  =========================================
indicator     averaging                    rounding    bands (ppm, upper-inclusive, levels 1–4)
============  ===========================  ==========  =========================================
``o3_1h``     mean of the last full hour   3 dec.      0.058 / 0.090 / 0.135 / 0.175 ("Tabla 6")
``o3_8h``     8-h moving mean, ≥ 6 of 8 h  3 dec.      0.051 / 0.070 / 0.092 / 0.114 (2019 NOM)
``no2_1h``    mean of the last full hour   3 dec.      0.053 / 0.106 / 0.160 / 0.213
``so2_1h``    mean of the last full hour   3 dec.      0.035 / 0.075 / 0.185 / 0.304
``co_8h``     8-h moving mean, ≥ 6 of 8 h  2 dec.      5.00 / 9.00 / 12.00 / 16.00
============  ===========================  ==========  =========================================

Above the last bound is level 5 (Extremadamente Mala). Values are rounded **half-up**
(Decimal) to the decimals above *before* the band is looked up, so 0.0585 ppm O3 → 0.059 →
Aceptable, and 0.0584 → 0.058 → Buena.

Decisions where domain.md says UNCONFIRMED or is silent:

* **O3 8 h in the 2023 NOM: UNCONFIRMED.** domain.md lists no 8-h O3 bands for 2023 and says
  2023 implementations use the 1-h value as the indicator. So ``o3_8h`` is always published
  as a concentration and as its own level (``ias_mx_o3_8h``, 2019 bands, whose last bound
  0.114 is itself "public code only"), but it takes part in the overall ``ias_mx`` only in
  stage ``2019``, where the NOM reported both; in stages ``2024``/``2026`` only ``o3_1h``
  does.
* O3 8 h validity: domain.md gives "≥ 6 of 8 hours" for CO only; the same rule is used for
  the O3 8-h mean (75 %, like the daily PM rule).
* Stage ``2019`` O3 1-h bands are the 2019 ones (0.051 / 0.095 / 0.135 / 0.175); domain.md
  has no 2019 bands for NO2, SO2 or CO, so the 2023 bands serve every stage for those.
* An hour is valid when it holds at least one reading, as for PM (air.py); the hourly value
  is the mean of that hour's readings.
* Analyzers report O3, NO2 and SO2 in ppb and CO in ppm (what Vaisala's AQT530 and most
  reference analyzers output); ppb → ppm divides by 1000 exactly (Decimal).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from vatio.agent.metrics.ias_mx import LEVELS, Ias, Stage

Indicator = Literal["o3_1h", "o3_8h", "no2_1h", "so2_1h", "co_8h"]

_D = Decimal
BANDS: dict[str, tuple[Decimal, Decimal, Decimal, Decimal]] = {
    "o3_1h": (_D("0.058"), _D("0.090"), _D("0.135"), _D("0.175")),
    "o3_1h_2019": (_D("0.051"), _D("0.095"), _D("0.135"), _D("0.175")),
    "o3_8h": (_D("0.051"), _D("0.070"), _D("0.092"), _D("0.114")),
    "no2_1h": (_D("0.053"), _D("0.106"), _D("0.160"), _D("0.213")),
    "so2_1h": (_D("0.035"), _D("0.075"), _D("0.185"), _D("0.304")),
    "co_8h": (_D("5.00"), _D("9.00"), _D("12.00"), _D("16.00")),
}
DECIMALS: dict[str, int] = {"o3_1h": 3, "o3_8h": 3, "no2_1h": 3, "so2_1h": 3, "co_8h": 2}
# the hourly quantity each indicator averages, and its factor to ppm
SOURCES: dict[str, tuple[str, Decimal]] = {
    "o3": ("o3_ppb", Decimal("0.001")),
    "no2": ("no2_ppb", Decimal("0.001")),
    "so2": ("so2_ppb", Decimal("0.001")),
    "co": ("co_ppm", Decimal(1)),
}
# indicator → (gas, hours averaged, valid hours needed)
AVERAGING: dict[str, tuple[str, int, int]] = {
    "o3_1h": ("o3", 1, 1),
    "o3_8h": ("o3", 8, 6),
    "no2_1h": ("no2", 1, 1),
    "so2_1h": ("so2", 1, 1),
    "co_8h": ("co", 8, 6),
}


def round_half_up(value: Decimal | float, decimals: int) -> Decimal:
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def moving_mean(
    hourly: Sequence[float | None], hours: int, min_valid: int
) -> tuple[float | None, int]:
    """Mean of the ``hours`` newest hourly values (newest first) and how many were valid;
    the mean is None with fewer than ``min_valid`` valid hours."""
    window = [v for v in hourly[:hours] if v is not None]
    if len(window) < min_valid:
        return None, len(window)
    return sum(window) / len(window), len(window)


def indicator_ppm(
    indicator: str, hourly: Sequence[float | None]
) -> tuple[Decimal | None, int, int]:
    """The indicator's rounded value in ppm from the gas's hourly means in its analyzer unit
    (newest complete hour first), with (valid hours, hours needed)."""
    gas, hours, need = AVERAGING[indicator]
    mean, valid = moving_mean(hourly, hours, need)
    if mean is None:
        return None, valid, need
    return round_half_up(Decimal(str(mean)) * SOURCES[gas][1], DECIMALS[indicator]), valid, need


def gas_ias(indicator: str, ppm: Decimal | float, stage: Stage = "2026") -> Ias:
    """The IAS level of a gas indicator (rounded half-up first, then looked up)."""
    c = round_half_up(ppm, DECIMALS[indicator])
    key = "o3_1h_2019" if indicator == "o3_1h" and stage == "2019" else indicator
    level = next((i + 1 for i, top in enumerate(BANDS[key]) if c <= top), 5)
    _, category, colour_name, colour, risk = LEVELS[level - 1]
    return Ias(level, category, colour_name, colour, risk, c)


def in_overall(indicator: str, stage: Stage) -> bool:
    """Whether an indicator's level takes part in the overall IAS (O3 8 h: stage 2019 only)."""
    return indicator != "o3_8h" or stage == "2019"

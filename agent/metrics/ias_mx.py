"""Mexico's Índice AIRE Y SALUD (NOM-172-SEMARNAT), for PM10 and PM2.5 (domain.md §2); the
gases (O3, NO2, SO2, CO) are in :mod:`vatio.agent.metrics.ias_gases`.

* Stages: ``2019`` (NOM-172-SEMARNAT-2019, for history), ``2024`` and ``2026`` (the two
  phases of NOM-172-SEMARNAT-2023; the 2026 bands apply from 1 Jan 2026).
* Bands are upper-inclusive on the concentration rounded to an integer (half-up).
* Indicator: a 12-hour weighted moving average, as implemented by the monitoring networks
  (the NOM text itself was not readable, domain.md §2.4): W = 1 − (Cmax − Cmin)/Cmax rounded
  to 2 decimals, at least 0.5; valid with at least 2 of the 3 most recent hours; the mean is
  rounded to an integer, half-up.
* The disputed "FA" factor (0.714 / 0.694 in two Jalisco implementations) is NOT applied by
  default: ``adjustment`` lets a site apply one once Anexo A is confirmed.
* Colours are UNCONFIRMED (domain.md §2.2): presentation only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Stage = Literal["2019", "2024", "2026"]

LEVELS = [
    (1, "Buena", "Verde", "#9ACA3C", "Bajo"),
    (2, "Aceptable", "Amarillo", "#F7EC0F", "Moderado"),
    (3, "Mala", "Naranja", "#F8991D", "Alto"),
    (4, "Muy Mala", "Rojo", "#ED2124", "Muy alto"),
    (5, "Extremadamente Mala", "Morado", "#7D287D", "Extremadamente alto"),
]

# upper bounds (µg/m³) of levels 1–4; above the last is level 5
BANDS: dict[Stage, dict[str, tuple[int, int, int, int]]] = {
    "2019": {"pm10": (50, 75, 155, 235), "pm2_5": (25, 45, 79, 147)},
    "2024": {"pm10": (45, 60, 132, 213), "pm2_5": (15, 33, 79, 130)},
    "2026": {"pm10": (45, 50, 132, 213), "pm2_5": (15, 25, 79, 130)},
}


@dataclass(frozen=True)
class Ias:
    level: int
    category: str
    colour_name: str
    colour: str
    risk: str
    concentration: int | Decimal  # PM: integer µg/m³; gases: ppm (ias_gases.py)


def _round(x: Decimal | float) -> int:
    return int(Decimal(str(x)).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def ias(concentration: float, pollutant: str = "pm2_5", stage: Stage = "2026") -> Ias:
    c = _round(concentration)
    uppers = BANDS[stage][pollutant]
    level = next((i + 1 for i, top in enumerate(uppers) if c <= top), 5)
    _, category, colour_name, colour, risk = LEVELS[level - 1]
    return Ias(level, category, colour_name, colour, risk, c)


def weighted_12h(hourly: Sequence[float | None], adjustment: float | None = None) -> int | None:
    """The NOM-172 12-hour weighted mean, newest hour first; None if not valid."""
    hours = list(hourly[:12])
    if sum(v is not None for v in hours[:3]) < 2:
        return None
    valid = [Decimal(str(v)) for v in hours if v is not None]
    c_max, c_min = max(valid), min(valid)
    w = Decimal(1) if c_max == 0 else 1 - (c_max - c_min) / c_max
    w = max(w.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), Decimal("0.5"))
    num = sum((Decimal(str(v)) * w**i for i, v in enumerate(hours) if v is not None), Decimal(0))
    den = sum((w**i for i, v in enumerate(hours) if v is not None), Decimal(0))
    mean = num / den
    if adjustment is not None:
        mean *= Decimal(str(adjustment))
    return _round(mean)

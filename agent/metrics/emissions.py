"""Grid emission factors as a dated table: the latest published factor applies until the
next one (domain.md §3.1). tCO2e/MWh equals kgCO2e/kWh."""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class Factor:
    year: int  # the data year the factor describes
    kg_per_kwh: float
    source: str
    confirmed: bool = True


MEXICO_SEN = [
    Factor(2018, 0.527, "CFE-bill app doc, year attribution weak", confirmed=False),
    Factor(2019, 0.505, "constants in public code only", confirmed=False),
    Factor(2020, 0.494, "SEMARNAT aviso FE SEN 2020 (as reported by factorenergetico.mx)"),
    Factor(2021, 0.423, "SEMARNAT aviso FE SEN 2021, 28 Feb 2022"),
    Factor(2022, 0.435, "SEMARNAT/RENE notice published 2023 (as cited in code)"),
    Factor(2023, 0.438, "RENE factor for the 2023 report (as cited in code)"),
    Factor(2024, 0.444, "aviso FE SEN 2024, 28 Feb 2025 (as cited in code)"),
]


def factor_for(year: int, table: list[Factor] = MEXICO_SEN) -> Factor:
    """The factor in force for ``year``: that year's, or the latest before it."""
    years = [f.year for f in table]
    i = bisect.bisect_right(years, year) - 1
    if i < 0:
        raise ValueError(f"no emission factor published for {year} or earlier")
    return table[i]


def kg_co2e(kwh: float, year: int, table: list[Factor] = MEXICO_SEN) -> float:
    return kwh * factor_for(year, table).kg_per_kwh

"""GDMTH tariff prices as data: a dated table, one row per month and CFE division.

The table is a YAML file (the shipped one is ``configs/tariffs/gdmth.yaml``; a site may name
its own under ``bill.prices``)::

    tariff: GDMTH
    currency: MXN
    rows:
      - month: 2026-11
        division: valle-de-mexico-centro
        energy_base: 1.4561          # $/kWh, by tariff period (domain.md §4.2)
        energy_intermedia: 2.2402
        energy_punta: 2.6713
        transmission: 0.1020         # $/kWh on all energy
        cenace: 0.0089               # $/kWh
        scnmem: 0.0052               # $/kWh (servicios conexos no MEM)
        fixed: 570.00                # $/month, operación del Suministrador Básico
        capacity: 359.00             # $/kW-month
        distribution: 93.50          # $/kW-month
        vat_pct: 16
        source: "CFE, Tarifa GDMTH, https://app.cfe.mx/…/GranDemandaMTH.aspx, read 2026-11-03"
        example: false

A row without a source must say ``example: true``; the bill shows that its amounts are
examples. The loader refuses, each with file, line, row and field: a missing field, a
negative price, a month given twice for one division (overlap), and a month missing between
two of one division's rows (a gap: last month's bill must use last month's prices, never a
neighbour's). Prices are :class:`~decimal.Decimal`, read from the YAML text, so 2.2402 is
2.2402 and not its nearest binary float.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from vatio.common.yamlconf import (
    ConfigError,
    Problem,
    YamlDocument,
    load_yaml_file,
    load_yaml_text,
    validation_problems,
)

PRICE_FIELDS = (
    "energy_base",
    "energy_intermedia",
    "energy_punta",
    "transmission",
    "cenace",
    "scnmem",
    "fixed",
    "capacity",
    "distribution",
    "vat_pct",
)


def _decimal(value: Any) -> Any:
    # YAML gives floats: go through their shortest repr, which is the text the file holds
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, bool):
        raise ValueError("expected a price, not true/false")
    return value


Price = Annotated[Decimal, BeforeValidator(_decimal), Field(ge=0, allow_inf_nan=False)]


def _month(value: Any) -> Any:
    # PyYAML reads 2026-11 as a string but 2026-11-01 as a date: accept both
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m")
    if isinstance(value, str):
        try:
            dt.datetime.strptime(value, "%Y-%m")
        except ValueError:
            msg = f"'{value}' is not a month: write it as YYYY-MM, e.g. 2026-11"
            raise ValueError(msg) from None
        return value
    raise ValueError("expected a month written as YYYY-MM, e.g. 2026-11")


Month = Annotated[str, BeforeValidator(_month)]


class PriceRow(BaseModel):
    """One month's GDMTH prices in one division."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    month: Month
    division: str = Field(min_length=1)
    energy_base: Price
    energy_intermedia: Price
    energy_punta: Price
    transmission: Price
    cenace: Price
    scnmem: Price
    fixed: Price
    capacity: Price
    distribution: Price
    vat_pct: Price = Field(le=100)
    source: str = ""
    example: bool = False

    @model_validator(mode="after")
    def _sourced(self) -> PriceRow:
        if not self.source.strip() and not self.example:
            raise ValueError(
                "a row needs its source (the CFE page or DOF acuerdo, its URL and the date "
                "you read it) or example: true"
            )
        return self


class _PriceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tariff: str = "GDMTH"
    currency: str = "MXN"
    rows: list[PriceRow] = Field(min_length=1)


def month_index(month: str) -> int:
    year, m = month.split("-")
    return int(year) * 12 + int(m) - 1


@dataclass(frozen=True)
class PriceTable:
    tariff: str
    file: str
    rows: tuple[PriceRow, ...]

    def row(self, division: str, month: str) -> PriceRow | None:
        """The prices in force in ``month`` (YYYY-MM) for ``division``; None if not in the table."""
        for r in self.rows:
            if r.division == division and r.month == month:
                return r
        return None

    @property
    def divisions(self) -> list[str]:
        return sorted({r.division for r in self.rows})

    def months(self, division: str) -> list[str]:
        return sorted(r.month for r in self.rows if r.division == division)


def parse_prices(doc: YamlDocument) -> PriceTable:
    """Validate a price file; raises :class:`ConfigError` listing every located problem."""
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "expected a mapping with tariff, currency and rows")])
    try:
        parsed = _PriceFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, doc, _PriceFile)) from None
    problems: list[Problem] = []
    seen: dict[tuple[str, str], int] = {}
    by_division: dict[str, list[tuple[int, int]]] = {}
    for i, r in enumerate(parsed.rows):
        key = (r.division, r.month)
        if key in seen:
            problems.append(
                doc.problem(
                    ("rows", i, "month"),
                    f"{r.month} is given twice for division {r.division} (also row {seen[key]}):"
                    " keep one row per month and division",
                )
            )
            continue
        seen[key] = i
        by_division.setdefault(r.division, []).append((month_index(r.month), i))
    for division, months in by_division.items():
        months.sort()
        for (a, _), (b, i) in itertools.pairwise(months):
            if b - a > 1:
                problems.append(
                    doc.problem(
                        ("rows", i, "month"),
                        f"division {division} has no prices for the {b - a - 1} month(s) before "
                        f"{parsed.rows[i].month}: add the missing rows (example: true if you "
                        "cannot source them)",
                    )
                )
    if problems:
        raise ConfigError(problems)
    return PriceTable(parsed.tariff, doc.file, tuple(parsed.rows))


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The shipped GDMTH table, or the file at ``path``."""
    if path is None:
        text = (
            resources.files("vatio")
            .joinpath("configs/tariffs/gdmth.yaml")
            .read_text(encoding="utf-8")
        )
        return parse_prices(load_yaml_text(text, "configs/tariffs/gdmth.yaml"))
    return parse_prices(load_yaml_file(Path(path)))

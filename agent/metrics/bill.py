"""The GDMTH bill as pure rules: usage and a month's prices in, the bill's lines out.

Each rule cites where it comes from (domain.md §4.2 and §4.4, and the sources named there):

* energy: kWh of each tariff period × that period's price (§4.2);
* transmission, CENACE and SCnMEM: all kWh × their $/kWh (§4.2);
* the fixed "operación del Suministrador Básico" charge, once per billing period (§4.2);
* umbral = kWh / (days × 24 × FC), FC = 0.57 for GDMTH (§4.2, A/158/2024 Table 2 §3.1.2);
* **capacidad** on ``min(D_punta, umbral)``; in a billing period without any punta hour
  (BC and BCS winter) the umbral alone (§4.2);
* **distribución** on ``min(max(D_base, D_intermedia, D_punta), umbral)`` (§4.2; the wiki's
  note from 12 real bills: the period demands, not the printed KWMax register);
* the power-factor surcharge or credit (§4.4, :func:`vatio.agent.metrics.power_factor.cfe_charge`)
  on a base that is a setting, because §4.4 calls the base UNCONFIRMED: ``supply`` (default:
  every line above: energy, transmission, CENACE, SCnMEM, fixed charge, capacity and
  distribution; sunwise's worked bill applies it to the fixed charge and energy) or
  ``energy_demand`` (energy + capacity + distribution: the Cidec code);
* VAT on the subtotal after the power-factor line (the rate is a column of the price table).

Rounding, as we assume the bill rounds (UNCONFIRMED, documented in the README): energies are
shown and billed in whole kWh and kVArh (half up), each period's demand is its 15-minute peak
with any fraction of a kW rounded up (§4.1, GDMTH §7.3), the umbral is kept to 0.01 kW (half
up), every line's amount is rounded to the centavo (half up) and the totals add the rounded
lines. All in :class:`~decimal.Decimal`.

A billing period longer than 35 days is refused (:class:`BillingPeriodError`): CFE bills GDMTH
monthly (§4.1), and a longer period would spread the umbral over days no bill covers.

**Net metering** (:func:`net_energy`): the scheme is a setting. ``none``: exported energy is
not credited (the bill counts imports only). ``medicion_neta``: CRE's *medición neta* for
distributed generation (DACG de generación distribuida, DOF 2017-03-07; as reported by
eldiariodechihuahua.mx, 2019-12-06, for the collective scheme: surplus energy "la podrá
acumular hasta por 12 meses"): within each billing period the energy delivered offsets the
energy received; a surplus becomes a credit in kWh that offsets later periods' energy, oldest
first, and lapses after 12 billing periods. We assume — the DACG text was not read — that the
netting is done **per tariff period** (a punta kWh delivered offsets a punta kWh received),
that demand is billed on the measured import, not netted, that the umbral (and so capacity
and distribution) uses the billed (net) kWh, and that the power factor uses the measured
import's kWh and kVArh. *Facturación neta* (net billing) is not implemented.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from vatio.agent.metrics.power_factor import cfe_charge
from vatio.agent.metrics.prices import PriceRow

PERIODS = ("base", "intermedia", "punta")
FC_GDMTH = Decimal("0.57")  # domain.md §4.2 (A/158/2024 Table 2 §3.1.2, per the wiki)
MAX_PERIOD_DAYS = 35
CREDIT_LIFE_PERIODS = 12  # medición neta: a surplus is kept up to 12 months (module doc)
CENT = Decimal("0.01")
PfBase = Literal["supply", "energy_demand"]
NetMetering = Literal["none", "medicion_neta"]


class BillingPeriodError(ValueError):
    """A billing period the bill cannot be computed for (empty, or longer than 35 days)."""


def billing_days(start: dt.date, end: dt.date) -> int:
    """Days of the billing period [start, end); refused beyond 35 (module docstring)."""
    days = (end - start).days
    if days <= 0:
        raise BillingPeriodError(f"the billing period {start}…{end} is empty")
    if days > MAX_PERIOD_DAYS:
        raise BillingPeriodError(
            f"the billing period {start}…{end} is {days} days: GDMTH is billed monthly, "
            f"{MAX_PERIOD_DAYS} days at most"
        )
    return days


def whole(x: Decimal) -> Decimal:
    return x.quantize(Decimal(1), rounding=ROUND_HALF_UP)


def cents(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def billed_demand_kw(peak_kw: float) -> Decimal:
    """A 15-minute peak with any fraction of a kW rounded up (domain.md §4.1)."""
    return Decimal(math.ceil(round(peak_kw, 9)))


def umbral_kw(kwh: Decimal, days: int, fc: Decimal = FC_GDMTH) -> Decimal:
    """kWh / (days × 24 × FC), to 0.01 kW (domain.md §4.2 and §6: 100 000 kWh, 30 d → 243.66)."""
    return (kwh / (days * 24 * fc)).quantize(CENT, rounding=ROUND_HALF_UP)


def capacity_kw(demand_punta: Decimal, umbral: Decimal, has_punta: bool) -> Decimal:
    """Capacidad's kW: min(D_punta, umbral); the umbral alone without punta hours (§4.2)."""
    return min(demand_punta, umbral) if has_punta else umbral


def distribution_kw(demands: Mapping[str, Decimal], umbral: Decimal) -> Decimal:
    """Distribución's kW: min(max of the period demands, umbral) (§4.2)."""
    return min(max(demands[p] for p in PERIODS), umbral)


@dataclass(frozen=True)
class Usage:
    """What the grid meter measured in a billing period (or so far)."""

    start: dt.date
    end: dt.date  # exclusive
    kwh: Mapping[str, float]  # billed energy by tariff period (after net metering)
    kvarh: float
    peak_kw: Mapping[str, float]  # highest 15-minute block by tariff period
    has_punta: bool  # whether the period's calendar has any punta hour
    pf_kwh: float | None = None  # active energy for the power factor (default: sum of kwh)


@dataclass(frozen=True)
class Line:
    key: str  # energy_base, …, vat
    label: str  # as the paper bill says it
    quantity: Decimal | None
    unit: str
    price: Decimal | None
    amount: Decimal | None  # None: no prices for the month

    def as_dict(self) -> dict[str, Any]:
        def num(x: Decimal | None) -> float | None:
            return None if x is None else float(x)

        return {
            "key": self.key,
            "label": self.label,
            "quantity": num(self.quantity),
            "unit": self.unit,
            "price": num(self.price),
            "amount": num(self.amount),
        }


@dataclass(frozen=True)
class Bill:
    start: dt.date
    end: dt.date
    days: int
    lines: tuple[Line, ...]
    subtotal: Decimal | None
    total: Decimal | None
    prices_month: str | None  # the month whose prices were used
    flags: tuple[str, ...] = ()  # "no_prices", "example_prices"

    def line(self, key: str) -> Line:
        for x in self.lines:
            if x.key == key:
                return x
        raise KeyError(key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
            "lines": [x.as_dict() for x in self.lines],
            "subtotal": None if self.subtotal is None else float(self.subtotal),
            "total": None if self.total is None else float(self.total),
            "prices_month": self.prices_month,
            "flags": list(self.flags),
        }


LABELS = {
    "energy_base": "Energía base",
    "energy_intermedia": "Energía intermedia",
    "energy_punta": "Energía punta",
    "transmission": "Transmisión",
    "cenace": "Operación CENACE",
    "scnmem": "Servicios conexos no MEM",
    "fixed": "Suministro (cargo fijo)",
    "capacity": "Capacidad",
    "distribution": "Distribución",
    "power_factor": "Factor de potencia",
    "vat": "IVA",
}


def compute_bill(
    usage: Usage,
    prices: PriceRow | None,
    pf_threshold_pct: float = 90.0,
    pf_decimals: int | None = 1,
    pf_max_surcharge_pct: float | None = 120.0,
    pf_base: PfBase = "supply",
) -> Bill:
    """The bill's lines for ``usage`` at ``prices`` (None: quantities only, flagged)."""
    days = billing_days(usage.start, usage.end)
    kwh = {p: whole(Decimal(repr(usage.kwh[p]))) for p in PERIODS}
    total_kwh = sum(kwh.values(), Decimal(0))
    demands = {p: billed_demand_kw(usage.peak_kw[p]) for p in PERIODS}
    umbral = umbral_kw(total_kwh, days)
    cap_kw = capacity_kw(demands["punta"], umbral, usage.has_punta)
    dist_kw = distribution_kw(demands, umbral)

    def price(name: str) -> Decimal | None:
        return None if prices is None else Decimal(getattr(prices, name))

    def line(key: str, qty: Decimal, unit: str, price_name: str) -> Line:
        p = price(price_name)
        return Line(key, LABELS[key], qty, unit, p, None if p is None else cents(qty * p))

    lines = [line(f"energy_{p}", kwh[p], "kWh", f"energy_{p}") for p in PERIODS]
    lines += [line(k, total_kwh, "kWh", k) for k in ("transmission", "cenace", "scnmem")]
    lines.append(line("fixed", Decimal(1), "mes", "fixed"))
    lines.append(line("capacity", cap_kw, "kW", "capacity"))
    lines.append(line("distribution", dist_kw, "kW", "distribution"))

    # the power factor of the period's energies (domain.md §4.4); undefined without energy
    pf_pct: Decimal | None = None
    pct = Decimal(0)
    pf_kwh = sum(usage.kwh.values()) if usage.pf_kwh is None else usage.pf_kwh
    if pf_kwh > 0 and usage.kvarh >= 0:
        charge = cfe_charge(
            pf_kwh,
            usage.kvarh,
            pf_threshold_pct,
            decimals=pf_decimals,
            max_surcharge_pct=pf_max_surcharge_pct,
        )
        pf_pct = charge.power_factor_pct
        pct = charge.surcharge_pct if charge.surcharge_pct > 0 else -charge.bonus_pct
    base_keys = (
        [x.key for x in lines]
        if pf_base == "supply"
        else [*(f"energy_{p}" for p in PERIODS), "capacity", "distribution"]
    )
    flags: list[str] = []
    if prices is None:
        lines.append(Line("power_factor", LABELS["power_factor"], pf_pct, "% FP", pct, None))
        lines.append(Line("vat", LABELS["vat"], None, "%", None, None))
        flags.append("no_prices")
        return Bill(usage.start, usage.end, days, tuple(lines), None, None, None, tuple(flags))
    supply = sum((x.amount for x in lines if x.amount is not None), Decimal(0))
    base = sum((x.amount for x in lines if x.key in base_keys and x.amount), Decimal(0))
    pf_amount = cents(base * pct / 100)
    # quantity: the power factor (%); price: the surcharge (+) or credit (−) in %
    lines.append(Line("power_factor", LABELS["power_factor"], pf_pct, "% FP", pct, pf_amount))
    subtotal = supply + pf_amount
    vat_rate = Decimal(prices.vat_pct)
    vat = cents(subtotal * vat_rate / 100)
    lines.append(Line("vat", LABELS["vat"], subtotal, "MXN", vat_rate, vat))
    if prices.example:
        flags.append("example_prices")
    return Bill(
        usage.start,
        usage.end,
        days,
        tuple(lines),
        subtotal,
        subtotal + vat,
        prices.month,
        tuple(flags),
    )


def project(usage: Usage, now: dt.datetime, day_start: dt.datetime) -> Usage:
    """The period's usage at its end at the current pace: energies scaled by the period's
    length over the time elapsed; demands as measured so far (a peak does not average down;
    a later, higher peak cannot be foreseen). ``day_start``: the period's start as a local
    datetime; ``now`` local too."""
    length = (usage.end - usage.start).days * 86400.0
    elapsed = (now - day_start).total_seconds()
    if elapsed <= 0:
        return usage
    k = max(length / elapsed, 1.0)
    return replace(
        usage,
        kwh={p: v * k for p, v in usage.kwh.items()},
        kvarh=usage.kvarh * k,
        pf_kwh=None if usage.pf_kwh is None else usage.pf_kwh * k,
    )


@dataclass
class Credit:
    """kWh delivered beyond what was received, by tariff period, earned in a billing period."""

    period: str  # the billing period it was earned in (its start, ISO)
    kwh: dict[str, float] = field(default_factory=dict)


def net_energy(
    imported: Mapping[str, float],
    exported: Mapping[str, float],
    credits: list[Credit],
    scheme: NetMetering,
) -> tuple[dict[str, float], list[Credit], dict[str, float]]:
    """Billed energy by tariff period under ``scheme``: (billed, the older credits left
    after this period's use of them, this period's surplus). Pure: ``credits`` is not
    changed; at the period's close the caller keeps the credits left plus the surplus.

    ``medicion_neta`` (module docstring): per tariff period, net = import − export; a
    surplus is this period's credit; a deficit is reduced by older credits of the same
    tariff period, oldest first. ``none``: billed = imported, no credit."""
    if scheme == "none":
        kept = [Credit(c.period, dict(c.kwh)) for c in credits]
        return {p: imported.get(p, 0.0) for p in PERIODS}, kept, dict.fromkeys(PERIODS, 0.0)
    left = [Credit(c.period, dict(c.kwh)) for c in credits]
    billed: dict[str, float] = {}
    surplus = dict.fromkeys(PERIODS, 0.0)
    for p in PERIODS:
        net = imported.get(p, 0.0) - exported.get(p, 0.0)
        if net < 0:
            surplus[p], net = -net, 0.0
        for c in left:
            take = min(net, c.kwh.get(p, 0.0))
            if take > 0:
                c.kwh[p] -= take
                net -= take
        billed[p] = net
    left = [c for c in left if any(v > 1e-9 for v in c.kwh.values())]
    return billed, left, surplus


def expire_credits(credits: list[Credit], closed_periods: list[str]) -> list[Credit]:
    """Credits still alive after a period closed: those earned within the last
    :data:`CREDIT_LIFE_PERIODS` billing periods (``closed_periods``: the starts of every
    period closed so far, oldest first)."""
    alive = set(closed_periods[-CREDIT_LIFE_PERIODS:])
    return [c for c in credits if c.period in alive]

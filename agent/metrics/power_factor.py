"""CFE power-factor charge (recargo) or credit (bonificación), domain.md §4.4 and §6.

FP % = kWh / √(kWh² + kVArh²) × 100 over the billing period. Below the threshold (90 % by
default; 95 % for loads CFE bills under A/073/2023) a surcharge of 3/5 × (threshold/FP − 1);
at or above it a credit of 1/4 × (1 − threshold/FP), at most 2.5 %. Decimal throughout:
1/4·(1 − 90/100)·100 is 2.4999999999999996 in binary floats. The one-decimal rounding and
the 120 % surcharge cap are UNCONFIRMED, so both are parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, getcontext

getcontext().prec = 28


@dataclass(frozen=True)
class PowerFactorCharge:
    power_factor_pct: Decimal
    surcharge_pct: Decimal  # recargo (>= 0)
    bonus_pct: Decimal  # bonificación (>= 0)


def power_factor_pct(kwh: float, kvarh: float) -> Decimal:
    if kwh < 0 or kvarh < 0:
        raise ValueError("energies must not be negative")
    p, q = Decimal(str(kwh)), Decimal(str(kvarh))
    if p == 0:
        raise ValueError("no active energy in the period: the power factor is undefined")
    return p / (p * p + q * q).sqrt() * 100


def cfe_charge(
    kwh: float,
    kvarh: float,
    threshold_pct: float = 90.0,
    decimals: int | None = 1,
    max_bonus_pct: float = 2.5,
    max_surcharge_pct: float | None = 120.0,
) -> PowerFactorCharge:
    fp = power_factor_pct(kwh, kvarh).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    t = Decimal(str(threshold_pct))
    surcharge = bonus = Decimal(0)
    if fp < t:
        surcharge = Decimal(3) / 5 * (t / fp - 1) * 100
        if max_surcharge_pct is not None:
            surcharge = min(surcharge, Decimal(str(max_surcharge_pct)))
    else:
        bonus = min(Decimal(1) / 4 * (1 - t / fp) * 100, Decimal(str(max_bonus_pct)))
    if decimals is not None:
        q = Decimal(1).scaleb(-decimals)
        surcharge = surcharge.quantize(q, rounding=ROUND_HALF_UP)
        bonus = bonus.quantize(q, rounding=ROUND_HALF_UP)
    return PowerFactorCharge(fp, surcharge, bonus)

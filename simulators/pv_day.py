"""A day of PV production and a house's load, as pure functions of time, for the SunSpec
simulator.

* PV: a clear-sky bell from sunrise (06:45) to sunset (18:45) local time (UTC-6, central
  Mexico, as :mod:`vatio.simulators.load_curve`), ``sin(π·x)^1.3`` of the array's peak, with
  clouds: in some 5-minute slots a cloud passes and takes 30–70 % of the light, with soft
  edges so power does not jump. Two MPPT inputs (strings of different size and voltage).
* Inverter: AC power = DC power × efficiency, the efficiency falling at low load
  (96.5 % at full power, about 93 % at 10 %), zero below a start-up threshold.
* House: 350 W all day, a morning and an evening peak, so a meter at the grid point
  (load − PV) exports around noon and imports at night.

Everything is deterministic in (seed, t); only the counters in :class:`SiteState` carry
state (they integrate power between updates, so energy agrees with power).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vatio.simulators.load_curve import _unit_random

UTC_OFFSET_H = -6.0
SUNRISE_H = 6.75
SUNSET_H = 18.75


def local_hour(t: float) -> float:
    return ((t + UTC_OFFSET_H * 3600) % 86400) / 3600


def clear_sky(t: float) -> float:
    """Share of the array's peak under a clear sky (0 at night)."""
    h = local_hour(t)
    if not SUNRISE_H < h < SUNSET_H:
        return 0.0
    x = (h - SUNRISE_H) / (SUNSET_H - SUNRISE_H)
    return math.sin(math.pi * x) ** 1.3


def cloud_factor(t: float, seed: int) -> float:
    """Light let through by clouds: 1.0 most of the time, 0.3–0.7 while one passes."""
    slot = int(t // 300)
    if _unit_random(seed, "cloud?", slot) >= 0.25:
        return 1.0
    depth = 0.3 + 0.4 * _unit_random(seed, "depth", slot)
    x = (t % 300) / 300
    edge = min(1.0, x / 0.15, (1 - x) / 0.15)  # 45 s in, 45 s out
    return 1.0 - (1.0 - depth) * edge


@dataclass(frozen=True)
class PvPlant:
    seed: int = 0
    peak_w: float = 6000.0  # DC at full sun
    shares: tuple[float, ...] = (0.55, 0.45)  # of DC power per MPPT input
    mpp_volts: tuple[float, ...] = (380.0, 310.0)  # each string's maximum-power voltage
    rated_ac_w: float = 5000.0

    def dc_w(self, t: float) -> float:
        return self.peak_w * clear_sky(t) * cloud_factor(t, self.seed)

    def efficiency(self, dc_w: float) -> float:
        if dc_w < 0.01 * self.rated_ac_w:
            return 0.0  # below start-up: the inverter sleeps
        return 0.965 - 0.06 * math.exp(-dc_w / (0.1 * self.rated_ac_w))

    def ac_w(self, t: float) -> float:
        dc = self.dc_w(t)
        return min(dc * self.efficiency(dc), self.rated_ac_w)

    def mppt(self, t: float) -> list[tuple[float, float, float]]:
        """(volts, amps, watts) per input; the voltage sags a little with heat and light."""
        dc = self.dc_w(t)
        out = []
        for share, vmp in zip(self.shares, self.mpp_volts, strict=True):
            w = dc * share
            volts = vmp * (0.92 + 0.08 * clear_sky(t)) if w > 0 else 0.0
            out.append((volts, w / volts if volts else 0.0, w))
        return out


def house_w(t: float, seed: int = 0) -> float:
    """A house (or a small shop): base load with morning and evening peaks."""
    h = local_hour(t)
    w = 350.0
    w += 900.0 * math.exp(-(((h - 7.5) / 1.0) ** 2))
    w += 1600.0 * math.exp(-(((h - 20.0) / 1.5) ** 2))
    w += 500.0 * math.exp(-(((h - 13.5) / 1.0) ** 2))  # lunch
    return w * (1 + 0.05 * (_unit_random(seed, "house", int(t // 10)) - 0.5))


@dataclass
class SiteState:
    """The counters of one site (an inverter and the grid meter), integrated over time."""

    plant: PvPlant
    t: float
    generated_kwh: float = 12_345.0
    mppt_kwh: list[float] = field(default_factory=lambda: [6_900.0, 5_700.0])
    import_kwh: float = 8_200.0
    export_kwh: float = 4_100.0
    _last: tuple[float, float, list[float]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._last = self._powers(self.t)

    def _powers(self, t: float) -> tuple[float, float, list[float]]:
        ac = self.plant.ac_w(t)
        return ac, house_w(t, self.plant.seed) - ac, [w for _, _, w in self.plant.mppt(t)]

    def advance(self, t: float) -> None:
        """Move the counters to ``t`` (trapezoid rule on power)."""
        dt = t - self.t
        if dt <= 0:
            return
        now = self._powers(t)
        (ac0, grid0, dc0), (ac1, grid1, dc1) = self._last, now
        hours = dt / 3600
        self.generated_kwh += (ac0 + ac1) / 2 * hours / 1000
        for k in range(len(self.mppt_kwh)):
            self.mppt_kwh[k] += (dc0[k] + dc1[k]) / 2 * hours / 1000
        grid = (grid0 + grid1) / 2 * hours / 1000
        if grid >= 0:
            self.import_kwh += grid
        else:
            self.export_kwh -= grid
        self.t, self._last = t, now

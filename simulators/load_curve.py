"""A factory's electrical load as a deterministic function of time, for simulated meters.

The shape follows a small Mexican plant on a 220Y/127 V, 60 Hz service:

* shifts: night 22–06 at ~15 % of rated power, first shift 06–14 at ~80 % (with a lunch dip
  13:00–13:30), second shift 14–22 at ~65 %, weekends at ~20 %;
* motor starts: in some minutes a motor starts, with an inrush of 3× its running power that
  decays over ~8 s;
* machines (off unless ``machines`` > 0): during the shifts, a large machine (a compressor,
  an oven, a press line: 25–50 % of rated power) starts in some 5-minute slots and runs for
  3–12 minutes, with the same inrush; these are the loads that push a 15-minute block over a
  demand limit, and what a demand alarm must catch in time. ``starts`` adds machines at
  known times (the demo uses one to show the projected alarm within its first minutes);
* power factor wanders between 0.85 and 0.95 (inductive load), phases are a few % unbalanced.

Everything is a pure function of (seed, t), so a test can ask what a meter served at a given
time. Only the energy counters carry state: :class:`MeterState` integrates power over the
time that passes between updates, so counters grow consistently with power.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field

from vatio.simulators.air_day import AirDay

V_LN = 127.0  # Mexico's 220Y/127 V low-voltage service
FREQ = 60.0


def _unit_random(*key: object) -> float:
    """A stable pseudo-random number in [0, 1) for a key (no global RNG state)."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def shift_factor(t: float) -> float:
    """Share of rated power by time of day (local time is taken as UTC-6, central Mexico)."""
    local = time.gmtime(t - 6 * 3600)
    hour = local.tm_hour + local.tm_min / 60
    if local.tm_wday >= 5:
        return 0.20
    if 6 <= hour < 14:
        return 0.50 if 13 <= hour < 13.5 else 0.80
    if 14 <= hour < 22:
        return 0.65
    return 0.15


def _inrush(size_kw: float, age_s: float) -> float:
    return size_kw * (1 + 2 * math.exp(-age_s / 8))  # 3× at start, then running


@dataclass(frozen=True)
class FactoryLoad:
    seed: int
    rated_kw: float = 60.0
    machines: float = 0.0  # chance that a machine starts in a 5-minute slot of a shift
    starts: tuple[tuple[float, float, float], ...] = ()  # (start time, seconds, kW) known

    def motor_kw(self, t: float) -> float:
        """Inrush of a motor started in the current or previous minute, decaying."""
        total = 0.0
        minute = int(t // 60)
        for m in (minute - 1, minute):
            if _unit_random(self.seed, "start?", m) < 0.3:
                start = m * 60 + 60 * _unit_random(self.seed, "at", m)
                size = self.rated_kw * (0.05 + 0.1 * _unit_random(self.seed, "size", m))
                age = t - start
                if 0 <= age < 30:
                    total += _inrush(size, age)
        return total

    def machine_kw(self, t: float) -> float:
        """Large machines running at ``t``: random ones in the shifts, and the known starts."""
        total = sum(_inrush(kw, t - at) for at, secs, kw in self.starts if 0 <= t - at < secs)
        if self.machines <= 0:
            return total
        slot = int(t // 300)
        for s in range(slot - 3, slot + 1):  # a machine runs 12 minutes at most
            if _unit_random(self.seed, "machine?", s) >= self.machines:
                continue
            start = s * 300 + 300 * _unit_random(self.seed, "machine at", s)
            if shift_factor(start) < 0.5:
                continue  # machines run in the shifts only
            secs = 180 + 540 * _unit_random(self.seed, "machine for", s)
            size = self.rated_kw * (0.25 + 0.25 * _unit_random(self.seed, "machine kw", s))
            if 0 <= t - start < secs:
                total += _inrush(size, t - start)
        return total

    def power_kw(self, t: float) -> float:
        noise = 1 + 0.04 * (_unit_random(self.seed, "noise", int(t)) - 0.5)
        return self.rated_kw * shift_factor(t) * noise + self.motor_kw(t) + self.machine_kw(t)

    def power_factor(self, t: float) -> float:
        phase = _unit_random(self.seed, "pf") * 2 * math.pi
        return 0.90 + 0.05 * math.sin(2 * math.pi * t / 10_800 + phase)

    def instant(self, t: float) -> dict[str, float]:
        """Every instantaneous electrical quantity at ``t`` (no counters)."""
        v = electrical(self.power_kw(t) * 1000, self.power_factor(t), t, self.seed)
        v.update(
            demand_w=self.rated_kw * 1000 * shift_factor(t),
            demand_max_w=self.rated_kw * 1000 * 0.8 + 3 * self.rated_kw * 15,
            # a plant's indoor air, for sensors that speak Modbus (SenseAir S8 …)
            co2_ppm=float(round(480 + 150 * shift_factor(t) + 30 * math.sin(t / 300 + self.seed))),
            temperature_c=24 + 4 * shift_factor(t),
            humidity_pct=45 + 5 * math.sin(t / 3600),
        )
        return v


@dataclass(frozen=True)
class DailyProfile:
    """A known day, for tests that check totals exactly: constant power between steps at
    local times of day, the same every day, at a constant power factor. Its energy between
    two instants is integrated exactly (:meth:`energy_kwh`), not sampled. A negative step is
    power flowing out (a site exporting solar at noon, or a meter on an inverter's output):
    the meter counts it on its export register (:meth:`energy_split_kwh`)."""

    steps: tuple[tuple[float, float], ...]  # (local hour the step starts, kW); the first at 0
    pf: float = 0.95
    utc_offset_h: float = -6.0
    seed: int = 0

    def _hour(self, t: float) -> float:
        return ((t + self.utc_offset_h * 3600) % 86400) / 3600

    def power_kw(self, t: float) -> float:
        h = self._hour(t)
        return [kw for start, kw in self.steps if start <= h][-1]

    def energy_kwh(self, t0: float, t1: float) -> float:
        """∫ power dt over [t0, t1], exactly, in kWh."""
        imported, exported = self.energy_split_kwh(t0, t1)
        return imported - exported

    def energy_split_kwh(self, t0: float, t1: float) -> tuple[float, float]:
        """(∫ max(power, 0) dt, ∫ max(−power, 0) dt) over [t0, t1], exactly, in kWh."""
        edges = sorted({start for start, _ in self.steps} | {24.0})
        imported = exported = 0.0
        t = t0
        while t < t1:
            h = self._hour(t)
            nxt = next(e for e in edges if e > h + 1e-12)
            end = min(t1, t + (nxt - h) * 3600)
            kwh = self.power_kw(t) * (end - t) / 3600
            if kwh >= 0:
                imported += kwh
            else:
                exported -= kwh
            t = end
        return imported, exported

    def instant(self, t: float) -> dict[str, float]:
        v = electrical(self.power_kw(t) * 1000, self.pf, t, self.seed)
        v.update(demand_w=v["active_power_w"], demand_max_w=max(kw for _, kw in self.steps) * 1e3)
        return v


def electrical(p_w: float, pf: float, t: float, seed: int) -> dict[str, float]:
    """Per-phase and total quantities of a three-phase load drawing ``p_w`` at ``pf``."""
    s_va = p_w / pf
    q_var = math.sqrt(max(s_va**2 - p_w**2, 0.0))
    angle = math.degrees(math.acos(pf))
    v: dict[str, float] = {}
    shares = (0.34, 0.335, 0.325)  # slightly unbalanced phases
    for n, share in zip((1, 2, 3), shares, strict=True):
        volts = V_LN * (1 + 0.01 * math.sin(t / 97 + n + seed))
        v[f"voltage_l{n}_v"] = volts
        v[f"active_power_l{n}_w"] = p_w * share
        v[f"apparent_power_l{n}_va"] = s_va * share
        v[f"reactive_power_l{n}_var"] = q_var * share
        v[f"current_l{n}_a"] = s_va * share / volts
        v[f"power_factor_l{n}"] = pf
        v[f"phase_angle_l{n}_deg"] = angle
    for a, b in ((1, 2), (2, 3), (3, 1)):
        v[f"voltage_l{a}_l{b}_v"] = math.sqrt(3) * (v[f"voltage_l{a}_v"] + v[f"voltage_l{b}_v"]) / 2
    v["current_n_a"] = abs(v["current_l1_a"] - v["current_l3_a"])
    v.update(
        active_power_w=p_w,
        apparent_power_va=s_va,
        reactive_power_var=q_var,
        power_factor=pf,
        frequency_hz=FREQ + 0.02 * math.sin(t / 31),
        voltage_v=v["voltage_l1_v"],
        current_a=s_va / v["voltage_l1_v"],
    )
    return v


@dataclass
class MeterState:
    """A meter's counters, advanced by integrating the load between updates."""

    load: FactoryLoad | DailyProfile | AirDay  # an AirDay has no power: counters stay put
    t: float
    energy_import_kwh: float = field(default=0.0)
    reactive_import_kvarh: float = field(default=0.0)
    energy_export_kwh: float = field(default=0.0)  # only a DailyProfile's negative steps
    _last: dict[str, float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._last = self.load.instant(self.t)  # power at self.t, the trapezoid's left side
        if not self.energy_import_kwh:
            self.energy_import_kwh = 10_000 + 1_000 * _unit_random(self.load.seed, "kwh")
            self.reactive_import_kvarh = self.energy_import_kwh * 0.45

    def advance(self, t: float) -> dict[str, float]:
        """Move to ``t`` (trapezoid on power) and return every quantity at ``t``."""
        now = self.load.instant(t)
        dt = t - self.t
        if dt > 0 and isinstance(self.load, DailyProfile):
            kwh, out = self.load.energy_split_kwh(self.t, t)
            self.energy_import_kwh += kwh
            self.energy_export_kwh += out
            self.reactive_import_kvarh += kwh * math.tan(math.acos(self.load.pf))
            self.t = t
            self._last = now
        elif dt > 0 and "active_power_w" in now:
            before = self._last
            self.energy_import_kwh += (
                (before["active_power_w"] + now["active_power_w"]) / 2 * dt / 3.6e6
            )
            self.reactive_import_kvarh += (
                (before["reactive_power_var"] + now["reactive_power_var"]) / 2 * dt / 3.6e6
            )
            self.t = t
            self._last = now
        now = dict(now)
        now.update(
            energy_import_kwh=self.energy_import_kwh,
            energy_export_kwh=self.energy_export_kwh,
            energy_total_kwh=self.energy_import_kwh + self.energy_export_kwh,
            reactive_energy_import_kvarh=self.reactive_import_kvarh,
            reactive_energy_export_kvarh=0.0,
            reactive_energy_total_kvarh=self.reactive_import_kvarh,
        )
        return now

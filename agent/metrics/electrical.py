"""Per-device electrical metrics: energy, demand, power factor and emissions over time.

Fed with one device's poll results, it keeps running totals for today, this month and each
tariff period of the month, the 15-minute demand (blocks and sliding) with the month's billed
peak, the month's power factor with CFE's charge or credit, and emissions. Its whole state is
a plain dict (:meth:`state` / :meth:`restore`) so the agent can persist it and a restart loses
no accumulation and does not reset a demand window.

Not wired into the agent's pipeline yet (issue 4): per-site configuration, persistence and
the ``metrics`` messages come next.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from agent.metrics.counters import CounterTracker
from agent.metrics.demand import DemandState
from agent.metrics.emissions import MEXICO_SEN, Factor, factor_for
from agent.metrics.integration import PowerIntegrator
from agent.metrics.power_factor import cfe_charge
from agent.metrics.tariff import Region, period_at


@dataclass
class Totals:
    day: str = ""  # local date the day totals belong to (ISO)
    month: str = ""  # local year-month (YYYY-MM)
    kwh_day: float = 0.0
    kwh_month: float = 0.0
    kvarh_month: float = 0.0
    kwh_month_by_period: dict[str, float] = field(
        default_factory=lambda: {"base": 0.0, "intermedia": 0.0, "punta": 0.0}
    )
    peak_kw_by_period: dict[str, float] = field(
        default_factory=lambda: {"base": 0.0, "intermedia": 0.0, "punta": 0.0}
    )
    kgco2e_day: float = 0.0
    kgco2e_month: float = 0.0
    flags: dict[str, int] = field(default_factory=dict)  # counts of counter/integration flags


class ElectricalMetrics:
    def __init__(
        self,
        timezone: str = "America/Mexico_City",
        region: Region = "SIN",
        factors: list[Factor] = MEXICO_SEN,
        pf_threshold_pct: float = 90.0,
        max_power_kw: float | None = None,
    ) -> None:
        self.tz = ZoneInfo(timezone)
        self.region: Region = region
        self.factors = factors
        self.pf_threshold = pf_threshold_pct
        self.energy = CounterTracker(max_power_kw=max_power_kw)
        self.reactive = CounterTracker(max_power_kw=max_power_kw)
        self.power = PowerIntegrator()
        self.reactive_power = PowerIntegrator()
        self.demand = DemandState()
        self.totals = Totals()
        self.flags: dict[str, str] = {}  # quality flags of the last reading, by quantity
        self._last_ts: float | None = None

    def _roll(self, local: dt.datetime) -> None:
        day, month = local.date().isoformat(), local.strftime("%Y-%m")
        if self.totals.day != day:
            self.totals.day, self.totals.kwh_day, self.totals.kgco2e_day = day, 0.0, 0.0
        if self.totals.month != month:
            flags = self.totals.flags
            self.totals = Totals(day=day, month=month, flags=flags)
            self.demand.new_billing_period()

    def _count(self, flag: str) -> None:
        if flag and flag != "first":
            self.totals.flags[flag] = self.totals.flags.get(flag, 0) + 1

    def observe(self, values: dict[str, float | None], ts: float) -> float | None:
        """Add one poll; returns a completed 15-minute block's demand (kW) when one closed."""
        local = dt.datetime.fromtimestamp(ts, self.tz)
        self.flags = {}
        if self._last_ts is not None and ts < self._last_ts:
            self.flags["ts"] = "clock_back"  # an NTP step: energy still counts, rates restart
        self._last_ts = ts
        source = "energy_import_kwh" if "energy_import_kwh" in values else "active_power_w"
        if source == "energy_import_kwh":
            d = self.energy.update(values["energy_import_kwh"], ts)
        else:
            d = self.power.update(values.get("active_power_w"), ts)
        self._count(d.flag)
        if d.flag not in ("", "first", "invalid"):  # invalid already carries its own reason
            self.flags[source] = d.flag
        if "reactive_energy_import_kvarh" in values:
            q = self.reactive.update(values["reactive_energy_import_kvarh"], ts)
        else:
            q = self.reactive_power.update(values.get("reactive_power_var"), ts)
        # a block that closes now belongs to the period (and month) it started in
        block_start = self.demand.block_start
        closed = self.demand.add(ts, d.kwh)
        if closed is not None and block_start is not None:
            started = dt.datetime.fromtimestamp(block_start, self.tz).replace(tzinfo=None)
            p = period_at(started, self.region)
            peaks = self.totals.peak_kw_by_period
            peaks[p] = max(peaks[p], closed)
        self._roll(local)
        period = period_at(local.replace(tzinfo=None), self.region)
        t = self.totals
        t.kwh_day += d.kwh
        t.kwh_month += d.kwh
        t.kvarh_month += q.kwh
        t.kwh_month_by_period[period] += d.kwh
        kg = d.kwh * factor_for(local.year, self.factors).kg_per_kwh
        t.kgco2e_day += kg
        t.kgco2e_month += kg
        return closed

    def values(self, now: float) -> dict[str, float | None]:
        """The metrics to publish, named from the vocabulary."""
        t = self.totals
        out: dict[str, float | None] = {
            "energy_today_kwh": round(t.kwh_day, 6),
            "energy_month_kwh": round(t.kwh_month, 6),
            "energy_month_base_kwh": round(t.kwh_month_by_period["base"], 6),
            "energy_month_intermedia_kwh": round(t.kwh_month_by_period["intermedia"], 6),
            "energy_month_punta_kwh": round(t.kwh_month_by_period["punta"], 6),
            "demand_15m_kw": self.demand.last_block_kw,
            "demand_current_kw": self.demand.current_kw(now),
            "demand_sliding_kw": round(self.demand.sliding_kw, 6),
            "demand_peak_month_kw": float(self.demand.billed_peak_kw),
            "demand_peak_punta_kw": t.peak_kw_by_period["punta"],
            "emissions_today_kgco2e": round(t.kgco2e_day, 6),
            "emissions_month_kgco2e": round(t.kgco2e_month, 6),
            "power_factor_month_pct": None,
            "pf_surcharge_pct": None,
            "pf_bonus_pct": None,
        }
        if t.kwh_month > 0:
            charge = cfe_charge(t.kwh_month, t.kvarh_month, self.pf_threshold)
            out["power_factor_month_pct"] = float(charge.power_factor_pct)
            out["pf_surcharge_pct"] = float(charge.surcharge_pct)
            out["pf_bonus_pct"] = float(charge.bonus_pct)
        return out

    def state(self) -> dict[str, Any]:
        """Everything needed to resume after a restart, as JSON-ready data."""
        return {
            "totals": asdict(self.totals),
            "energy": [self.energy.last, self.energy.last_ts],
            "reactive": [self.reactive.last, self.reactive.last_ts],
            "power": self.power.last,
            "reactive_power": self.reactive_power.last,
            "demand": {
                "block_start": self.demand.block_start,
                "block_kwh": self.demand.block_kwh,
                "last_block_kw": self.demand.last_block_kw,
                "peak_block_kw": self.demand.peak_block_kw,
                "peak_sliding_kw": self.demand.peak_sliding_kw,
                "sliding": list(self.demand.sliding),
            },
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.totals = Totals(**state["totals"])
        self.energy.last, self.energy.last_ts = state["energy"]
        self.reactive.last, self.reactive.last_ts = state["reactive"]
        self.power.last = tuple(state["power"]) if state["power"] else None
        rp = state["reactive_power"]
        self.reactive_power.last = tuple(rp) if rp else None
        d = state["demand"]
        self.demand = DemandState(
            block_start=d["block_start"],
            block_kwh=d["block_kwh"],
            last_block_kw=d["last_block_kw"],
            peak_block_kw=d["peak_block_kw"],
            peak_sliding_kw=d["peak_sliding_kw"],
            sliding=deque(tuple(x) for x in d["sliding"]),
        )

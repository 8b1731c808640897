"""Per-device electrical metrics: energy, demand, power factor and emissions over time.

Fed with one device's poll results, it keeps running totals for today and this month, each
by tariff period, the 15-minute demand (blocks and sliding) with the month's billed peak, the
month's power factor with CFE's charge or credit, and emissions. A closed day or month leaves
a record (:attr:`ElectricalMetrics.closed`) for the local history, and yesterday's totals
stay published until the next midnight.

Energy measured between two readings is spread evenly over the time between them and split
at every 15-minute boundary (which includes every tariff-period change and local midnight:
all schedules change on whole hours), so a slow poll, or an outage of the agent that a
counter bridges, neither moves energy into the wrong period nor makes a false demand peak.

Until the wall clock is trusted (common/timesync.py), energy is measured but not filed: see
:class:`HeldEnergy` for how it is kept and filed at its true time once the clock is.

Its whole state is a plain dict (:meth:`state` / :meth:`restore`) so the agent can persist
it and a restart loses no accumulation and does not reset a demand window.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from vatio.agent.metrics.counters import CounterTracker, Delta
from vatio.agent.metrics.demand import WINDOW_S, DemandState
from vatio.agent.metrics.emissions import MEXICO_SEN, Factor, factor_for
from vatio.agent.metrics.integration import PowerIntegrator
from vatio.agent.metrics.power_factor import cfe_charge
from vatio.agent.metrics.tariff import Region, period_at

EnergySource = Literal["auto", "counter", "power"]
PERIODS = ("base", "intermedia", "punta")
MAX_SPREAD_S = 35 * 86400  # a longer silence is not spread back over weeks of unknown load


def _by_period() -> dict[str, float]:
    return dict.fromkeys(PERIODS, 0.0)


@dataclass
class Totals:
    day: str = ""  # local date the day totals belong to (ISO)
    month: str = ""  # local year-month (YYYY-MM)
    kwh_day: float = 0.0
    kwh_day_by_period: dict[str, float] = field(default_factory=_by_period)
    peak_kw_day: float = 0.0  # highest completed block of the day
    kwh_month: float = 0.0
    kvarh_month: float = 0.0
    kwh_month_by_period: dict[str, float] = field(default_factory=_by_period)
    peak_kw_by_period: dict[str, float] = field(default_factory=_by_period)
    kgco2e_day: float = 0.0
    kgco2e_month: float = 0.0
    flags: dict[str, int] = field(default_factory=dict)  # counts of counter/integration flags


@dataclass(frozen=True)
class PowerFactorRule:
    """CFE's power-factor rule; the rounding and the surcharge cap are UNCONFIRMED."""

    threshold_pct: float = 90.0
    decimals: int | None = 1
    max_surcharge_pct: float | None = 120.0


def spread(
    t0: float | None, t1: float, kwh: float, kvarh: float
) -> list[tuple[float, float, float]]:
    """Energy measured over (t0, t1] as pieces (mid-time, kWh, kVArh), one per 15-minute slot,
    in proportion to time. Without a usable t0 it is one piece at t1."""
    if t0 is None or not t0 < t1 or t1 - t0 > MAX_SPREAD_S:
        return [(t1, kwh, kvarh)]
    span = t1 - t0
    pieces = []
    a = t0
    while a < t1:
        b = min((math.floor(a / WINDOW_S) + 1) * WINDOW_S, t1)
        share = (b - a) / span
        pieces.append(((a + b) / 2, kwh * share, kvarh * share))
        a = b
    return pieces


HOLD_BUCKET_S = 60.0  # held energy is kept per minute of steady time …
HOLD_MAX_BUCKETS = 7 * 1440  # … for a week; past it, pairs merge (coarser, nothing lost)


class HeldEnergy:
    """Energy measured while the wall clock was not trusted, waiting for its true time.

    Why hold rather than file by the untrusted clock: a Pi without an RTC boots with the
    last saved time (or 1970) and steps to the true time when NTP answers; filing by the
    boot clock puts energy under a wrong day, month and tariff period, and the step later
    looks like a long silence. Why hold *energy* rather than the readings: the counter and
    the power integrator need only time differences, which the steady (monotonic) clock
    gives exactly, so each reading's energy is measured at once and only its calendar slot
    waits. Each slice is kept with the monotonic time it ends at; once the clock is trusted,
    the first trusted reading links the two clocks and each slice is filed at
    ``true = sync_wall - (sync_mono - slice_mono)``, spread over its own interval exactly as
    live energy is. So the step itself is never seen as a gap: no energy lands in one block,
    no false demand peak, nothing under a wrong day, and the total is the counter's
    difference, to the last Wh.

    Memory is bounded: slices within :data:`HOLD_BUCKET_S` of steady time share a bucket
    (1 440 a day); past :data:`HOLD_MAX_BUCKETS`, neighbouring buckets merge, which coarsens
    where in time energy falls but never loses any. Held energy is not persisted: the engine
    does not save a holding device's state, so after a restart the meter's counter bridges
    it from the last trusted reading (integrated power held at a restart is lost).
    """

    __slots__ = ("anchor", "buckets", "since", "steady_set")

    def __init__(self, since: float | None, ts: float, mono: float) -> None:
        self.since = since  # trusted wall time the first slice starts at (None: unknown)
        self.buckets: list[list[float]] = []  # [mono start, mono end, kWh, kVArh]
        self.anchor = (ts, mono)  # the steady timebase the trackers run on while held
        self.steady_set: set[str] = set()  # trackers whose timestamps are steady ones

    def steady(self, mono: float) -> float:
        return self.anchor[0] + (mono - self.anchor[1])

    def add(self, mono: float, kwh: float, kvarh: float) -> None:
        b = self.buckets
        if b and mono - b[-1][0] <= HOLD_BUCKET_S:
            last = b[-1]
            last[1], last[2], last[3] = mono, last[2] + kwh, last[3] + kvarh
            return
        b.append([b[-1][1] if b else mono, mono, kwh, kvarh])
        if len(b) > HOLD_MAX_BUCKETS:  # merge neighbours: half the resolution, same energy
            pairs = zip(b[::2], b[1::2], strict=False)
            merged = [[x[0], y[1], x[2] + y[2], x[3] + y[3]] for x, y in pairs]
            self.buckets = merged + ([b[-1]] if len(b) % 2 else [])

    @property
    def kwh(self) -> float:
        return math.fsum(x[2] for x in self.buckets)


class ElectricalMetrics:
    def __init__(
        self,
        timezone: str = "America/Mexico_City",
        region: Region = "SIN",
        factors: list[Factor] = MEXICO_SEN,
        pf_rule: PowerFactorRule = PowerFactorRule(),
        max_power_kw: float | None = None,
        source: EnergySource = "auto",
    ) -> None:
        self.tz = ZoneInfo(timezone)
        self.region: Region = region
        self.factors = factors
        self.pf_rule = pf_rule
        self.source = source
        self.energy = CounterTracker(max_power_kw=max_power_kw)
        self.reactive = CounterTracker(max_power_kw=max_power_kw)
        self.power = PowerIntegrator()
        self.reactive_power = PowerIntegrator()
        self.demand = DemandState()
        self.totals = Totals()
        self.yesterday: dict[str, Any] | None = None
        self.closed: list[tuple[str, str, dict[str, Any]]] = []  # (kind, key, record) to store
        self.flags: dict[str, str] = {}  # quality flags of the last reading, by quantity
        self._last_ts: float | None = None
        self.held: HeldEnergy | None = None  # energy measured while the clock is untrusted

    def _day_record(self) -> dict[str, Any]:
        t = self.totals
        return {
            "kwh": t.kwh_day,
            "kwh_by_period": dict(t.kwh_day_by_period),
            "peak_kw": t.peak_kw_day,
            "kgco2e": t.kgco2e_day,
        }

    def _month_record(self) -> dict[str, Any]:
        t = self.totals
        record: dict[str, Any] = {
            "kwh": t.kwh_month,
            "kvarh": t.kvarh_month,
            "kwh_by_period": dict(t.kwh_month_by_period),
            "peak_kw_by_period": dict(t.peak_kw_by_period),
            "billed_peak_kw": self.demand.billed_peak_kw,
            "kgco2e": t.kgco2e_month,
        }
        record.update(self._power_factor())
        return record

    def _roll(self, local: dt.datetime) -> None:
        day, month = local.date().isoformat(), local.strftime("%Y-%m")
        t = self.totals
        if t.day != day:
            if t.day:
                self.yesterday = {"day": t.day, **self._day_record()}
                self.closed.append(("day", t.day, self._day_record()))
            t.day, t.kwh_day, t.kgco2e_day, t.peak_kw_day = day, 0.0, 0.0, 0.0
            t.kwh_day_by_period = _by_period()
        if t.month != month:
            if t.month:
                self.closed.append(("month", t.month, self._month_record()))
            self.totals = Totals(day=day, month=month, flags=t.flags)
            self.demand.new_billing_period()

    def _count(self, flag: str) -> None:
        if flag and flag != "first":
            self.totals.flags[flag] = self.totals.flags.get(flag, 0) + 1

    def _uses_counter(self, values: dict[str, float | None]) -> bool:
        if self.source == "auto":
            return "energy_import_kwh" in values
        return self.source == "counter"

    def observe(
        self,
        values: dict[str, float | None],
        ts: float,
        mono: float | None = None,
        trusted: bool = True,
    ) -> float | None:
        """Add one poll; returns a completed 15-minute block's demand (kW) when one closed.

        ``trusted``: whether ``ts`` comes from a synchronised clock. An untrusted reading's
        energy is held (see :class:`HeldEnergy`) and needs ``mono``, the steady
        (:func:`vatio.common.clock.monotonic`) time of the reading; so does the first trusted
        reading after it, which files what was held."""
        self.flags = {}
        if not trusted:
            assert mono is not None
            self._hold(values, ts, mono)
            return None
        closed = self._release(ts, mono) if self.held is not None else None
        if self._last_ts is not None and ts < self._last_ts:
            self.flags["ts"] = "clock_back"  # an NTP step: energy still counts, rates restart
        self._last_ts = ts
        t0, kwh, kvarh = self._measure(values, ts)
        for mid, a, b in spread(t0, ts, kwh, kvarh):
            closed = self._add(mid, a, b) or closed
        return closed

    def _measure(
        self, values: dict[str, float | None], ts: float
    ) -> tuple[float | None, float, float]:
        """Energy since the previous reading: (its time, kWh, kVArh), flags set."""
        d: Delta
        if self._uses_counter(values):
            source, t0 = "energy_import_kwh", self.energy.last_ts
            d = self.energy.update(values.get("energy_import_kwh"), ts)
        else:
            source = "active_power_w"
            t0 = self.power.last[0] if self.power.last else None
            d = self.power.update(values.get("active_power_w"), ts)
        self._count(d.flag)
        if d.flag not in ("", "first", "invalid"):  # invalid already carries its own reason
            self.flags[source] = d.flag
        if "reactive_energy_import_kvarh" in values and self.source != "power":
            q = self.reactive.update(values["reactive_energy_import_kvarh"], ts)
        else:
            q = self.reactive_power.update(values.get("reactive_power_var"), ts)
        return t0, d.kwh, q.kwh

    def _trackers(self) -> dict[str, CounterTracker | PowerIntegrator]:
        return {
            "energy": self.energy,
            "reactive": self.reactive,
            "power": self.power,
            "reactive_power": self.reactive_power,
        }

    @staticmethod
    def _tracker_ts(tr: CounterTracker | PowerIntegrator) -> float | None:
        if isinstance(tr, CounterTracker):
            return tr.last_ts
        return tr.last[0] if tr.last else None

    def _hold(self, values: dict[str, float | None], ts: float, mono: float) -> None:
        """Measure an untrusted reading's energy on the steady clock and keep it aside."""
        held = self.held
        if held is None:
            since = self.energy.last_ts if self._uses_counter(values) else None
            if since is None and self.power.last is not None:
                since = self.power.last[0]
            held = self.held = HeldEnergy(since, ts, mono)
        steady = held.steady(mono)
        _, kwh, kvarh = self._measure(values, steady)
        for name, tr in self._trackers().items():
            if self._tracker_ts(tr) == steady:
                held.steady_set.add(name)
        held.add(mono, kwh, kvarh)

    def _release(self, sync_ts: float, sync_mono: float | None) -> float | None:
        """The clock is trusted again: file the held energy at its true time."""
        held, self.held = self.held, None
        assert held is not None and sync_mono is not None

        def true(mono: float) -> float:
            return sync_ts - (sync_mono - mono)

        closed = None
        t_prev = held.since
        for _m0, m1, kwh, kvarh in held.buckets:
            t1 = true(m1)
            for mid, a, b in spread(t_prev, t1, kwh, kvarh):
                c = self._add(mid, a, b)
                if c is not None:  # many blocks may close here: report the highest
                    closed = c if closed is None else max(closed, c)
            t_prev = t1
        # the trackers go on from the true time of the last held reading
        for name in held.steady_set:
            tr = self._trackers()[name]
            mono = held.anchor[1] + ((self._tracker_ts(tr) or 0.0) - held.anchor[0])
            if isinstance(tr, CounterTracker):
                tr.last_ts = true(mono)
            elif tr.last is not None:
                tr.last = (true(mono), tr.last[1])
        self._last_ts = t_prev
        return closed

    def _add(self, ts: float, kwh: float, kvarh: float) -> float | None:
        """Book energy measured around ``ts`` (within one 15-minute slot)."""
        # a block that closes now belongs to the period, day and month it started in
        block_start = self.demand.block_start
        closed = self.demand.add(ts, kwh)
        if closed is not None and block_start is not None:
            started = dt.datetime.fromtimestamp(block_start, self.tz).replace(tzinfo=None)
            p = period_at(started, self.region)
            peaks = self.totals.peak_kw_by_period
            peaks[p] = max(peaks[p], closed)
            self.totals.peak_kw_day = max(self.totals.peak_kw_day, closed)
        local = dt.datetime.fromtimestamp(ts, self.tz)
        self._roll(local)
        period = period_at(local.replace(tzinfo=None), self.region)
        t = self.totals
        t.kwh_day += kwh
        t.kwh_day_by_period[period] += kwh
        t.kwh_month += kwh
        t.kvarh_month += kvarh
        t.kwh_month_by_period[period] += kwh
        kg = kwh * factor_for(local.year, self.factors).kg_per_kwh
        t.kgco2e_day += kg
        t.kgco2e_month += kg
        return closed

    def _power_factor(self) -> dict[str, float | None]:
        t, rule = self.totals, self.pf_rule
        if t.kwh_month <= 0:
            return {"power_factor_pct": None, "surcharge_pct": None, "bonus_pct": None}
        charge = cfe_charge(
            t.kwh_month,
            t.kvarh_month,
            rule.threshold_pct,
            decimals=rule.decimals,
            max_surcharge_pct=rule.max_surcharge_pct,
        )
        return {
            "power_factor_pct": float(charge.power_factor_pct),
            "surcharge_pct": float(charge.surcharge_pct),
            "bonus_pct": float(charge.bonus_pct),
        }

    def values(self, now: float) -> dict[str, float | None]:
        """The metrics to publish, named from the vocabulary."""
        t = self.totals
        out: dict[str, float | None] = {
            "energy_today_kwh": round(t.kwh_day, 6),
            **{f"energy_today_{p}_kwh": round(t.kwh_day_by_period[p], 6) for p in PERIODS},
            "energy_month_kwh": round(t.kwh_month, 6),
            **{f"energy_month_{p}_kwh": round(t.kwh_month_by_period[p], 6) for p in PERIODS},
            "demand_15m_kw": self.demand.last_block_kw,
            "demand_current_kw": self.demand.current_kw(now),
            "demand_sliding_kw": round(self.demand.sliding_kw, 6),
            "demand_peak_month_kw": float(self.demand.billed_peak_kw),
            "demand_peak_punta_kw": t.peak_kw_by_period["punta"],
            "emissions_today_kgco2e": round(t.kgco2e_day, 6),
            "emissions_month_kgco2e": round(t.kgco2e_month, 6),
        }
        pf = self._power_factor()
        out["power_factor_month_pct"] = pf["power_factor_pct"]
        out["pf_surcharge_pct"] = pf["surcharge_pct"]
        out["pf_bonus_pct"] = pf["bonus_pct"]
        y = self.yesterday
        if y is not None:
            out["energy_yesterday_kwh"] = round(y["kwh"], 6)
            for p in PERIODS:
                out[f"energy_yesterday_{p}_kwh"] = round(y["kwh_by_period"][p], 6)
            out["demand_peak_yesterday_kw"] = y["peak_kw"]
            out["emissions_yesterday_kgco2e"] = round(y["kgco2e"], 6)
        return out

    def state(self) -> dict[str, Any]:
        """Everything needed to resume after a restart, as JSON-ready data."""
        return {
            "totals": asdict(self.totals),
            "yesterday": self.yesterday,
            "energy": [self.energy.last, self.energy.last_ts],
            "reactive": [self.reactive.last, self.reactive.last_ts],
            "power": self.power.last,
            "reactive_power": self.reactive_power.last,
            "demand": self.demand.saved(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.totals = Totals(**state["totals"])
        self.yesterday = state.get("yesterday")
        self.energy.last, self.energy.last_ts = state["energy"]
        self.reactive.last, self.reactive.last_ts = state["reactive"]
        self.power.last = tuple(state["power"]) if state["power"] else None
        rp = state["reactive_power"]
        self.reactive_power.last = tuple(rp) if rp else None
        self.demand = DemandState.restored(state["demand"])

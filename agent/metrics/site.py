"""Site-level metrics: the balance of grid, generation and loads, and the running bill.

Devices say where they sit (``role`` in the config): ``grid`` is the utility meter (it counts
import, and export when the site generates), ``generation`` a PV inverter or its meter (its
``metrics.generation_counter`` counts production, ``energy_export_kwh`` by default),
``load`` a sub-meter (not in the balance). The engine feeds every trusted poll here
(:meth:`SiteMetrics.observe`); the agent publishes :meth:`SiteMetrics.values` as a site-level
``metrics`` message (topic ``vatio/v1/{site}/_site/metrics``: ``_site`` cannot be a device name,
whose first character is a letter or digit).

The balance, per local day and month (the energies are measured, the rest follows):

* consumption = import + generation − export;
* self-consumption % = (generation − export) / generation (null without generation);
* self-sufficiency % = (generation − export) / consumption (null without consumption);
* emissions avoided = generation × the grid factor of the year (domain.md §3.1).

A grid meter without an export register cannot close the balance when the site generates:
export, consumption and both percentages are then null and flagged ``no_export_register``
(never a silent zero).

The bill (agent/metrics/bill.py) runs over the **billing period** (calendar months, or a
cut-off day, or the reading dates of the config): energy imported and exported by tariff
period, the grid meter's reactive energy, and the 15-minute demand of the import by tariff
period. It is recomputed with each ``values()`` call (each metrics message) and closed at
the period's end into the history (kind ``bill``). Prices come from the table row of the
month the period ends in (UNCONFIRMED: CFE's rule for periods that straddle two months was
not found; this is the month the bill is issued for).

Energy between two readings is spread over the time between them and split at 15-minute
boundaries, as for a device (:func:`vatio.agent.metrics.electrical.spread`). Readings taken
while the clock is untrusted are skipped: the next trusted counter reading bridges them.
All state is a plain dict (:meth:`state`/:meth:`restore`), kept with the devices' state.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from vatio.agent.config import LoadedConfig, published
from vatio.agent.metrics.bill import (
    PERIODS,
    Bill,
    Credit,
    NetMetering,
    PfBase,
    Usage,
    compute_bill,
    expire_credits,
    net_energy,
    project,
)
from vatio.agent.metrics.counters import CounterTracker
from vatio.agent.metrics.demand import DemandState
from vatio.agent.metrics.electrical import spread
from vatio.agent.metrics.emissions import MEXICO_SEN, Factor, factor_for
from vatio.agent.metrics.integration import PowerIntegrator
from vatio.agent.metrics.prices import PriceTable, load_prices
from vatio.agent.metrics.tariff import SCHEDULES, Region, day_type, is_summer, period_at

SITE_DEVICE = "_site"  # the device slot of site-level messages (not a valid device name)
Role = Literal["grid", "generation", "load"]


def _zero() -> dict[str, float]:
    return dict.fromkeys(PERIODS, 0.0)


@dataclass
class Balance:
    """Energies of one day or month (kWh): import, export, generation."""

    key: str = ""
    imported: float = 0.0
    exported: float = 0.0
    generated: float = 0.0
    avoided_kgco2e: float = 0.0

    def record(self, export_known: bool, import_known: bool = True) -> dict[str, float | None]:
        """The day's or month's balance; what cannot be known is None (module docstring)."""
        exported = self.exported if export_known and import_known else None
        out: dict[str, float | None] = {
            "import_kwh": round(self.imported, 6) if import_known else None,
            "export_kwh": None if exported is None else round(exported, 6),
            "generation_kwh": round(self.generated, 6),
            "avoided_kgco2e": round(self.avoided_kgco2e, 6),
            "consumption_kwh": None,
            "self_consumption_pct": None,
            "self_sufficiency_pct": None,
        }
        if not import_known or (exported is None and self.generated > 0):
            return out  # no grid meter, or generation without export: the balance is open
        exported = exported or 0.0
        used_own = max(self.generated - exported, 0.0)
        consumption = self.imported + self.generated - exported
        out["consumption_kwh"] = round(consumption, 6)
        if self.generated > 0:
            out["self_consumption_pct"] = round(min(used_own / self.generated, 1.0) * 100, 3)
        if consumption > 0:
            out["self_sufficiency_pct"] = round(min(used_own / consumption, 1.0) * 100, 3)
        return out


@dataclass
class BillingState:
    start: str = ""  # the billing period [start, end), local dates (ISO)
    end: str = ""
    imported: dict[str, float] = field(default_factory=_zero)
    exported: dict[str, float] = field(default_factory=_zero)
    kvarh: float = 0.0
    peak_kw: dict[str, float] = field(default_factory=_zero)


def billing_period(
    day: dt.date, cut_off_day: int | None = None, reading_dates: list[dt.date] | None = None
) -> tuple[dt.date, dt.date]:
    """The billing period [start, end) holding ``day``: between two reading dates; else from
    the cut-off day (after the last reading date: its day of the month, 28 at most) to the
    same day of the next month, cut at the nearest reading date; else the calendar month."""
    dates = sorted(reading_dates or [])
    for a, b in itertools.pairwise(dates):
        if a <= day < b:
            return a, b
    if dates and day >= dates[-1] and cut_off_day is None:
        cut_off_day = min(dates[-1].day, 28)
    n = cut_off_day or 1
    start = dt.date(day.year, day.month, n)
    if day < start:
        start = _add_month(start, -1)
    end = _add_month(start, 1)
    if dates and day >= dates[-1]:
        start = max(start, dates[-1])
    elif dates and day < dates[0]:
        end = min(end, dates[0])
    return start, end


def _add_month(d: dt.date, k: int) -> dt.date:
    m = d.year * 12 + d.month - 1 + k
    return dt.date(m // 12, m % 12 + 1, d.day)


def has_punta(start: dt.date, end: dt.date, region: Region) -> bool:
    """Whether any day of [start, end) has a punta hour in its schedule (domain.md §4.3)."""
    day = start
    while day < end:
        season = "summer" if is_summer(day, region) else "winter"
        if any(p == "punta" for _, _, p in SCHEDULES[region][season][day_type(day)]):
            return True
        day += dt.timedelta(days=1)
    return False


@dataclass(frozen=True)
class BillSettings:
    prices: PriceTable
    division: str
    cut_off_day: int | None = None
    reading_dates: tuple[dt.date, ...] = ()
    net_metering: NetMetering = "none"
    pf_base: PfBase = "supply"
    pf_threshold_pct: float = 90.0
    pf_decimals: int | None = 1
    pf_max_surcharge_pct: float | None = 120.0


class SiteMetrics:
    def __init__(
        self,
        roles: Mapping[str, Role],
        generation_counters: Mapping[str, str] | None = None,
        timezone: str = "America/Mexico_City",
        region: Region = "SIN",
        factors: list[Factor] = MEXICO_SEN,
        bill: BillSettings | None = None,
        grid_has_export: bool | None = None,
    ) -> None:
        """``grid_has_export``: whether the grid meter's profile maps an export counter (None:
        unknown, learnt from its readings)."""
        self.roles = {d: r for d, r in roles.items() if r != "load"}
        self.grid = next((d for d, r in self.roles.items() if r == "grid"), None)
        self.counters = dict(generation_counters or {})
        self.tz = ZoneInfo(timezone)
        self.region: Region = region
        self.factors = factors
        self.bill_settings = bill
        self.grid_has_export = grid_has_export
        self.trackers: dict[str, CounterTracker] = {}
        self.reactive_power = PowerIntegrator()
        self.demand = DemandState()
        self.day = Balance()
        self.month = Balance()
        self.yesterday: dict[str, Any] | None = None
        self.billing = BillingState()
        self.credits: list[Credit] = []
        self.closed_periods: list[str] = []  # starts of the billing periods closed so far
        self.last_bill: dict[str, Any] | None = None  # the last closed period's bill
        self.closed: list[tuple[str, str, dict[str, Any]]] = []  # (kind, key, record)
        self.bill_error: str | None = None  # a billing period the bill cannot be made for

    # --- feeding -------------------------------------------------------------------------

    def observe(
        self, device: str, values: Mapping[str, float | None], ts: float, trusted: bool = True
    ) -> None:
        role = self.roles.get(device)
        if role is None or not trusted:
            return
        if role == "grid":
            if self.grid_has_export is None:
                self.grid_has_export = "energy_export_kwh" in values
            t0, imp = self._delta(f"{device}:import", values.get("energy_import_kwh"), ts)
            _, exp = self._delta(f"{device}:export", values.get("energy_export_kwh"), ts)
            if "reactive_energy_import_kvarh" in values:
                _, q = self._delta(f"{device}:kvarh", values["reactive_energy_import_kvarh"], ts)
            else:
                q = self.reactive_power.update(values.get("reactive_power_var"), ts).kwh
            # one pass, in time order: the day, month and billing period only roll forward
            pieces = zip(spread(t0, ts, imp, q), spread(t0, ts, exp, 0.0), strict=True)
            for (mid, a, b), (_, e, _) in pieces:
                self._book(mid, imported=a, exported=e, kvarh=b, grid=True)
        elif role == "generation":
            counter = self.counters.get(device, "energy_export_kwh")
            t0, gen = self._delta(f"{device}:gen", values.get(counter), ts)
            for mid, a, _ in spread(t0, ts, gen, 0.0):
                self._book(mid, generated=a)

    def _delta(self, key: str, value: float | None, ts: float) -> tuple[float | None, float]:
        tracker = self.trackers.setdefault(key, CounterTracker())
        t0 = tracker.last_ts
        if value is None and tracker.last is None:
            return t0, 0.0
        return t0, tracker.update(value, ts).kwh

    def _book(
        self,
        ts: float,
        imported: float = 0.0,
        exported: float = 0.0,
        generated: float = 0.0,
        kvarh: float = 0.0,
        grid: bool = False,
    ) -> None:
        if grid:
            # a block that closes now belongs to the tariff period and billing period it
            # started in: file it before rolling
            start = self.demand.block_start
            closed = self.demand.add(ts, imported)
            if closed is not None and start is not None:
                begun = dt.datetime.fromtimestamp(start, self.tz).replace(tzinfo=None)
                p = period_at(begun, self.region)
                self._roll(begun)
                peaks = self.billing.peak_kw
                peaks[p] = max(peaks[p], closed)
        local = dt.datetime.fromtimestamp(ts, self.tz).replace(tzinfo=None)
        self._roll(local)
        p = period_at(local, self.region)
        kg = generated * factor_for(local.year, self.factors).kg_per_kwh
        for b in (self.day, self.month):
            b.imported += imported
            b.exported += exported
            b.generated += generated
            b.avoided_kgco2e += kg
        self.billing.imported[p] += imported
        self.billing.exported[p] += exported
        self.billing.kvarh += kvarh

    def _roll(self, local: dt.datetime) -> None:
        day, month = local.date().isoformat(), local.strftime("%Y-%m")
        known = self.grid_has_export is not False
        grid = self.grid is not None
        # a piece earlier than the current day (another device's poll delivered late across
        # midnight) is booked in the current one: days never roll back
        if day > self.day.key:
            if self.day.key:
                record = self.day.record(known, grid)
                self.yesterday = {"day": self.day.key, **record}
                self.closed.append(("balance_day", self.day.key, record))
            self.day = Balance(day)
        if month > self.month.key:
            if self.month.key:
                self.closed.append(
                    ("balance_month", self.month.key, self.month.record(known, grid))
                )
            self.month = Balance(month)
        if self.bill_settings is None:
            return
        b = self.billing
        if b.start and local.date() < dt.date.fromisoformat(b.end):
            return
        if b.start:
            self._close_period()
        start, end = billing_period(
            local.date(), self.bill_settings.cut_off_day, list(self.bill_settings.reading_dates)
        )
        self.billing = BillingState(start.isoformat(), end.isoformat())

    def _close_period(self) -> None:
        """The billing period ended: its bill goes to the history, the credits roll on."""
        s, b = self.bill_settings, self.billing
        assert s is not None
        bill, left, surplus = self._bill(None)
        record: dict[str, Any] = {
            "imported_kwh": dict(b.imported),
            "exported_kwh": dict(b.exported),
            "kvarh": b.kvarh,
            "peak_kw": dict(b.peak_kw),
            "bill": bill.as_dict() if bill is not None else None,
            "error": self.bill_error,
        }
        self.closed.append(("bill", b.start, record))
        self.last_bill = {"start": b.start, **record}
        self.closed_periods.append(b.start)
        if any(v > 0 for v in surplus.values()):
            left.append(Credit(b.start, dict(surplus)))
        self.credits = expire_credits(left, self.closed_periods)
        self.demand.new_billing_period()

    # --- the bill ------------------------------------------------------------------------

    def _bill(self, now: float | None) -> tuple[Bill | None, list[Credit], dict[str, float]]:
        """The current period's bill (projected to its end when ``now`` is given)."""
        s, b = self.bill_settings, self.billing
        assert s is not None
        billed, left, surplus = net_energy(b.imported, b.exported, self.credits, s.net_metering)
        start, end = dt.date.fromisoformat(b.start), dt.date.fromisoformat(b.end)
        usage = Usage(
            start,
            end,
            billed,
            b.kvarh,
            dict(b.peak_kw),
            has_punta(start, end, self.region),
            pf_kwh=sum(b.imported.values()),
        )
        if now is not None:
            begun = dt.datetime.combine(start, dt.time())
            usage = project(
                usage, dt.datetime.fromtimestamp(now, self.tz).replace(tzinfo=None), begun
            )
        last_day = end - dt.timedelta(days=1)
        prices = s.prices.row(s.division, last_day.strftime("%Y-%m"))
        try:
            bill = compute_bill(
                usage,
                prices,
                s.pf_threshold_pct,
                s.pf_decimals,
                s.pf_max_surcharge_pct,
                s.pf_base,
            )
        except ValueError as exc:  # BillingPeriodError: said, never a wrong amount
            self.bill_error = str(exc)
            return None, left, surplus
        self.bill_error = None
        return bill, left, surplus

    def bill(self, now: float) -> tuple[Bill | None, Bill | None]:
        """(the bill so far, its projection to the period's end); (None, None) without a
        bill configured or before the first reading."""
        if self.bill_settings is None or not self.billing.start:
            return None, None
        so_far, _, _ = self._bill(None)
        projected, _, _ = self._bill(now)
        return so_far, projected

    # --- publishing ----------------------------------------------------------------------

    def values(self, now: float) -> tuple[dict[str, float | None], dict[str, str], dict[str, Any]]:
        """(values, quality flags, the bill as the paper shows it) for the site message."""
        known = self.grid_has_export is not False
        grid = self.grid is not None
        why = "no_grid_meter" if not grid else "no_export_register"
        out: dict[str, float | None] = {}
        quality: dict[str, str] = {}
        for span, bal in (("today", self.day), ("month", self.month)):
            for name, v in bal.record(known, grid).items():
                metric = _balance_name(name, span)
                out[metric] = v
                # a share is also null without generation: that is no missing register
                open_ = v is None and not (known and grid)
                if open_ and ("pct" not in name or bal.generated > 0):
                    quality[metric] = why
        if self.yesterday is not None:
            for name, v in self.yesterday.items():
                if name != "day":
                    out[_balance_name(name, "yesterday")] = v
        extra: dict[str, Any] = {}
        so_far, projected = self.bill(now)
        if self.bill_settings is not None and self.billing.start:
            b = self.billing
            out["bill_period_days"] = float(
                (dt.date.fromisoformat(b.end) - dt.date.fromisoformat(b.start)).days
            )
            out["bill_credit_kwh"] = round(math.fsum(sum(c.kwh.values()) for c in self.credits), 6)
            if so_far is None:
                quality["bill_total_mxn"] = "bad_billing_period"
                extra["bill"] = {"error": self.bill_error}
            else:
                for line in so_far.lines:
                    out[f"bill_{line.key}_mxn"] = _num(line.amount)
                out["bill_energy_kwh"] = float(
                    sum(so_far.line(f"energy_{p}").quantity or 0 for p in PERIODS)
                )
                out["bill_capacity_kw"] = _num(so_far.line("capacity").quantity)
                out["bill_distribution_kw"] = _num(so_far.line("distribution").quantity)
                out["bill_subtotal_mxn"] = _num(so_far.subtotal)
                out["bill_total_mxn"] = _num(so_far.total)
                out["bill_projected_total_mxn"] = _num(projected.total if projected else None)
                for flag in so_far.flags:
                    quality["bill_total_mxn"] = flag  # no_prices or example_prices
                extra["bill"] = so_far.as_dict()
                if projected is not None:
                    extra["bill"]["projected_total"] = _num(projected.total)
        return out, quality, extra

    # --- persistence ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "trackers": {k: [t.last, t.last_ts] for k, t in self.trackers.items()},
            "reactive_power": self.reactive_power.last,
            "demand": self.demand.saved(),
            "day": asdict(self.day),
            "month": asdict(self.month),
            "yesterday": self.yesterday,
            "billing": asdict(self.billing),
            "credits": [asdict(c) for c in self.credits],
            "closed_periods": self.closed_periods,
            "last_bill": self.last_bill,
            "grid_has_export": self.grid_has_export,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        for k, (last, last_ts) in state["trackers"].items():
            t = self.trackers.setdefault(k, CounterTracker())
            t.last, t.last_ts = last, last_ts
        rp = state.get("reactive_power")
        self.reactive_power.last = (rp[0], rp[1]) if rp else None
        self.demand = DemandState.restored(state["demand"])
        self.day = Balance(**state["day"])
        self.month = Balance(**state["month"])
        self.yesterday = state.get("yesterday")
        self.billing = BillingState(**state["billing"])
        self.credits = [Credit(**c) for c in state.get("credits", [])]
        self.closed_periods = list(state.get("closed_periods", []))
        self.last_bill = state.get("last_bill")
        if self.grid_has_export is None:
            self.grid_has_export = state.get("grid_has_export")


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def _balance_name(name: str, span: str) -> str:
    """``import_kwh`` + ``today`` → ``site_import_today_kwh``."""
    stem, _, unit = name.rpartition("_")
    return f"site_{stem}_{span}_{unit}"


def build_site(loaded: LoadedConfig, factors: list[Factor] = MEXICO_SEN) -> SiteMetrics | None:
    """The site aggregator a config asks for: None when no device has a grid or generation
    role and no bill is configured."""
    cfg = loaded.config
    roles: dict[str, Role] = {n: e.config.role for n, e in loaded.entries.items()}
    if cfg.bill is None and all(r == "load" for r in roles.values()):
        return None
    grid = next((n for n, r in roles.items() if r == "grid"), None)
    grid_has_export = None
    if grid is not None:
        quantities = published(loaded.entries[grid])
        if quantities is not None:
            grid_has_export = "energy_export_kwh" in quantities
    settings = None
    if cfg.bill is not None:
        b = cfg.bill
        settings = BillSettings(
            prices=load_prices(b.prices),  # resolved against the config's folder at load
            division=b.division,
            cut_off_day=b.cut_off_day,
            reading_dates=tuple(b.reading_dates or ()),
            net_metering=b.net_metering,
            pf_base=b.pf_base,
            pf_threshold_pct=cfg.metrics.pf_threshold_pct,
            pf_decimals=cfg.metrics.pf_decimals,
            pf_max_surcharge_pct=cfg.metrics.pf_max_surcharge_pct,
        )
    return SiteMetrics(
        roles,
        {n: e.config.metrics.generation_counter for n, e in loaded.entries.items()},
        cfg.metrics.timezone,
        cfg.metrics.region,
        factors,
        settings,
        grid_has_export,
    )

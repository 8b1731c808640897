"""The metrics stage of the pipeline: readings in, metric values and events out, state kept.

For each device whose readings carry electrical quantities it runs
:class:`~vatio.agent.metrics.electrical.ElectricalMetrics`; for PM or CO2,
:class:`~vatio.agent.metrics.air.AirQualityMetrics`. State goes to a small SQLite file in the
agent's state directory each time metrics are published and at shutdown, so a restart loses
no accumulated energy and does not reset a demand window. (Readings between the last save and
a power cut are re-counted from the meter's counter at the next reading, so energy from
counters is not lost either; only integrated power is.)

Air metrics cover PM, the NOM-172 gases and CO2. A device with ``humidity_from`` also gets a
humidity-corrected PM2.5 from another device's latest RH (:mod:`~vatio.agent.metrics.sources`,
the only metric that crosses devices).

Readings taken while the wall clock is not trusted (``observe(result, trusted=False)``, see
common/timesync.py) are not filed by that clock: electrical energy is measured at once and
held (:class:`~vatio.agent.metrics.electrical.HeldEnergy`), air-quality readings are kept (one a
minute, a week at most), and both are filed at their true time when the first trusted
reading links the steady clock to the synchronised one. Meanwhile the device publishes no
metrics (:meth:`MetricsEngine.values` is empty) and its state is not saved, so nothing is
published or stored under a wrong day, month, tariff period or 15-minute block.

Each electrical device also projects its current block's demand
(:mod:`vatio.agent.metrics.demand_alarm`): ``demand_projected_kw``, and the
``demand_projected_high`` / ``demand_projected_ok`` events against its ``demand_limit_kw``,
with their figures as event fields (the third item of an event tuple).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vatio.agent.config import DeviceMetricsConfig, MetricsConfig
from vatio.agent.metrics.air import AirQualityMetrics
from vatio.agent.metrics.demand_alarm import DemandAlarm, Event
from vatio.agent.metrics.electrical import ElectricalMetrics, PowerFactorRule
from vatio.agent.metrics.emissions import MEXICO_SEN, Factor
from vatio.agent.metrics.site import SITE_DEVICE, SiteMetrics
from vatio.agent.metrics.sources import CORRECTED, HumiditySources
from vatio.agent.storage import (
    StorageHealth,
    explain,
    open_db,
    read_only_query,
    transaction,
)
from vatio.common import clock
from vatio.drivers.reading import PollResult

log = logging.getLogger(__name__)

ELECTRICAL = {"active_power_w", "energy_import_kwh"}
AIR = {"pm2_5_ugm3", "pm10_ugm3", "co2_ppm", "pm2_5_cf1_ugm3", "o3_ppb", "no2_ppb", "so2_ppb",
       "co_ppm"}  # fmt: skip
AIR_HOLD_EVERY_S = 60.0  # air readings kept while the clock is untrusted: one a minute …
AIR_HOLD_MAX = 7 * 1440  # … for a week at most (the oldest go first: they are means)


class MetricsStore:
    """device → JSON state, and the history of closed days and months, in SQLite (WAL);
    one small transaction per publish.

    A disk that refuses writes (full, read-only) is reported to ``health`` and tried again
    at the next save; the engine keeps its state and closed periods in memory meanwhile. A
    file that cannot be opened for writing at start is read without writing, so the
    accumulated state is not lost, and opened for writing as soon as the disk allows."""

    def __init__(self, path: Path, health: StorageHealth | None = None) -> None:
        self.path = path
        self.health = health or StorageHealth()
        self._db: sqlite3.Connection | None = None
        self._saved: dict[str, dict[str, object]] = {}  # read without writing, at start
        if not self._open():
            self._saved = _read_only_states(path)

    def _open(self) -> bool:
        try:
            db, _ = open_db(
                self.path,
                [
                    "CREATE TABLE IF NOT EXISTS state (device TEXT PRIMARY KEY, json TEXT)",
                    "CREATE TABLE IF NOT EXISTS history (device TEXT, kind TEXT, key TEXT,"
                    " json TEXT, PRIMARY KEY (device, kind, key))",
                ],
                synchronous="FULL",
            )
        except (sqlite3.Error, OSError) as exc:
            self.health.failed("metrics", self.path, explain(self.path, exc))
            return False
        self._db = db
        return True

    def load(self, device: str) -> dict[str, object] | None:
        if self._db is None:
            return self._saved.get(device)
        row = self._db.execute("SELECT json FROM state WHERE device = ?", (device,)).fetchone()
        return json.loads(row[0]) if row else None

    def save(
        self,
        states: dict[str, dict[str, object]],
        history: list[tuple[str, str, str, dict[str, Any]]] = [],  # noqa: B006 (read only)
    ) -> bool:
        """Save the states and closed periods (device, "day"|"month", key, record) in one
        transaction, so a crash between the two cannot lose a closed day or book it twice.
        False if the disk refused: nothing was written, try again later."""
        if self._db is None and not self._open():
            return False
        assert self._db is not None
        try:
            with transaction(self._db):
                self._db.executemany(
                    "INSERT INTO state VALUES (?, ?)"
                    " ON CONFLICT (device) DO UPDATE SET json = excluded.json",
                    [(d, json.dumps(s)) for d, s in states.items()],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?)",
                    [(d, kind, key, json.dumps(r)) for d, kind, key, r in history],
                )
        except sqlite3.Error as exc:
            self.health.failed("metrics", self.path, explain(self.path, exc))
            return False
        self.health.ok("metrics", self.path)
        return True

    def history(
        self, kind: str, device: str | None = None
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """Closed days or months as (device, key, record), oldest first."""
        if self._db is None:
            return []
        rows = self._db.execute(
            "SELECT device, key, json FROM history WHERE kind = ? AND (? IS NULL OR device = ?)"
            " ORDER BY key, device",
            (kind, device, device),
        ).fetchall()
        return [(d, k, json.loads(j)) for d, k, j in rows]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _read_only_states(path: Path) -> dict[str, dict[str, object]]:
    """The saved states of a file that cannot be opened for writing (a read-only disk)."""
    if not path.exists():
        return {}
    rows = read_only_query(path, "SELECT device, json FROM state")
    if rows is None:
        log.error("cannot read the saved metrics state in %s: energy and demand restart", path)
        return {}
    return {d: json.loads(j) for d, j in rows}


@dataclass
class DeviceMetrics:
    electrical: ElectricalMetrics | None = None
    air: AirQualityMetrics | None = None
    settings: DeviceMetricsConfig = field(default_factory=DeviceMetricsConfig)
    alarm: DemandAlarm | None = None  # the projected demand, with electrical
    # air readings (steady time, values) waiting for a trusted clock
    air_held: deque[tuple[float, dict[str, float | None]]] | None = None

    @property
    def holding(self) -> bool:
        return self.air_held is not None or (
            self.electrical is not None and self.electrical.held is not None
        )


class MetricsEngine:
    def __init__(
        self,
        cfg: MetricsConfig,
        devices: dict[str, DeviceMetricsConfig],
        store: MetricsStore | None = None,
        site: SiteMetrics | None = None,
    ) -> None:
        self.cfg = cfg
        self.settings = devices
        self.store = store
        self.factors: list[Factor] = (
            [
                Factor(f.year, f.kg_per_kwh, f.source)
                for f in sorted(cfg.emission_factors, key=lambda f: f.year)
            ]
            if cfg.emission_factors
            else MEXICO_SEN
        )
        self.devices: dict[str, DeviceMetrics] = {}
        self.humidity = HumiditySources()  # latest RH per device, for humidity_from
        self.site: SiteMetrics | None = None
        if site is not None:
            self.attach_site(site)

    def attach_site(self, site: SiteMetrics) -> None:
        """Feed ``site`` (the balance and bill, agent/metrics/site.py) every poll, and keep its
        state with the devices'; its saved state, if any, is restored now."""
        self.site = site
        saved = self.store.load(SITE_DEVICE) if self.store is not None else None
        if saved and "site" in saved:
            site.restore(saved["site"])  # type: ignore[arg-type]

    def _device(self, name: str, result: PollResult) -> DeviceMetrics:
        dm = self.devices.get(name)
        if dm is None:
            settings = self.settings.get(name, DeviceMetricsConfig())
            dm = self.devices[name] = DeviceMetrics(settings=settings)
            saved = self.store.load(name) if self.store else None
            saved = saved or {}
            if ELECTRICAL & result.values.keys():
                dm.electrical = ElectricalMetrics(
                    self.cfg.timezone,
                    self.cfg.region,
                    self.factors,
                    PowerFactorRule(
                        self.cfg.pf_threshold_pct,
                        self.cfg.pf_decimals,
                        self.cfg.pf_max_surcharge_pct,
                    ),
                    settings.max_power_kw,
                    settings.energy_source,
                )
                if "electrical" in saved:
                    dm.electrical.restore(saved["electrical"])  # type: ignore[arg-type]
                dm.alarm = DemandAlarm(settings.demand_limit_kw)
                if "demand_alarm" in saved:
                    dm.alarm.restore(saved["demand_alarm"])  # type: ignore[arg-type]
            if AIR & result.values.keys():
                dm.air = AirQualityMetrics(
                    self.cfg.ias_stage,
                    self.cfg.ias_adjustment,
                    co2_limit_ppm=self.cfg.co2_limit_ppm,
                    indices_from_corrected=self.cfg.pm2_5_indices_from_corrected,
                )
                if "air" in saved:
                    dm.air.restore(saved["air"])  # type: ignore[arg-type]
        return dm

    def observe(
        self, result: PollResult, trusted: bool = True, mono: float | None = None
    ) -> tuple[bool, list[Event], dict[str, str]]:
        """Feed a poll. Returns (a 15-minute block closed, events as (kind, message), quality
        flags for the reading: counter resets, rollovers, negative import, clock steps).

        ``trusted``: the clock that stamped ``result.ts`` is synchronised. ``mono``: the
        reading's steady time (:func:`vatio.common.clock.monotonic`), needed only while the clock
        is untrusted and at the first trusted reading after; by default it is derived from
        now, as the pipeline calls this right after the poll."""
        self.humidity.observe(result)  # a humidity source need not have metrics of its own
        if not result.ok or not self.settings.get(result.device, DeviceMetricsConfig()).enabled:
            return False, [], {}
        dm = self._device(result.device, result)
        corrected = self.humidity.correct(dm.settings, result.values, result.ts)
        if corrected is not None:  # next to the raw PM2.5 in the telemetry (sources.py)
            result.values[CORRECTED] = corrected.value
        if mono is None:
            mono = result.mono
        if (not trusted or dm.holding) and mono is None:
            # the poll started at result.ts; a clock step during it must not move it far
            mono = clock.monotonic() - min(max(clock.now() - result.ts, 0.0), 60.0)
        events: list[Event] = []
        closed = None
        if dm.electrical is not None:
            closed = dm.electrical.observe(result.values, result.ts, mono, trusted)
            limit = dm.settings.demand_limit_kw
            if closed is not None and limit is not None and closed > limit:
                events.append(
                    (
                        "demand_high",
                        f"15-minute demand {closed:.1f} kW above the {limit:g} kW limit",
                    )
                )
            if trusted and dm.alarm is not None and dm.electrical.held is None:
                alarm = self._project(dm.electrical, dm.alarm, result.ts)
                if alarm is not None:
                    events.append(alarm)
        if dm.air is not None:
            if not trusted:
                assert mono is not None
                held = dm.air_held
                if held is None:
                    held = dm.air_held = deque(maxlen=AIR_HOLD_MAX)
                if not held or mono - held[-1][0] >= AIR_HOLD_EVERY_S:
                    held.append((mono, result.values))
            else:
                if dm.air_held is not None:  # file what was held at its true time first
                    assert mono is not None
                    for m, values in dm.air_held:
                        events += dm.air.observe(values, result.ts - (mono - m))
                    dm.air_held = None
                events += dm.air.observe(result.values, result.ts)
        flags = dict(dm.electrical.flags) if dm.electrical is not None else {}
        if corrected is not None and corrected.flag:
            flags[CORRECTED] = corrected.flag
        if self.site is not None:  # after the device's own metrics: they never wait for it
            self.site.observe(result.device, result.values, result.ts, trusted)
        return closed is not None, events, flags

    @staticmethod
    def _project(em: ElectricalMetrics, alarm: DemandAlarm, now: float) -> Event | None:
        """Project the current block at ``now``; an alarm event when one is due."""
        d = em.demand
        current = d.block_start is not None and d.block_start <= now < d.block_start + 900
        power = alarm.power.update(now, d.booked_kwh)
        if power is None:
            return None  # the first reading: no power measured yet
        a = alarm.update(now, d.block_kwh if current else 0.0, power)
        return None if a is None else a.event()

    def holding(self) -> list[str]:
        """Devices whose metrics wait for a trusted clock."""
        return [name for name, dm in self.devices.items() if dm.holding]

    def values(self, device: str, now: float) -> dict[str, float | None]:
        dm = self.devices.get(device)
        out: dict[str, float | None] = {}
        if dm is not None and dm.holding:
            return out  # nothing to publish until the clock is trusted: it would be misfiled
        if dm is not None and dm.electrical is not None:
            out.update(dm.electrical.values(now))
            if dm.alarm is not None:
                out["demand_projected_kw"] = dm.alarm.value(now)
        if dm is not None and dm.air is not None:
            out.update(dm.air.values(now))
        return out

    def extras(self, device: str, now: float) -> dict[str, Any]:
        """What a metrics message carries besides ``values``: ``quality`` (why a value is
        null, e.g. ``insufficient_hours``) and ``ias_mx_pollutant`` (which pollutant sets
        the overall IAS; several, comma-separated, on a tie)."""
        dm = self.devices.get(device)
        if dm is None or dm.holding or dm.air is None:
            return {}
        report = dm.air.report(now)
        extra: dict[str, Any] = {}
        if report.quality:
            extra["quality"] = report.quality
        if report.critical:
            extra["ias_mx_pollutant"] = ",".join(report.critical)
        return extra

    def save(self) -> None:
        if self.store is None:
            for dm in self.devices.values():
                if dm.electrical is not None:
                    dm.electrical.closed.clear()  # no history kept without a store
            if self.site is not None:
                self.site.closed.clear()
            return
        states: dict[str, dict[str, object]] = {}
        history: list[tuple[str, str, str, dict[str, Any]]] = []
        for name, dm in self.devices.items():
            if dm.holding:  # keep the last trusted state: a restart re-counts from there
                continue
            s: dict[str, object] = {}
            if dm.electrical is not None:
                s["electrical"] = dm.electrical.state()
                history += [(name, *c) for c in dm.electrical.closed]
            if dm.alarm is not None:
                s["demand_alarm"] = dm.alarm.state()
            if dm.air is not None:
                s["air"] = dm.air.state()
            states[name] = s
        if self.site is not None:
            states[SITE_DEVICE] = {"site": self.site.state()}
            history += [(SITE_DEVICE, *c) for c in self.site.closed]
        if states and not self.store.save(states, history):
            return  # the disk refused: closed periods stay in memory for the next save
        for dm in self.devices.values():
            if dm.electrical is not None:
                dm.electrical.closed.clear()
        if self.site is not None:
            self.site.closed.clear()

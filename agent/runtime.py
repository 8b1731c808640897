"""Wires a validated config into a running agent: buses, devices, scheduler, outputs.

Bus timing is derived here when the config leaves it out. pymodbus defaults (3 s timeout,
3 retries) make one dead device cost 12 s per read (stack-notes §2.4), which would stall a
1 s schedule; so the timeout follows the shortest poll interval on the bus, and on a serial
line it also covers the wire time of the longest planned request at the line's baud rate.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vatio.agent import sdnotify
from vatio.agent.buses import BusTiming as BusTiming  # re-exported: they lived here
from vatio.agent.buses import build_bus as build_bus
from vatio.agent.buses import bus_link as bus_link
from vatio.agent.buses import bus_timing as bus_timing
from vatio.agent.buses import vatio_version as vatio_version
from vatio.agent.config import LoadedConfig
from vatio.agent.fleetinfo import status_extras
from vatio.agent.httpstatus import PortTaken, StatusServer, json_body, prometheus
from vatio.agent.livestatus import LiveStatus
from vatio.agent.messages import Message, MessageBuilder
from vatio.agent.metrics.engine import MetricsEngine, MetricsStore
from vatio.agent.metrics.site import SITE_DEVICE, build_site
from vatio.agent.outputs.mqtt import MqttOutput
from vatio.agent.scheduler import (
    BusWorker,
    DeviceStats,
    ScheduledDevice,
    Scheduler,
    next_tick,
    stagger,
    stagger_slots,
)
from vatio.agent.seqstore import SeqStore
from vatio.agent.spool import Spool
from vatio.agent.storage import DISK_STATES, StorageHealth
from vatio.agent.timetrust import QUALITY_KEY, UNSYNCHRONISED, ClockTrust
from vatio.common import clock
from vatio.common.i18n import tr
from vatio.drivers.base import Driver
from vatio.drivers.i2c.transport import TransportOpener
from vatio.drivers.modbus.transport import ModbusTransport
from vatio.drivers.plugin import attach_state
from vatio.drivers.reading import PollResult

if TYPE_CHECKING:  # imported only where configured, to keep the agent small
    from vatio.agent.homeassistant import HomeAssistant
    from vatio.agent.outputs.influxdb import InfluxOutput

log = logging.getLogger(__name__)


def build_scheduler(
    loaded: LoadedConfig, sink: _Pipeline, i2c_opener: TransportOpener | None = None
) -> tuple[Scheduler, list[ModbusTransport], list[Driver]]:
    workers = []
    transports = []
    drivers: list[Driver] = []
    slots = stagger_slots(len(loaded.devices))
    for bus_name in loaded.config.buses:
        members = {n: e for n, e in loaded.entries.items() if e.config.bus == bus_name}
        if not members:
            continue
        bus = build_bus(bus_name, loaded, i2c_opener)
        if isinstance(bus, ModbusTransport):
            transports.append(bus)
        scheduled = []
        for n, entry in members.items():
            try:
                driver = entry.plugin.create(n, bus, entry.options)
                attach_state(driver, Path(loaded.config.state_dir))
            except Exception as exc:  # a bug in a (third-party) driver must not stop the rest
                log.error(
                    "device '%s': driver '%s' failed to start (%r); it is skipped, the other "
                    "devices run. Report this to the driver's authors.",
                    n, entry.config.driver, exc,
                )  # fmt: skip
                continue
            drivers.append(driver)
            unit = getattr(entry.options, "unit", None)
            scheduled.append(
                ScheduledDevice(
                    driver=driver,
                    interval=entry.config.interval,
                    where=f"bus '{bus_name}' {bus.describe()}"
                    + (f" unit {unit}" if unit is not None else ""),
                    phase=stagger(n, entry.config.interval, slots),
                )
            )
        workers.append(BusWorker(bus_name, scheduled, sink))
    return Scheduler(workers), transports, drivers


@dataclass
class Handover:
    """What a reloaded agent leaves to the next: the sequence counters (same state_dir) and
    the messages only memory held because the disk refused them."""

    messages: list[Message]
    seq: SeqStore


class _Pipeline:
    """The scheduler's sink: readings become contract messages for every output, and feed
    the metrics engine (whose block closings and threshold events are published at once)."""

    def __init__(
        self,
        builder: MessageBuilder,
        engine: MetricsEngine | None = None,
        live: LiveStatus | None = None,
    ) -> None:
        self.builder = builder
        self.engine = engine
        self.live = live  # what the status page shows; None when it is off
        self.trust: ClockTrust | None = None  # None: the clock is always trusted
        self.outputs: list[MqttOutput | InfluxOutput] = []
        self._failed_before: set[str] = set()
        self._metrics_failed: set[str] = set()
        self.drivers: dict[str, Driver] = {}  # by device name, for what they say they are
        # location and labels of each device, for its status (agent/fleetinfo.py)
        self.status_extras: dict[str, dict[str, Any]] = {}
        self.device_stats: dict[str, DeviceStats] = {}  # by device name: does it answer?
        self.homeassistant: HomeAssistant | None = None  # MQTT discovery (agent/homeassistant.py)

    def emit(self, msg: Message) -> None:
        for out in self.outputs:
            out.submit(msg)

    def readings(self, result: PollResult) -> None:
        closed = False
        # (kind, message) or (kind, message, fields): agent/metrics/demand_alarm.py's Event
        events: list[tuple[str, str] | tuple[str, str, dict[str, Any]]] = []
        trusted = self.trust.check(result.mono) if self.trust is not None else True
        if not trusted:  # the ts is what an unsynchronised clock said: say so
            result.quality[QUALITY_KEY] = UNSYNCHRONISED
        if self.engine is not None:
            try:
                closed, events, flags = self.engine.observe(result, trusted)
            except Exception:  # a metrics bug must never stop polling or telemetry
                if result.device not in self._metrics_failed:
                    self._metrics_failed.add(result.device)
                    log.exception(
                        "metrics failed for device '%s'; telemetry goes on", result.device
                    )
            else:
                for quantity, flag in flags.items():  # what the reading's values mean
                    result.quality.setdefault(quantity, flag)
        if self.live is not None:
            self.live.reading(result)
        if self.homeassistant is not None:
            self.homeassistant.telemetry(result.device, result.values, result.ok)
        if self.outputs:
            self.emit(self.builder.telemetry(result))
        elif result.ok:
            log.info("%s: %s", result.device, result.values)
        for kind, message, *fields in events:
            self.event(result.device, kind, message, **(fields[0] if fields else {}))
        if closed:  # a 15-minute block just closed: publish its demand now
            self.publish_metrics(result.device, result.ts)

    def publish_metrics(self, device: str, now: float) -> None:
        assert self.engine is not None
        values = self.engine.values(device, now)
        if values:
            if self.live is not None:
                self.live.metrics(device, values, now)
            extra = self.engine.extras(device, now)  # quality, ias_mx_pollutant
            if self.homeassistant is not None:
                self.homeassistant.metrics(device, values)
            self.emit(self.builder.metrics(device, values, now, **extra))

    def publish_site(self, now: float) -> None:
        """The site-level metrics message: balance and running bill (agent/metrics/site.py)."""
        assert self.engine is not None
        site = self.engine.site
        if site is None:
            return
        values, quality, extra = site.values(now)
        if self.live is not None:
            self.live.site(values, extra.get("bill"), now)
        if quality:
            extra["quality"] = quality
        if self.homeassistant is not None:
            self.homeassistant.metrics(SITE_DEVICE, values)
        self.emit(self.builder.metrics(SITE_DEVICE, values, now, **extra))

    def event(self, device: str, kind: str, message: str, **fields: Any) -> None:
        """``fields``: the event's figures, beside ``message`` in its JSON."""
        if self.live is not None:
            self.live.event(device, kind, message, clock.now())
        extra: dict[str, Any] = dict(fields)
        if self.trust is not None and not self.trust.trusted:  # its ts is the untrusted clock's
            extra["quality"] = {QUALITY_KEY: UNSYNCHRONISED}
        self.emit(self.builder.event(device, kind, message, **extra))

    def device_state(self, device: str, state: str, reason: str) -> None:
        extra = dict(self.status_extras.get(device, {}))
        info = getattr(self.drivers.get(device), "info", None)  # optional (drivers/plugin.py)
        if info is not None:
            described = info()
            if described:
                extra["info"] = described
                if self.homeassistant is not None:
                    self.homeassistant.device_info(device, described)
        # degraded but answering (it refuses some values): what it reads is still good
        stats = self.device_stats.get(device)
        extra["answering"] = state == "online" or (stats is not None and stats.partial)
        self.emit(self.builder.status(device, state, reason=reason, **extra))
        if state == "degraded":
            self.event(device, "device_degraded", reason)
        elif device in self._failed_before:
            self.event(device, "device_recovered", reason)
        if state == "degraded":
            self._failed_before.add(device)


class Agent:
    """One running agent. ``await agent.run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        loaded: LoadedConfig,
        handed_over: Handover | None = None,
        i2c_opener: TransportOpener | None = None,
    ) -> None:
        """``handed_over``: what the agent this one replaces (a reload) leaves to it."""
        self.loaded = loaded
        self.handover: Handover | None = None  # what this agent leaves to the next one
        cfg = loaded.config
        self.state_dir = Path(cfg.state_dir)
        # one health for every file of the agent: one line when the disk refuses, one when
        # it takes writes again (agent/storage.py)
        if handed_over is not None:  # same state_dir (a reload cannot move it)
            self.storage = handed_over.seq.health
            self.seq = handed_over.seq
        else:
            self.storage = StorageHealth()
            self.seq = SeqStore(_writable_dir(self.state_dir) / "seq.sqlite", health=self.storage)
        self.builder = MessageBuilder(cfg.site, cfg.agent_id, self.seq, self.storage)
        self.engine: MetricsEngine | None = None
        if cfg.metrics.enabled:
            self.engine = MetricsEngine(
                cfg.metrics,
                {n: d.metrics for n, d in loaded.devices.items()},
                MetricsStore(self.state_dir / "metrics.sqlite", self.storage),
            )
            # the site's balance and bill, with the engine's emission factors
            site = build_site(loaded, self.engine.factors)
            if site is not None:
                self.engine.attach_site(site)
        self.pipeline = _Pipeline(
            self.builder, self.engine, LiveStatus() if cfg.http is not None else None
        )
        self.clock_trust = ClockTrust(cfg.time, on_change=self._clock_changed)
        self.pipeline.trust = self.clock_trust
        self.scheduler, self.transports, self.drivers = build_scheduler(
            loaded, self.pipeline, i2c_opener
        )
        self.pipeline.drivers = {d.name: d for d in self.drivers}
        self.pipeline.status_extras = {n: status_extras(cfg, n) for n in loaded.devices}
        self.pipeline.device_stats = {d.driver.name: d.stats for d in self.scheduler.devices}
        self.mqtt: MqttOutput | None = None
        self.spool: Spool | None = None
        if cfg.outputs.mqtt is not None:
            self.spool = Spool(
                cfg.spool.path or self.state_dir / "spool.sqlite",
                max_bytes=int(cfg.spool.max_mb * 2**20),
                max_age_s=cfg.spool.max_age,
                durability=cfg.spool.durability,
                health=self.storage,
            )
            for msg in handed_over.messages if handed_over else []:
                self.spool.put(msg)
            self.mqtt = MqttOutput(
                cfg.outputs.mqtt,
                self.spool,
                cfg.outputs.mqtt.client_id or f"vatio-{cfg.agent_id}",
                online=self._online,
                offline=lambda: self.builder.status(
                    cfg.agent_id, "offline", **status_extras(cfg, None)
                ),
                commit_interval=cfg.spool.commit_interval,
                on_dropped=self._spool_dropped,
            )
            self.pipeline.outputs.append(self.mqtt)
            # Home Assistant discovery, or the clearing of what an earlier run announced
            from vatio.agent.homeassistant import build as build_homeassistant

            self.pipeline.homeassistant = build_homeassistant(
                loaded, self.drivers, self.mqtt.submit, vatio_version()
            )
        self.influx: InfluxOutput | None = None
        if cfg.outputs.influxdb is not None:
            from vatio.agent.outputs.influxdb import InfluxOutput

            self.influx_spool = Spool(
                self.state_dir / "influx-spool.sqlite",
                max_bytes=int(cfg.spool.max_mb * 2**20),
                max_age_s=cfg.spool.max_age,
                durability=cfg.spool.durability,
                health=self.storage,
                name="InfluxDB spool",
            )
            self.influx = InfluxOutput(
                cfg.outputs.influxdb, self.influx_spool, cfg.spool.commit_interval
            )
            self.pipeline.outputs.append(self.influx)
        self.started = clock.now()
        self.reloading = False
        # the running config's hash and origin (agent/remote/store.py), for the status
        self.config_info: dict[str, Any] | None = None
        self.http: StatusServer | None = None
        if cfg.http is not None:
            self.http = StatusServer(
                cfg.http.host,
                cfg.http.port,
                {
                    "/": self._status_page,
                    "/api/status": self._status_json,
                    "/healthz": self._healthz,
                    "/metrics": self._metrics,
                },
            )

    def _spool_dropped(self, n: int) -> None:
        assert self.spool is not None
        total = self.spool.dropped
        log.warning(
            "spool full (spool.max_mb / spool.max_age): dropped the %d oldest message(s), "
            "%d so far",
            n,
            total,
        )
        agent_id = self.loaded.config.agent_id
        self.pipeline.event(agent_id, "spool_dropped", f"{n} oldest message(s) dropped")

    def _online(self) -> Message:
        cfg = self.loaded.config
        return self.builder.status(
            cfg.agent_id,
            "online",
            version=vatio_version(),
            since=self.started,
            devices=sorted(self.loaded.devices),
            backlog=self.spool.backlog if self.spool else 0,
            spool_dropped=self.spool.dropped if self.spool else 0,
            clock=self.clock_trust.status(),
            storage=self.storage.problem or "ok",
            **self._config_fields(),
            **status_extras(cfg, None),
        )

    def _config_fields(self) -> dict[str, Any]:
        return {"config": self.config_info} if self.config_info is not None else {}

    def _clock_changed(self) -> None:
        """The clock became a problem, or stopped being one: refresh the retained status."""
        for out in self.pipeline.outputs:
            out.submit(self._online())

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and publish until ``stop`` is set. Set :attr:`reloading` before ``stop`` to
        hand over to another agent (SIGHUP): everything buffered is committed to the spool,
        and no ``offline`` status is published."""
        if self.http is not None:
            try:
                await self.http.start()  # first: a port already taken stops the start, clearly
            except PortTaken:
                await self._close()
                raise
        polling = asyncio.create_task(self.scheduler.run(), name="scheduler")
        workers: list[asyncio.Task[None]] = [polling]
        if self.mqtt is not None:
            workers.append(asyncio.create_task(self.mqtt.run(), name="mqtt"))
            workers.append(asyncio.create_task(self._status_loop(), name="status"))
        if self.influx is not None:
            workers.append(asyncio.create_task(self.influx.run(), name="influxdb"))
        if self.engine is not None:
            workers.append(asyncio.create_task(self._metrics_loop(), name="metrics"))
        period = sdnotify.watchdog_period()
        if period is not None:
            workers.append(asyncio.create_task(self._watchdog_loop(period), name="watchdog"))
        sdnotify.notify(f"READY=1\nSTATUS=polling {len(self.scheduler.devices)} device(s)")
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([*workers, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._shutdown(polling, workers[1:])
            stopper.cancel()
        for t in workers:  # a worker that ended by itself crashed: report it to the caller
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]

    async def _watchdog_loop(self, period: float) -> None:
        """Vouch for the agent to systemd (``WatchdogSec=``) while every device loop goes
        round; a hung poll, or a blocked event loop, stops the keepalives and systemd
        restarts the agent."""
        said = False
        while True:
            stalled = self.scheduler.stalled()
            if not stalled:
                stats = self.stats()
                sdnotify.notify(
                    f"WATCHDOG=1\nSTATUS={stats['polls']} polls, {stats['failed_polls']} failed"
                    + (f", {stats['backlog']} in the spool" if "backlog" in stats else "")
                )
                said = False
            elif not said:
                log.error(
                    "device loop(s) %s stopped going round: no watchdog keepalive, so systemd "
                    "restarts the agent",
                    ", ".join(stalled),
                )
                said = True
            await asyncio.sleep(period)

    async def _status_loop(self, every: float = 60.0) -> None:
        """Refresh the retained agent status (with the spool's backlog) every minute."""
        while True:
            await asyncio.sleep(every)
            self.clock_trust.check()  # the grace runs out even when no device answers
            for out in self.pipeline.outputs:
                out.submit(self._online())
            if self.pipeline.homeassistant is not None and self.mqtt and self.mqtt.stats.connected:
                self.pipeline.homeassistant.delivered()  # retained clears go out on connect

    async def _metrics_loop(self) -> None:
        """Publish every device's metrics on the configured cadence, then persist the state."""
        assert self.engine is not None
        interval = self.loaded.config.metrics.interval
        while True:
            await clock.sleep(next_tick(clock.now(), interval) - clock.now())
            now = clock.now()
            try:
                for device in list(self.engine.devices):
                    self.pipeline.publish_metrics(device, now)
                self.pipeline.publish_site(now)
                self.engine.save()
            except Exception:  # keep polling and telemetry alive; say what broke
                log.exception("publishing or saving metrics failed")

    async def _shutdown(
        self, polling: asyncio.Task[None], outputs: list[asyncio.Task[None]]
    ) -> None:
        """Stop polling, deliver what is queued, say offline, and close everything."""
        sdnotify.notify("STOPPING=1")
        if self.http is not None:
            await self.http.close()
        self.scheduler.stop()
        if not await self.scheduler.settle(timeout=3.0):
            log.info("a poll still waited for its device 3 s after the stop request: cut off")
        polling.cancel()
        _, pending = await asyncio.wait([polling], timeout=5.0)
        if pending:
            log.warning("polling did not stop within 5 s of the stop request")
        if self.mqtt is not None:
            if not await self.mqtt.drain(timeout=3.0):
                log.info("%d message(s) stay in the spool for the next start", self.mqtt.backlog)
            if not self.reloading:
                await self.mqtt.announce_offline()
        if self.influx is not None and not await self.influx.drain(timeout=3.0):
            log.info("%d message(s) stay in the InfluxDB spool", self.influx.backlog)
        for t in outputs:
            t.cancel()
        if outputs:
            await asyncio.wait(outputs, timeout=5.0)
        await self._close()
        log.info(
            "%s: %s",
            "handed over" if self.reloading else "stopped",
            " ".join(f"{k}={v}" for k, v in self.stats().items()),
        )

    async def _close(self) -> None:
        """Commit and close what the agent holds: spools, metrics state, buses, ports."""
        held: list[Message] = []
        if self.spool is not None:
            # commits what is buffered and the last acknowledgements
            held = await self.spool.close(hand_over=self.reloading)
        if self.influx is not None:
            await self.influx_spool.close()
        if self.engine is not None:
            try:
                self.engine.save()  # a full disk is handled inside; this is for a bug
            except Exception:
                log.exception("saving the metrics state failed")
            if self.engine.store is not None:
                self.engine.store.close()
        for transport in self.transports:
            transport.close()
        for d in self.drivers:
            closer = getattr(d, "close", None)  # drivers that own a port (UART sensors)
            if closer is not None:
                try:
                    await closer()
                except Exception as exc:  # one driver's port must not keep the rest open
                    log.warning("device '%s': closing failed: %s", d.name, exc)
        if self.reloading:
            # the counters stay open: on a disk that refuses writes, a new store would have
            # to skip to the stored ceiling, which it cannot raise (agent/seqstore.py)
            self.handover = Handover(held, self.seq)
        else:
            self.seq.close()

    def _problems(self) -> list[str]:
        problems = []
        stalled = self.scheduler.stalled()
        if stalled:
            problems.append(f"device loop(s) not going round: {', '.join(stalled)}")
        if self.mqtt is not None and not self.mqtt.stats.connected:
            problems.append(f"MQTT broker not connected: {self.mqtt.stats.last_error}")
        self.clock_trust.check()
        clock_problem = self.clock_trust.problem()
        if clock_problem is not None:  # 503: metrics wait, and only a time source fixes it
            problems.append(clock_problem)
        if self.storage.failing:
            problems.append(f"cannot store: {self.storage.problem}")
        return problems

    async def _healthz(self) -> tuple[int, str, str]:
        problems = self._problems()
        body = {
            "status": "unhealthy" if problems else "ok",
            "problems": problems,
            "devices": {d.driver.name: d.stats.state for d in self.scheduler.devices},
            "clock": self.clock_trust.status(),
            **{k: v for k, v in self.stats().items() if k in ("backlog", "influx_backlog")},
        }
        return (503 if problems else 200), "application/json", json_body(body)

    async def _status_page(self) -> tuple[int, str, str]:
        return 200, "text/html", status_page_html()

    async def _status_json(self) -> tuple[int, str, str]:
        """What the status page draws: no config values, so no secret can reach it."""
        cfg = self.loaded.config
        now = clock.now()
        assert self.pipeline.live is not None  # made with the http endpoint
        live = self.pipeline.live.snapshot(now)
        seen: dict[str, dict[str, object]] = live.pop("devices")  # type: ignore[assignment]
        devices = []
        for d in self.scheduler.devices:
            st = d.stats
            last = seen.get(d.driver.name, {})
            devices.append({
                "name": d.driver.name, "where": d.where, "interval": d.interval,
                "state": st.state, "reason": st.last_error if st.state != "online" else "",
                "polls": st.polls, "failures": st.failures, "missed_ticks": st.missed_ticks,
                "last_ts": last.get("last_ts"), "values": last.get("values", {}),
                "quality": last.get("quality", {}), "metrics": last.get("metrics", {}),
            })  # fmt: skip
        outputs = []
        if self.mqtt is not None:
            state = "connected" if self.mqtt.stats.connected else "not connected"
            outputs.append(f"MQTT {state}, {self.mqtt.backlog} in the spool")
        if self.influx is not None:
            outputs.append(f"InfluxDB {self.influx.written} points, {self.influx.backlog} waiting")
        problems = self._problems()
        body = {
            "site": cfg.site, "agent": cfg.agent_id, "version": vatio_version(),
            "now": now, "started": self.started, "outputs": outputs or ["no output configured"],
            "health": {"status": "unhealthy" if problems else "ok", "problems": problems},
            "clock": self.clock_trust.status(), "devices": devices, **live,
        }  # fmt: skip
        return 200, "application/json", json_body(body)

    async def _metrics(self) -> tuple[int, str, str]:
        rows: list[tuple[str, str, str, dict[str, str], float]] = []
        for d in self.scheduler.devices:
            labels = {"device": d.driver.name}
            st = d.stats
            rows += [
                ("vatio_polls_total", "counter", "Polls started.", labels, st.polls),
                ("vatio_poll_failures_total", "counter", "Polls that read nothing.", labels,
                 st.failures),
                ("vatio_missed_ticks_total", "counter", "Ticks skipped: a poll overran.", labels,
                 st.missed_ticks),
                ("vatio_device_up", "gauge", "1 while the device answers.", labels,
                 float(st.state == "online")),
                ("vatio_poll_duration_seconds", "gauge", "Duration of the last poll.", labels,
                 st.last_poll_s),
            ]  # fmt: skip
            counters = getattr(d.driver, "counters", None)  # optional (drivers/plugin.py)
            if counters is not None:
                rows += [(f"vatio_{name}", kind, text, labels, value)
                         for name, (kind, text, value) in counters().items()]  # fmt: skip
        rows.append(("vatio_uptime_seconds", "gauge", "Since the agent started.", {},
                     clock.now() - self.started))  # fmt: skip
        rows += [
            ("vatio_storage_ok", "gauge", "1 while state_dir takes writes.", {},
             float(not self.storage.failing)),
            ("vatio_storage_failures_total", "counter", "Writes the disk refused.", {},
             self.storage.failures),
            ("vatio_unnumbered_messages_total", "counter",
             "Messages sent without seq: no number could be reserved on disk.", {},
             self.seq.unnumbered),
        ]  # fmt: skip
        if self.mqtt is not None and self.spool is not None:
            m = self.mqtt.stats
            rows += [
                ("vatio_spool_messages", "gauge", "Messages in the spool, not yet acknowledged.",
                 {}, self.spool.backlog),
                ("vatio_spool_dropped_total", "counter", "Oldest messages dropped by the bounds.",
                 {}, self.spool.dropped),
                ("vatio_spool_held_messages", "gauge",
                 "Messages only in memory: the disk refused them.", {}, self.spool.held),
                ("vatio_mqtt_connected", "gauge", "1 while connected to the broker.", {},
                 float(m.connected)),
                ("vatio_mqtt_published_total", "counter", "Messages the broker acknowledged.", {},
                 m.published),
                ("vatio_mqtt_refused_total", "counter", "Messages the broker refused (ACL).", {},
                 m.refused),
                ("vatio_publish_latency_seconds_sum", "counter", "PUBLISH to PUBACK, summed.", {},
                 m.ack_seconds),
                ("vatio_publish_latency_seconds_count", "counter", "PUBACKs timed.", {},
                 m.published + m.refused),
            ]  # fmt: skip
        if self.influx is not None:
            rows += [
                ("vatio_influx_points_total", "counter", "Points written to InfluxDB.", {},
                 self.influx.written),
                ("vatio_influx_spool_messages", "gauge", "Messages waiting for InfluxDB.", {},
                 self.influx.backlog),
            ]  # fmt: skip
        return 200, "text/plain; version=0.0.4", prometheus(rows)

    def stats(self) -> dict[str, int]:
        """Counters for the whole agent (the benchmarks and `stopped:` log line read them)."""
        devices = self.scheduler.devices
        out = {
            "polls": sum(d.stats.polls for d in devices),
            "failed_polls": sum(d.stats.failures for d in devices),
            "missed_ticks": sum(d.stats.missed_ticks for d in devices),
            "requests": sum(t.requests for t in self.transports),
        }
        if self.mqtt is not None:
            out["published"] = self.mqtt.stats.published
            out["backlog"] = self.mqtt.backlog
            out["dropped"] = self.spool.dropped if self.spool else 0
        if self.seq.unnumbered:
            out["unnumbered"] = self.seq.unnumbered
        if self.influx is not None:
            out["influx_written"] = self.influx.written
            out["influx_backlog"] = self.influx.backlog
        return out


def reload_blockers(running: LoadedConfig, new: LoadedConfig) -> list[str]:
    """What a reload cannot change: the spools' files hold data not yet delivered, and an
    agent reading them from another place would strand it."""
    old_cfg, new_cfg = running.config, new.config
    blockers = []
    if Path(old_cfg.state_dir).resolve() != Path(new_cfg.state_dir).resolve():
        blockers.append(f"state_dir changed ({old_cfg.state_dir} → {new_cfg.state_dir})")
    if old_cfg.spool.path != new_cfg.spool.path:
        blockers.append(f"spool.path changed ({old_cfg.spool.path} → {new_cfg.spool.path})")
    return blockers


@functools.cache
def status_page_html() -> str:
    return resources.files("vatio.agent").joinpath("web/status.html").read_text(encoding="utf-8")


class StateDirError(Exception):
    pass


def _writable_dir(path: Path) -> Path:
    """``path``, made if missing; a mistake (no permission, a file in the way) stops the
    start with a clear message, while a full or read-only disk is a state the agent runs
    through (agent/storage.py)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        try:
            probe.write_text("x")  # a full disk may still make an empty file
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        if exc.errno in DISK_STATES and path.is_dir():
            return path
        raise StateDirError(
            tr(
                "state_dir '{path}' is not writable ({reason}): set state_dir in the config to a "
                "directory the agent's user can write (the service uses /var/lib/vatio)",
                path=path,
                reason=exc.strerror,
            )
        ) from None
    return path

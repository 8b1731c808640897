"""The agent's side of remote management: one MQTT connection, one response per request.

It lives across reloads (``vatio run`` attaches each new :class:`~vatio.agent.runtime.Agent`
to it) and follows the running config's broker settings, with its own client id
(``<client_id>-remote``) and a persistent session, so a command sent during a short outage
still arrives, and one that waited longer than ``remote.max_age`` is refused, not run late.

A pushed config goes in with the SIGHUP hand-over (nothing buffered is lost), on trial: the
agent must reach the broker again, and every device that answered before the push (and is
still configured) must answer, within ``remote.rollback_after``. Otherwise the previous
config is put back and handed over to the same way. The response waits for the end of the
trial: a config that cannot reach the broker cannot answer, so the answer goes out once
the old config is back (the netplan-try idea, without a human to confirm).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vatio.agent.config import (
    ConfigError,
    LoadedConfig,
    MqttOutputConfig,
    load_config,
    parse_duration,
)
from vatio.agent.logs import add_secrets, secrets_of
from vatio.agent.messages import rfc3339
from vatio.agent.mqttconn import ConnectError, Connection, open_retrying
from vatio.agent.remote import contract
from vatio.agent.remote.contract import BadRequest, Request
from vatio.agent.remote.logbuffer import LogBuffer, TemporaryLevel
from vatio.agent.remote.policy import Refused, check_push
from vatio.agent.remote.store import ConfigStore, Origin, Trial, config_hash, origin_fields
from vatio.common import clock

if TYPE_CHECKING:
    from vatio.agent.runtime import Agent

log = logging.getLogger(__name__)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_LEVEL_SECONDS = 86400.0


class RemoteService:
    """``attach()`` each agent ``vatio run`` starts; ``run()`` until cancelled."""

    def __init__(self, path: str | Path, loaded: LoadedConfig) -> None:
        cfg = loaded.config
        self.rules = cfg.remote  # the local file's: a push can never change it
        self.site = cfg.site
        self.agent_id = cfg.agent_id
        self.store = ConfigStore(path, self.rules.keep_configs)
        self.store.clean_temporaries()
        self.running = loaded
        self.mqtt_cfg: MqttOutputConfig | None = cfg.outputs.mqtt
        self.agent: Agent | None = None
        self._stop: asyncio.Event | None = None
        self._pending: list[LoadedConfig] | None = None
        self.generation = 0
        self._attached = asyncio.Event()
        self._reconnect = asyncio.Event()
        self.conn: Connection | None = None
        self.outbox: list[tuple[str, bytes, bytes | None]] = []  # waiting for a connection
        self.seen: OrderedDict[str, None] = OrderedDict()  # ids answered: one response each
        self.buffer = LogBuffer()
        self.buffer.install()
        self.level = TemporaryLevel()
        self.trial_task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    # -- the agent's side --------------------------------------------------------------------

    def attach(
        self,
        agent: Agent,
        loaded: LoadedConfig,
        stop: asyncio.Event,
        pending: list[LoadedConfig],
    ) -> None:
        """The agent now running, and how to hand over from it (as SIGHUP does)."""
        self.agent, self.running, self._stop, self._pending = agent, loaded, stop, pending
        with contextlib.suppress(OSError):
            agent.config_info = origin_fields(self.store.origin())
        new = loaded.config.outputs.mqtt
        if new != self.mqtt_cfg:
            self.mqtt_cfg = new
            self._reconnect.set()
        self.generation += 1
        self._attached.set()

    def _hand_over(self, new: LoadedConfig) -> None:
        assert self.agent is not None and self._stop is not None and self._pending is not None
        if self._pending:
            return
        self._pending.append(new)
        self.agent.reloading = True
        self._stop.set()

    async def _next_agent(self, generation: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.generation == generation and time.monotonic() < deadline:
            self._attached.clear()
            try:
                await asyncio.wait_for(self._attached.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        return self.generation != generation

    def _event(self, kind: str, message: str, **fields: Any) -> None:
        if self.agent is not None:
            self.agent.pipeline.event(self.agent_id, kind, message, **fields)

    # -- MQTT --------------------------------------------------------------------------------

    def _session_cfg(self, cfg: MqttOutputConfig) -> MqttOutputConfig:
        return cfg.model_copy(update={"persistent_session": True, "session_expiry": 86400.0})

    async def run(self) -> None:
        trial = self.store.trial()
        if trial is not None:  # the agent was killed mid-trial: run it again
            log.warning(
                "remote: a pushed config (request %s) was on trial when the agent stopped; "
                "trying it again for %g s",
                trial.request_id,
                trial.rollback_after,
            )
            self._start_trial(trial, None)
        while True:
            self._reconnect.clear()
            cfg = self.mqtt_cfg
            if cfg is None:
                await self._reconnect.wait()
                continue
            client_id = (cfg.client_id or f"vatio-{self.agent_id}") + "-remote"
            session = self._session_cfg(cfg)
            opening = asyncio.ensure_future(
                open_retrying(
                    functools.partial(self._connection, session, client_id),
                    0.5,
                    10.0,
                    self._connect_failed,
                )
            )
            change = asyncio.ensure_future(self._reconnect.wait())
            await asyncio.wait({opening, change}, return_when=asyncio.FIRST_COMPLETED)
            if not opening.done():
                opening.cancel()
                change.cancel()
                continue
            change.cancel()
            conn = opening.result()
            try:
                await self._session(conn)
            finally:
                self.conn = None
                await conn.close()

    def _connection(self, cfg: MqttOutputConfig, client_id: str) -> Connection:
        conn = Connection(cfg, client_id)
        # before CONNECT: what the session queued arrives right after the CONNACK
        conn.client.on_message = conn.on_thread(self._on_message)
        return conn

    def _connect_failed(self, exc: ConnectError, delay: float) -> None:
        log.debug("remote: %s; retrying in %.1f s", exc, delay)

    async def _session(self, conn: Connection) -> None:
        topic = contract.cmd_topic(self.site, self.agent_id)
        conn.client.subscribe(topic, qos=1)
        self.conn = conn
        log.info("remote management: listening on %s", topic)
        for item in self.outbox:
            self._publish(conn, *item)
        self.outbox.clear()
        lost = asyncio.ensure_future(conn.lost.wait())
        change = asyncio.ensure_future(self._reconnect.wait())
        try:
            await asyncio.wait({lost, change}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            change.cancel()
        if conn.lost.is_set():
            await asyncio.sleep(0.5)

    def _publish(self, conn: Connection, topic: str, payload: bytes, corr: bytes | None) -> None:
        props = None
        if conn.v5 and corr is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = corr
        conn.client.publish(topic, payload, qos=1, properties=props)

    def _answer(
        self,
        req: Request,
        result: str,
        reasons: list[str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        payload = contract.response(
            req.id, req.op, self.site, self.agent_id, result, clock.now(), reasons, data
        )
        default = contract.reply_topic(self.site, self.agent_id, req.sender)
        topic = req.response_topic
        if not (topic == default or topic.startswith(default + "/")):
            topic = default  # never publish where the sender may not read (or anywhere else)
        log.info(
            "remote: %s %s from %s: %s%s",
            req.op,
            req.id,
            req.sender,
            result,
            f" ({'; '.join(reasons)})" if reasons else "",
        )
        log.debug("remote: response to %s on %s, %d bytes", req.id, topic, len(payload))
        if self.conn is not None and not self.conn.lost.is_set():
            self._publish(self.conn, topic, payload, req.correlation)
        else:
            self.outbox.append((topic, payload, req.correlation))

    # -- requests ----------------------------------------------------------------------------

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            req = contract.parse_request(
                msg.topic, msg.payload, self.site, self.agent_id, bool(msg.retain)
            )
        except BadRequest as exc:
            rid = getattr(exc, "request_id", None)
            log.warning("remote: refused a request on %s: %s", msg.topic, exc)
            if rid is not None:
                try:
                    sender = contract.sender_of(msg.topic, self.site, self.agent_id)
                except BadRequest:
                    return
                req = Request(rid, "unknown", 0.0, sender)
                self._fill_reply_props(req, msg)
                if self._first_time(req):
                    self._answer(req, "refused", [str(exc)])
            return
        self._fill_reply_props(req, msg)
        if not self._first_time(req):
            log.info("remote: request %s from %s was answered already; ignored", req.id, req.sender)
            return
        log.info(
            "remote: %s request %s from %s (a login the broker vouched for)",
            req.op,
            req.id,
            req.sender,
        )
        self._event(
            "remote_command",
            f"{req.op} from {req.sender}",
            sender=req.sender,
            op=req.op,
            request=req.id,
        )
        why = contract.too_old(req, clock.now(), self.rules.max_age)
        if why is not None:
            self._event("remote_refused", why, sender=req.sender, op=req.op, request=req.id)
            self._answer(req, "refused", [why])
            return
        task = asyncio.ensure_future(self._dispatch(req))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _fill_reply_props(self, req: Request, msg: Any) -> None:
        props = getattr(msg, "properties", None)
        if props is not None:
            req.response_topic = getattr(props, "ResponseTopic", "") or ""
            corr = getattr(props, "CorrelationData", None)
            req.correlation = bytes(corr) if corr is not None else None

    def _first_time(self, req: Request) -> bool:
        if req.id in self.seen:
            return False
        self.seen[req.id] = None
        while len(self.seen) > 1000:
            self.seen.popitem(last=False)
        return True

    async def _dispatch(self, req: Request) -> None:
        handlers: dict[str, Callable[[Request], Any]] = {
            "push_config": self._push,
            "read": self._read,
            "scan": self._scan,
            "logs": self._logs,
            "log_level": self._log_level,
            "ping": self._ping,
        }
        try:
            await handlers[req.op](req)
        except Exception as exc:  # a bug here must cost one error answer, not the agent
            log.exception("remote: %s %s failed", req.op, req.id)
            self._answer(req, "error", [f"{type(exc).__name__}: {exc}"])

    async def _ping(self, req: Request) -> None:
        from vatio.agent.runtime import vatio_version

        self._answer(
            req,
            "done",
            data={"version": vatio_version(), "config": origin_fields(self.store.origin())},
        )

    async def _logs(self, req: Request) -> None:
        n = req.args.get("lines", 100)
        if not isinstance(n, int) or not 1 <= n <= 1000:
            self._answer(req, "refused", ["lines must be a number from 1 to 1000"])
            return
        self._answer(req, "done", data={"lines": self.buffer.tail(n)})

    async def _log_level(self, req: Request) -> None:
        level = str(req.args.get("level", "")).upper()
        if level not in LEVELS:
            self._answer(req, "refused", [f"level must be one of {', '.join(LEVELS)}"])
            return
        try:
            seconds = parse_duration(req.args.get("duration", "10m"))
        except ValueError as exc:
            self._answer(req, "refused", [f"duration: {exc}"])
            return
        if not 0 < seconds <= MAX_LEVEL_SECONDS:
            self._answer(req, "refused", ["duration must be more than 0 and at most 24h"])
            return
        self.level.set(level, seconds)
        self._answer(req, "done", data={"level": level, "until": rfc3339(clock.now() + seconds)})

    async def _read(self, req: Request) -> None:
        from vatio.agent.read import plan_lines, poll_once

        agent = self.agent
        assert agent is not None
        drivers = {d.name: d for d in agent.drivers}
        names = req.args.get("devices") or list(drivers)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self._answer(req, "refused", ["devices must be a list of device names"])
            return
        unknown = [n for n in names if n not in drivers]
        if unknown:
            self._answer(
                req,
                "refused",
                [f"no enabled device named {', '.join(unknown)} (devices: {', '.join(drivers)})"],
            )
            return
        buses = self.running.config.buses
        uart = [n for n in names if buses[self.running.entries[n].config.bus].type == "serial"]
        if uart:
            self._answer(
                req,
                "refused",
                [
                    f"{', '.join(uart)}: a UART sensor streams to the agent's own poller, and a "
                    "second reader would steal its frames; its last reading is in its telemetry"
                ],
            )
            return
        timeout = self.rules.read_timeout

        async def one(name: str) -> dict[str, Any]:
            d = drivers[name]
            try:
                r = await asyncio.wait_for(poll_once(d), timeout)
            except TimeoutError:
                return {"error": f"no answer within {timeout:g} s (remote.read_timeout)"}
            return {
                "ts": r.ts,
                "values": r.values,
                "quality": r.quality,
                "error": r.error,
                "degraded": r.degraded,
                "plan": plan_lines(d),
            }

        results = await asyncio.gather(*(one(n) for n in names))
        data = dict(zip(names, results, strict=True))
        ok = all(not v.get("error") for v in data.values())
        self._answer(
            req,
            "done" if ok else "error",
            [] if ok else [f"{n}: {v['error']}" for n, v in data.items() if v.get("error")],
            data,
        )

    async def _scan(self, req: Request) -> None:
        from vatio.agent.config import RtuTcpBusConfig, TcpBusConfig
        from vatio.agent.scan import make_client, report, scan
        from vatio.drivers.reading import DeviceError

        bus_name = req.args.get("bus")
        units_arg = str(req.args.get("units", "1-247"))
        try:
            low, _, high = units_arg.partition("-")
            units = range(int(low), int(high or low) + 1)
            if not units or units.start < 1 or units.stop > 248:
                raise ValueError
        except ValueError:
            self._answer(req, "refused", [f"units {units_arg}: write a range such as 1-247 or 5"])
            return
        timeout = float(req.args.get("timeout", 0.2))
        buses = self.running.config.buses
        bus = buses.get(bus_name) if isinstance(bus_name, str) else None
        if not isinstance(bus, TcpBusConfig | RtuTcpBusConfig):
            what = (
                "is not a bus of this agent" if bus is None else "is a serial line the agent polls"
            )
            tcp = [n for n, b in buses.items() if isinstance(b, TcpBusConfig | RtuTcpBusConfig)]
            self._answer(
                req,
                "refused",
                [
                    f"bus {bus_name!r} {what}: a remote scan opens its own connection, "
                    f"which only a Modbus/TCP gateway or meter takes beside the agent's "
                    f"(TCP buses: {', '.join(tcp) or 'none'}); "
                    "scan a serial line on site with vatio scan"
                ],
            )
            return
        client = make_client(
            host=bus.host,
            tcp_port=bus.port,
            serial_port=None,
            baudrate=getattr(bus, "baudrate", None),
            parity="N",
            rtu_over_tcp=isinstance(bus, RtuTcpBusConfig),
            timeout=timeout,
        )
        try:
            await client.open()
        except DeviceError as exc:
            client.close()
            self._answer(req, "error", [f"{exc}: {exc.hint}"])
            return
        try:
            found = await scan(client, units, progress=False)
        finally:
            client.close()
        text = report(found, str(bus_name), "{...}", client.garbled, client.bad)
        self._answer(
            req,
            "done",
            data={
                "found": [
                    {
                        "unit": f.unit,
                        "profiles": f.profiles,
                        "values": f.values,
                        "sunspec": f.sunspec.summary() if f.sunspec else None,
                    }
                    for f in found
                ],
                "report": text,
            },
        )

    # -- pushed configs ----------------------------------------------------------------------

    async def _push(self, req: Request) -> None:
        if not self.rules.config_push:
            self._answer(
                req,
                "refused",
                [
                    "this agent does not accept pushed configs: "
                    "remote.config_push is off in its local file"
                ],
            )
            return
        if self._pending:  # a SIGHUP reload is under way: one hand-over at a time
            self._answer(req, "refused", ["the agent is reloading its config; send it again"])
            return
        if self.trial_task is not None and not self.trial_task.done():
            self._answer(
                req,
                "refused",
                [
                    "another pushed config is on trial; send it again "
                    f"in {self.rules.rollback_after:g} s"
                ],
            )
            return
        text = req.args.get("config")
        if not isinstance(text, str) or not text.strip():
            self._answer(req, "refused", ["args.config must be the config's YAML text"])
            return
        try:
            checked = check_push(text, self.store.path, self.running, self.rules)
        except Refused as exc:
            self._event(
                "config_refused",
                f"pushed config refused ({len(exc.reasons)} problem(s))",
                sender=req.sender,
                request=req.id,
            )
            self._answer(req, "refused", exc.reasons)
            return
        add_secrets(secrets_of(checked.loaded.config))
        new = checked.text.encode()
        agent = self.agent
        assert agent is not None
        answering = sorted(
            d.driver.name for d in agent.scheduler.devices if d.stats.polls > d.stats.failures
        )
        try:
            old = self.store.current()
            if config_hash(old) == config_hash(new):
                self._answer(req, "applied", data={"hash": config_hash(new), "unchanged": True})
                return
            previous = self.store.save_previous(old)
            trial = Trial(
                req.id,
                req.sender,
                req.response_topic,
                (req.correlation or b"").hex(),
                config_hash(new),
                str(previous),
                answering,
                self.rules.rollback_after,
            )
            self.store.begin_trial(trial, new)
        except OSError as exc:
            self.store.end_trial()
            self._answer(
                req,
                "refused",
                [
                    f"cannot write next to {self.store.path}: {exc.strerror or exc}: the agent's "
                    "user must be able to write that directory (systemd: ReadWritePaths=/etc/vatio)"
                ],
            )
            return
        log.info(
            "remote: config %s from %s goes in on trial for %g s (previous kept as %s)",
            trial.new_hash,
            req.sender,
            trial.rollback_after,
            previous,
        )
        generation = self.generation
        self._hand_over(checked.loaded)
        self._start_trial(trial, generation)

    def _start_trial(self, trial: Trial, generation: int | None) -> None:
        """``generation``: the agent the push hands over from (None: the config on trial is
        already running: a start that found the trial a killed agent left)."""
        self.trial_task = asyncio.ensure_future(self._trial(trial, generation))

    async def _trial(self, trial: Trial, generation: int | None) -> None:
        req = Request(
            trial.request_id,
            "push_config",
            0.0,
            trial.sender,
            response_topic=trial.response_topic,
            correlation=bytes.fromhex(trial.correlation_hex) or None,
        )
        if generation is not None:
            await self._next_agent(generation)
        while self.agent is None:
            await asyncio.sleep(0.05)
        started = time.monotonic()
        deadline = started + trial.rollback_after
        reasons: list[str] = []
        while True:
            agent = self.agent
            assert agent is not None
            connected = agent.mqtt is not None and agent.mqtt.stats.connected
            present = {d.driver.name: d.stats for d in agent.scheduler.devices}
            silent = [
                n
                for n in trial.devices_answering
                if n in present and present[n].polls <= present[n].failures
            ]
            if connected and not silent:
                break
            if time.monotonic() >= deadline:
                if not connected:
                    where = agent.mqtt.where if agent.mqtt is not None else "the broker"
                    last = agent.mqtt.stats.last_error if agent.mqtt is not None else ""
                    reasons.append(
                        f"the new config did not reach {where} within "
                        f"{trial.rollback_after:g} s: {last}"
                    )
                if silent:
                    reasons.append(
                        f"device(s) {', '.join(silent)} answered before the push "
                        f"and not within {trial.rollback_after:g} s"
                    )
                break
            await asyncio.sleep(0.2)
        if not reasons:
            origin = Origin(
                trial.new_hash, "remote", trial.sender, trial.request_id, rfc3339(clock.now())
            )
            self.store.record_origin(origin)
            self.store.end_trial()
            if self.agent is not None:
                self.agent.config_info = origin_fields(origin)
                self.agent._clock_changed()  # re-publish the retained status with the hash
            took = time.monotonic() - started
            self._event(
                "config_applied",
                f"config {trial.new_hash} from {trial.sender} applied",
                sender=trial.sender,
                request=trial.request_id,
                hash=trial.new_hash,
            )
            self._answer(req, "applied", data={"hash": trial.new_hash, "trial_s": round(took, 1)})
            return
        log.error("remote: rolling back config %s: %s", trial.new_hash, "; ".join(reasons))
        self.store.roll_back(trial.previous)
        try:
            old = load_config(self.store.path)
        except ConfigError as exc:  # the previous file was in force, so this cannot be
            log.error("remote: the previous config does not load any more: %s", exc)
            self.store.end_trial()
            return
        generation = self.generation
        self._hand_over(old)
        await self._next_agent(generation)
        self.store.end_trial()
        back = config_hash(self.store.current())
        self._event(
            "config_rolled_back",
            f"config {trial.new_hash} rolled back to {back}: " + "; ".join(reasons),
            sender=trial.sender,
            request=trial.request_id,
        )
        self._answer(req, "rolled_back", reasons, {"hash": back, "refused_hash": trial.new_hash})

    async def close(self) -> None:
        for t in [*self.tasks, *([self.trial_task] if self.trial_task else [])]:
            t.cancel()
        self.level.restore()
        self.buffer.remove()
        conn = self.conn
        if conn is not None:
            await conn.close()

"""The ingest bridge: Vatio's MQTT messages → InfluxDB points, nothing lost, nothing held twice.

A shared subscription (``$share/<group>/vatio/v1/+/+/+``) lets N bridges split the messages.
Each message is acknowledged to the broker (manual PUBACK) only after the batch holding its
point was written, and the session is persistent: a bridge that crashes, or a database that
is down, leaves the unacknowledged messages with the broker, which delivers them again. A
point written twice is the same point (same series, same timestamp), so redelivery is safe.

Memory is bounded by MQTT flow control, not by a queue of our own: the broker sends at most
``receive_maximum`` unacknowledged messages (MQTT 5), so while the database is down the
bridge simply stops receiving and the broker holds the rest.

A message that breaks the contract goes to ``<dead_letter_topic>/<its topic>`` (the reason, and
the original payload up to ``limits.dead_letter_payload_bytes`` with its size and SHA-256), is
counted by kind of reason, and is acknowledged: it can never be written. *Any* failure to
convert or write one message makes it a dead letter, a bug included: one message never stops
the bridge (a crash would only bring the same message back from the persistent session, and
the bridge would crash again, for ever).

Statuses become the ``status`` measurement (agent/ingest/statuspoints.py), and every
written message's ``seq`` feeds the per-device completeness (agent/ingest/completeness.py):
the fleet operator's view (``fleet:`` in the config; README, "Running a fleet").

paho's network thread only appends each message to a list; converting and writing run on a
worker thread, one batch at a time, and acknowledgements go out in the order received.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from vatio.agent import sdnotify
from vatio.agent.httpstatus import StatusServer, json_body, prometheus
from vatio.agent.influx import Unavailable, Writer, make_writer, write_isolating
from vatio.agent.ingest.completeness import CompletenessTracker, InfluxQL
from vatio.agent.ingest.config import IngestConfig
from vatio.agent.ingest.lineproto import BadMessage, Converter, show
from vatio.agent.ingest.statuspoints import status_line
from vatio.agent.mqttconn import ConnectError, Connection, open_retrying

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    received: int = 0
    written: int = 0  # points written (a message redelivered after a crash counts again)
    skipped: int = 0  # statuses not written (fleet.statuses off, or naming no agent)
    dead_letters: int = 0
    batches: int = 0
    write_failures: int = 0  # attempts that found the database unavailable
    connects: int = 0
    connected: bool = False
    database_down: str = ""  # why the last write failed, until one succeeds again
    last_error: str = ""
    dead_reasons: dict[str, int] = field(default_factory=dict)
    statuses: int = 0  # status points written (fleet.statuses)
    # statuses whose site this bridge has seen no telemetry or metrics from (yet): a typo'd
    # site, or an agent that only says it is alive; written all the same
    unknown_agents: int = 0
    completeness_passes: int = 0
    completeness_failures: int = 0


@dataclass(slots=True)
class _Batch:
    messages: list[tuple[int, mqtt.MQTTMessage]]
    lines: list[str]
    line_owner: list[int]  # index into messages, per line (to dead-letter a rejected point)
    dead: list[tuple[int, str, str]]  # (index into messages, reason, kind)
    skipped: int
    observed: list[tuple[str, str, str, int, int]] | None = None  # for completeness
    statuses: int = 0


MQTT_TOPIC_MAX = 65535  # bytes (MQTT: a 16-bit length)


def topic_of(msg: mqtt.MQTTMessage) -> str | None:
    """The message's topic, or None when it is not UTF-8 (paho raises on ``.topic``)."""
    try:
        return msg.topic
    except UnicodeDecodeError:
        return None


def excerpt(payload: bytes | bytearray, limit: int) -> dict[str, Any]:
    """The dead letter's copy of a payload: whole up to ``limit`` bytes, else its first
    ``limit`` bytes marked as truncated, with the size and SHA-256 of the whole. As text when
    that part is UTF-8 (a character cut in two at the end is left out), else as base64."""
    out: dict[str, Any] = {"size": len(payload)}
    head = bytes(payload[:limit])
    if len(payload) > limit:
        out["truncated"] = True
        out["sha256"] = hashlib.sha256(payload).hexdigest()
    text = _utf8(head)
    if text is None and len(payload) > limit:
        text = next((t for cut in (1, 2, 3) if (t := _utf8(head[:-cut])) is not None), None)
    if text is not None:
        out["payload"] = text
    else:
        out["payload_base64"] = base64.b64encode(head).decode()
    return out


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


class RateLimitedLog:
    """The first ``first`` lines of each kind, then one per kind per ``period`` seconds that
    says how many were left out: a flood of bad messages never floods the log."""

    def __init__(self, first: int = 3, period: float = 60.0) -> None:
        self.first = first
        self.period = period
        self._seen: dict[str, int] = {}
        self._next: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def warning(self, kind: str, text: str, *args: object) -> None:
        n = self._seen[kind] = self._seen.get(kind, 0) + 1
        now = time.monotonic()
        if n > self.first and now < self._next.get(kind, 0.0):
            self._quiet[kind] = self._quiet.get(kind, 0) + 1
            return
        quiet = self._quiet.pop(kind, 0)
        if n >= self.first:
            self._next[kind] = now + self.period
        suffix = f" ({quiet} more of this kind not logged)" if quiet else ""
        log.warning(text + "%s", *args, suffix)


class IngestBridge:
    BACKOFF_START = 1.0  # database retries
    BACKOFF_MAX = 30.0
    # Back on the broker before the agents (which wait 1 s): Mosquitto 2.0.11 does not keep a
    # shared subscription across its own restart, so until the bridges subscribe again,
    # messages for the group reach no one (plain subscriptions are kept; README, ingest).
    RECONNECT_START = 0.2

    def __init__(self, cfg: IngestConfig, writer: Writer | None = None) -> None:
        self.cfg = cfg
        self.stats = IngestStats()
        self._writer = writer
        self._converter = Converter(cfg.limits.to_limits())
        self._log = RateLimitedLog()
        self._inbox: deque[tuple[int, mqtt.MQTTMessage]] = deque()
        self._generation = 0  # of the current connection; acks of older ones are void
        self._conn: Connection | None = None
        self._influxql: InfluxQL | None = None
        self._full = asyncio.Event()
        self._full_flagged = False
        self._loop: asyncio.AbstractEventLoop | None = None
        fleet = cfg.fleet
        self._tracker: CompletenessTracker | None = None
        if fleet.completeness:
            if cfg.influxdb.api == "v1":
                self._tracker = CompletenessTracker(cfg.client_id, fleet.late_after)
            else:
                log.warning(
                    "fleet.completeness needs InfluxQL (influxdb.api: v1, InfluxDB 1.x); with "
                    "api v2 it is off: set fleet.completeness: false to silence this"
                )

    # -- paho's thread ----------------------------------------------------------------------

    def _on_message(
        self, generation: int, client: Any, userdata: Any, msg: mqtt.MQTTMessage
    ) -> None:
        self._inbox.append((generation, msg))
        if len(self._inbox) >= self.cfg.influxdb.batch_size and not self._full_flagged:
            self._full_flagged = True
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._full.set)

    # -- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        if self._writer is None:
            self._writer = make_writer(self.cfg.influxdb)
        log.info(
            "ingest %s: %s → %s (batches of %d)",
            self.cfg.client_id,
            self.cfg.subscription,
            self.cfg.influxdb.where,
            self.cfg.influxdb.batch_size,
        )
        connection = asyncio.create_task(self._connection_loop(), name="ingest-mqtt")
        summary = asyncio.create_task(self._summary_loop(), name="ingest-summary")
        helpers = [connection, summary]
        if self._tracker is not None:
            helpers.append(asyncio.create_task(self._completeness_loop(), name="completeness"))
        period = sdnotify.watchdog_period()
        if period is not None:
            helpers.append(asyncio.create_task(self._watchdog_loop(period), name="watchdog"))
        http = None
        if self.cfg.http is not None:
            http = StatusServer(
                self.cfg.http.host,
                self.cfg.http.port,
                {"/healthz": self._healthz, "/metrics": self._metrics},
            )
            await http.start()  # a port already taken stops the start, with a clear message
        sdnotify.notify("READY=1")
        try:
            await self._batch_loop(stop)
        finally:
            sdnotify.notify("STOPPING=1")
            if http is not None:
                await http.close()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if self._tracker is not None:  # this bridge's counts into the database
                try:
                    await asyncio.wait_for(asyncio.to_thread(self._completeness_pass), 10)
                except Exception as exc:
                    log.warning("last completeness pass failed: %s", exc)
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            self._writer.close()
            log.info("ingest %s stopped: %s", self.cfg.client_id, self._summary())

    def _connect(self) -> Connection:
        self._generation += 1
        conn = Connection(self.cfg.mqtt, self.cfg.client_id, manual_ack=True)
        # set before connecting: a persistent session delivers right after CONNACK
        conn.client.on_message = functools.partial(self._on_message, self._generation)
        conn.client.on_subscribe = conn.on_thread(self._on_subscribe)
        return conn

    def _connect_failed(self, exc: ConnectError, delay: float) -> None:
        self.stats.last_error = str(exc)
        log.warning("MQTT: %s; retrying in %.1f s", exc, delay)

    async def _connection_loop(self) -> None:
        while True:
            conn = await open_retrying(
                self._connect, self.RECONNECT_START, self.BACKOFF_MAX, self._connect_failed
            )
            self._conn = conn
            self.stats.connects += 1
            self.stats.connected = True
            conn.client.subscribe(self.cfg.subscription, qos=1)
            log.info("connected to MQTT broker %s as %s", self.cfg.mqtt.where, self.cfg.client_id)
            try:
                await conn.lost.wait()
            finally:
                self.stats.connected = False
                self._conn = None
                await conn.close()
            self.stats.last_error = f"connection lost: {conn.lost_reason}"
            log.warning(
                "MQTT broker %s: connection lost (%s); reconnecting (what was not written yet "
                "comes again from the broker)",
                self.cfg.mqtt.where,
                conn.lost_reason,
            )
            await asyncio.sleep(self.RECONNECT_START)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        for code in codes:
            if getattr(code, "is_failure", False) or code == 128:
                log.error(
                    "MQTT broker %s refused the subscription %s (%s): its ACL must let %s "
                    "read vatio/v1/#",
                    self.cfg.mqtt.where,
                    self.cfg.subscription,
                    code,
                    self.cfg.client_id,
                )

    async def _batch_loop(self, stop: asyncio.Event) -> None:
        influx = self.cfg.influxdb
        while not stop.is_set():
            if len(self._inbox) < influx.batch_size:
                self._full.clear()
                self._full_flagged = False
                stopping = asyncio.ensure_future(stop.wait())
                full = asyncio.ensure_future(self._full.wait())
                await asyncio.wait(
                    {stopping, full}, timeout=influx.flush_interval, return_when="FIRST_COMPLETED"
                )
                stopping.cancel()
                full.cancel()
                if stop.is_set():
                    return
            messages = self._take(influx.batch_size)
            if messages:
                await self._handle(messages, stop)

    def _take(self, limit: int) -> list[tuple[int, mqtt.MQTTMessage]]:
        inbox, out = self._inbox, list[tuple[int, mqtt.MQTTMessage]]()
        while inbox and len(out) < limit:
            generation, msg = inbox.popleft()
            if generation == self._generation:  # older ones come again: not worth writing
                out.append((generation, msg))
        return out

    async def _handle(
        self, messages: list[tuple[int, mqtt.MQTTMessage]], stop: asyncio.Event
    ) -> None:
        batch = await asyncio.to_thread(self._convert, messages)
        rejected = await self._write(batch, stop)
        if rejected is None:
            return  # stopping before the database came back: the broker keeps them
        for line_index, reason, kind in rejected:
            batch.dead.append((batch.line_owner[line_index], reason, kind))
        self.stats.batches += 1
        self.stats.written += len(batch.lines) - len(rejected)
        self.stats.skipped += batch.skipped
        self.stats.statuses += batch.statuses
        self._settle(batch)
        if self._tracker is not None and batch.observed:
            self._tracker.record(batch.observed, int(time.time() * 1000))

    def _convert(self, messages: list[tuple[int, mqtt.MQTTMessage]]) -> _Batch:
        lines: list[str] = []
        owner: list[int] = []
        dead: list[tuple[int, str, str]] = []
        skipped = statuses = 0
        to_line = self._converter.to_line
        observed = self._converter.observed = [] if self._tracker is not None else None
        sites: set[str] | None = None  # where telemetry came from, looked up once per batch
        for i, (_, msg) in enumerate(messages):
            topic = topic_of(msg)
            if topic is None:
                dead.append((i, "the topic is not UTF-8", "topic"))
                continue
            try:
                line = to_line(topic, msg.payload)
            except BadMessage as exc:
                dead.append((i, str(exc), exc.kind))
                continue
            except Exception as exc:  # a bug: this message is a dead letter, the rest go on
                dead.append((i, f"the converter failed: {type(exc).__name__}: {exc}"[:300],
                             "internal"))  # fmt: skip
                continue
            if line is None and self.cfg.fleet.statuses:
                _, _, site, device, _ = topic.split("/")
                try:
                    point = status_line(
                        self._converter, site, device, msg.payload, int(time.time() * 1000)
                    )
                except BadMessage as exc:
                    dead.append((i, str(exc), exc.kind))
                    continue
                except Exception as exc:  # a bug: a dead letter, never a stopped bridge
                    dead.append((i, f"status conversion failed: {type(exc).__name__}: {exc}"
                                 [:300], "internal"))  # fmt: skip
                    continue
                if point is None:
                    skipped += 1
                    continue
                line = point[0]
                statuses += 1
                if sites is None:
                    sites = self._tracker.known_sites if self._tracker is not None else set()
                    sites |= {o[1] for o in observed or ()}
                if self._tracker is not None and site not in sites:
                    self.stats.unknown_agents += 1
                    self._log.warning(
                        "unknown_agent", "status from %s/%s: no telemetry from site %s seen "
                        "yet (written all the same)", show(site), show(device), show(site),
                    )  # fmt: skip
            if line is None:
                skipped += 1
            else:
                lines.append(line)
                owner.append(i)
        self.stats.received += len(messages)
        self._converter.observed = None
        return _Batch(messages, lines, owner, dead, skipped, observed, statuses)

    async def _write(self, batch: _Batch, stop: asyncio.Event) -> list[tuple[int, str, str]] | None:
        """Write until it worked; the lines the server rejected (index, reason, kind), or
        None if ``stop`` came first."""
        if not batch.lines:
            return []
        writer = self._writer
        assert writer is not None
        backoff = self.BACKOFF_START
        while True:
            try:
                rejected = await asyncio.to_thread(self._write_all, writer, batch.lines)
                if backoff > self.BACKOFF_START:
                    log.info("%s takes writes again", self.cfg.influxdb.where)
                self.stats.database_down = ""
                return rejected
            except Unavailable as exc:
                self.stats.write_failures += 1
                self.stats.last_error = self.stats.database_down = str(exc)
                log.warning(
                    "%s; retrying in %.0f s (%d message(s) wait, unacknowledged, at the broker)",
                    exc,
                    backoff,
                    len(batch.messages),
                )
                try:
                    await asyncio.wait_for(stop.wait(), backoff)
                    return None
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, self.BACKOFF_MAX)

    def _write_all(self, writer: Writer, lines: list[str]) -> list[tuple[int, str, str]]:
        """:func:`write_isolating`, and if the writer fails in a way it should not (a bug:
        :class:`Unavailable` and HTTP 400 are the expected ways), the lines one by one, so
        the one at fault becomes a dead letter and the others are written."""
        try:
            return [
                (i, f"the database refused it: {reason}", "refused_by_database")
                for i, reason in write_isolating(writer.write, lines)
            ]
        except Unavailable:
            raise
        except Exception as exc:
            self._log.warning(
                "writer", "the writer failed (%s: %s); writing the batch line by line",
                type(exc).__name__, str(exc)[:200],
            )  # fmt: skip
        rejected: list[tuple[int, str, str]] = []
        for i, line in enumerate(lines):
            try:
                rejected += [
                    (i, f"the database refused it: {reason}", "refused_by_database")
                    for _, reason in write_isolating(writer.write, [line])
                ]
            except Unavailable:
                raise
            except Exception as exc:
                reason = f"the writer failed: {type(exc).__name__}: {exc}"[:300]
                rejected.append((i, reason, "internal"))
        return rejected

    def _settle(self, batch: _Batch) -> None:
        """Dead letters out, then every message of the batch acknowledged, in order."""
        conn = self._conn
        if conn is None:
            return  # the connection is gone: the broker delivers them again
        for i, reason, kind in batch.dead:
            generation, msg = batch.messages[i]
            if generation != self._generation:
                continue
            try:
                self._dead_letter(conn, msg, reason, kind)
            except Exception as exc:  # never lets one message stop the acknowledgements
                self._log.warning(
                    "dead_letter_publish", "could not publish a dead letter (%s: %s)",
                    type(exc).__name__, str(exc)[:200],
                )  # fmt: skip
        for generation, msg in batch.messages:
            if generation == self._generation and msg.qos > 0:
                conn.client.ack(msg.mid, msg.qos)

    def _dead_letter(self, conn: Connection, msg: mqtt.MQTTMessage, reason: str, kind: str) -> None:
        self.stats.dead_letters += 1
        # counted by kind (a fixed set), not by reason: a reason quotes the offending name
        self.stats.dead_reasons[kind] = self.stats.dead_reasons.get(kind, 0) + 1
        topic = topic_of(msg)
        shown = show(topic, 120) if topic is not None else "a topic that is not UTF-8"
        self._log.warning(kind, "dead letter from %s: %s", shown, reason)
        envelope: dict[str, Any] = {
            "topic": topic,
            "reason": reason,
            "kind": kind,
            "bridge": self.cfg.client_id,
            "received": time.time(),
            **excerpt(msg.payload, self.cfg.limits.dead_letter_payload_bytes),
        }
        if topic is None:
            envelope["topic_base64"] = base64.b64encode(bytes(msg._topic)).decode()
            where = f"{self.cfg.dead_letter_topic}/_topic_not_utf8"
        else:
            where = f"{self.cfg.dead_letter_topic}/{topic}"
            if len(where.encode()) > MQTT_TOPIC_MAX:
                where = f"{self.cfg.dead_letter_topic}/_topic_too_long"
        conn.client.publish(where, json.dumps(envelope, ensure_ascii=False), qos=1)

    # -- reporting --------------------------------------------------------------------------

    def _summary(self) -> str:
        s = self.stats
        return (
            f"{s.received} received, {s.written} points written in {s.batches} batches, "
            f"{s.skipped} statuses skipped, {s.statuses} statuses written "
            f"({s.unknown_agents} from sites without telemetry), {s.dead_letters} dead letters, "
            f"{len(self._inbox)} waiting"
        )

    async def _healthz(self) -> tuple[int, str, str]:
        problems = []
        if not self.stats.connected:
            problems.append(f"MQTT broker not connected: {self.stats.last_error}")
        if self.stats.database_down:
            problems.append(f"database not taking writes: {self.stats.database_down}")
        body = {
            "status": "unhealthy" if problems else "ok",
            "problems": problems,
            "waiting": len(self._inbox),
        }
        return (503 if problems else 200), "application/json", json_body(body)

    async def _metrics(self) -> tuple[int, str, str]:
        s = self.stats
        rows: list[tuple[str, str, str, dict[str, str], float]] = [
            ("vatio_ingest_received_total", "counter", "Messages received.", {}, s.received),
            ("vatio_ingest_points_total", "counter", "Points written.", {}, s.written),
            ("vatio_ingest_batches_total", "counter", "Batches written.", {}, s.batches),
            ("vatio_ingest_skipped_total", "counter", "Statuses (no point).", {}, s.skipped),
            ("vatio_ingest_write_failures_total", "counter",
             "Writes that found the database unavailable.", {}, s.write_failures),
            ("vatio_ingest_waiting_messages", "gauge", "Received, not yet written.", {},
             len(self._inbox)),
            ("vatio_ingest_mqtt_connected", "gauge", "1 while connected to the broker.", {},
             float(s.connected)),
            ("vatio_ingest_database_up", "gauge", "0 while writes fail.", {},
             float(not s.database_down)),
            ("vatio_ingest_statuses_total", "counter", "Status points written.", {},
             s.statuses),
            ("vatio_ingest_status_unknown_agent_total", "counter",
             "Statuses from sites this bridge saw no telemetry from.", {}, s.unknown_agents),
            ("vatio_ingest_completeness_passes_total", "counter", "Completeness passes.", {},
             s.completeness_passes),
            ("vatio_ingest_completeness_failures_total", "counter",
             "Completeness passes that failed.", {}, s.completeness_failures),
        ]  # fmt: skip
        if self._tracker is not None:
            rows.append(("vatio_ingest_completeness_pass_seconds", "gauge",
                         "How long the last completeness pass took.", {},
                         self._tracker.pass_seconds))  # fmt: skip
        if self._tracker is not None:
            rows += [
                ("vatio_ingest_seq_backwards_total", "counter",
                 "Messages whose seq went back while ts went on (a device reset).", {},
                 self._tracker.backwards),
                ("vatio_ingest_late_total", "counter",
                 "Messages older than fleet.late_after on arrival.", {}, self._tracker.late),
            ]  # fmt: skip
        rows += [
            ("vatio_ingest_dead_letters_total", "counter", "Messages sent to dead letters.",
             {"reason": reason}, n)
            for reason, n in sorted(s.dead_reasons.items())
        ]  # fmt: skip
        return 200, "text/plain; version=0.0.4", prometheus(rows)

    async def _watchdog_loop(self, period: float) -> None:
        """Keepalives for systemd (``WatchdogSec=``), from the event loop that does the
        work: if it blocks, they stop and systemd restarts the bridge."""
        while True:
            sdnotify.notify(f"WATCHDOG=1\nSTATUS={self._summary()}")
            await asyncio.sleep(period)

    def _completeness_pass(self) -> None:
        assert self._tracker is not None and self._writer is not None
        if self._influxql is None:
            self._influxql = InfluxQL(self.cfg.influxdb)
        self._tracker.run_pass(self._influxql, self._write_derived)
        self.stats.completeness_passes += 1

    def _write_derived(self, lines: list[str]) -> None:
        """The pass's points: one the database refuses is logged and left out, so it cannot
        block every later pass; :class:`Unavailable` propagates (the pass is retried)."""
        assert self._writer is not None
        for i, reason in write_isolating(self._writer.write, lines):
            self._log.warning("derived_refused", "the database refused %s: %s",
                              show(lines[i], 120), reason)  # fmt: skip

    async def _completeness_loop(self) -> None:
        """Recompute the hours this bridge touched (agent/ingest/completeness.py). A pass
        costs ~4 s per 10,000 devices (bench/ingest.py --completeness), so the next one waits
        at least 5 × the last one: passes never take more than a sixth of the time, whatever
        fleet.interval says (back-to-back passes cost a quarter of the throughput)."""
        assert self._tracker is not None
        while True:
            await asyncio.sleep(max(self.cfg.fleet.interval, 5 * self._tracker.pass_seconds))
            try:
                await asyncio.to_thread(self._completeness_pass)
            except Exception as exc:  # the database is down, or a bug: next pass tries again
                self.stats.completeness_failures += 1
                self._log.warning("completeness", "completeness pass failed: %s", exc)

    async def _summary_loop(self) -> None:
        while True:
            await asyncio.sleep(60)
            log.info("ingest %s: %s", self.cfg.client_id, self._summary())

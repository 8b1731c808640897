"""MQTT output: spooled messages to one broker at QoS 1, live data first, backlog at a rate.

Every message goes into the disk spool (:mod:`vatio.agent.spool`) and is published at once; the
spool writes it at its next commit unless the broker's PUBACK came first (then it never
reaches the disk), and deletes it when the PUBACK arrives later. What was
stored before the current connection is the *backlog*: after an outage it drains oldest
first at ``drain_rate`` messages per second while live messages keep going out at once, and
at most ``max_inflight`` messages wait for their PUBACK. A dropped connection forgets its
in-flight messages: they are still in the spool, and go out again with the backlog.

Retained messages (statuses) are state, not history: they skip the spool, the newest per
topic is kept in memory and published on every (re)connect, so a replayed backlog can never
overwrite a fresher status. The agent's own status is ``online`` (with the spool's backlog)
on connect, and its last will sets it to ``offline``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vatio.agent.config import MqttOutputConfig
from vatio.agent.messages import Message
from vatio.agent.mqttconn import BatchedRelay, ConnectError, Connection, open_retrying
from vatio.agent.spool import CommitResult, Spool, keep_committing

log = logging.getLogger(__name__)


@dataclass
class MqttStats:
    published: int = 0  # acknowledged by the broker
    ack_seconds: float = 0.0  # PUBLISH → PUBACK, summed over the acknowledged messages
    refused: int = 0  # PUBACK with an error reason (MQTT 5: e.g. not authorised)
    connects: int = 0
    connected: bool = False
    last_error: str = ""


class MqttOutput:
    BACKOFF_START = 1.0
    BACKOFF_MAX = 60.0
    READ_AHEAD = 2000  # backlog messages read from disk at once

    def __init__(
        self,
        cfg: MqttOutputConfig,
        spool: Spool,
        client_id: str,
        online: Callable[[], Message],
        offline: Callable[[], Message],
        commit_interval: float = 0.2,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.spool = spool
        self.client_id = client_id
        self._online = online
        self._offline = offline
        self.commit_interval = commit_interval
        self.on_dropped = on_dropped
        self.stats = MqttStats()
        self.retained: dict[str, Message] = {}
        self._conn: Connection | None = None
        self._acks: BatchedRelay | None = None  # the current connection's PUBACKs
        self._live: deque[tuple[int, Message]] = deque()
        self._backlog: deque[tuple[int, Message]] = deque()
        self._backlog_next = 0  # next id to read from disk
        self._live_from = 0  # ids below this are backlog for the current connection
        self._inflight: dict[int, tuple[int, float]] = {}  # paho mid → spool id, sent at
        self._busy: set[int] = set()  # spool ids in flight or acknowledged, not yet deleted
        self._wake = asyncio.Event()
        self._refused_topics: set[str] = set()
        # in submission order: Home Assistant links a device to its gateway only if the
        # gateway's config came first (agent/homeassistant.py)
        self._dirty_retained: dict[str, None] = {}

    @property
    def where(self) -> str:
        return self.cfg.where

    # -- the pipeline's side ---------------------------------------------------------------

    def submit(self, msg: Message) -> None:
        if msg.retain:
            self.retained[msg.topic] = msg
            self._dirty_retained[msg.topic] = None
            self._wake.set()
        else:
            # published at once; the spool writes it at its commit time only if the broker
            # has not acknowledged it by then (the crash window is the commit interval, as
            # before: what is put but not committed is what a crash loses)
            msg_id = self.spool.put(msg)
            if self._conn is None:
                return
            if not self._live and len(self._inflight) < self.cfg.max_inflight:
                # what the session loop would do first on waking, without waking it: one
                # wake-up per reading cost more than the publish (issue 18)
                self._publish(self._conn, msg_id, msg)
            else:
                self._live.append((msg_id, msg))
                self._wake.set()

    @property
    def backlog(self) -> int:
        return self.spool.backlog

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(
                keep_committing(
                    self.spool, self.commit_interval, self._committed, before=self._take_acks
                ),
                name="spool-commit",
            )
            tasks.create_task(self._connection_loop(), name="mqtt")

    def _take_acks(self) -> None:
        """The PUBACKs that arrived, now: what they acknowledge need not be written."""
        if self._acks is not None:
            self._acks.flush()

    def _committed(self, result: CommitResult) -> None:
        if result.dropped and self.on_dropped is not None:
            self.on_dropped(result.dropped)

    def _connect_failed(self, exc: ConnectError, delay: float) -> None:
        self.stats.last_error = str(exc)
        loud = delay in (self.BACKOFF_START, self.BACKOFF_MAX) or self.stats.connects
        log.log(
            logging.WARNING if loud else logging.DEBUG,
            "MQTT: %s; retrying in %.0f s; meanwhile messages wait in the spool",
            exc,
            delay,
        )

    async def _connection_loop(self) -> None:
        while True:
            conn = await open_retrying(
                lambda: Connection(self.cfg, self.client_id, will=self._offline()),
                self.BACKOFF_START,
                self.BACKOFF_MAX,
                self._connect_failed,
            )
            self.stats.connects += 1
            self.stats.connected = True
            log.info(
                "connected to MQTT broker %s as %s (%d message(s) in the spool)",
                self.where,
                self.client_id,
                self.spool.backlog,
            )
            try:
                await self._session(conn)
            finally:
                self.stats.connected = False
                if self._acks is not None:  # acknowledged before the loss: they count
                    self._acks.flush()
                    self._acks = None
                self._conn = None
                await conn.close()
            self.stats.last_error = f"connection lost: {conn.lost_reason}"
            log.warning(
                "MQTT broker %s: connection lost (%s); reconnecting, messages wait in the spool",
                self.where,
                conn.lost_reason,
            )
            await asyncio.sleep(self.BACKOFF_START)

    async def _session(self, conn: Connection) -> None:
        # paho numbers each client's messages from 1: a late PUBACK of the connection before
        # must not acknowledge this connection's message with the same mid
        # PUBACKs reach the loop before each spool commit (every commit_interval: the
        # commit timer ticks anyway, so no wake-up is added), or sooner in a flood (a
        # backlog drains) so the window refills
        self._acks = conn.client.on_publish = conn.on_thread_batched(
            lambda batch: self._on_pubacks(batch) if conn is self._conn else None,
            hop_at=max(1, self.cfg.max_inflight // 4),
        )
        self._conn = conn
        self._inflight.clear()
        self._busy.clear()
        self._live.clear()
        self._backlog.clear()
        # Everything put so far is the backlog now: the spool reads it from disk, from
        # memory (held) and from its uncommitted batch alike; what is put from now on is
        # published by submit().
        self._live_from = self.spool.next_id
        self._backlog_next = 0
        self._dirty_retained = dict.fromkeys(self.retained)
        online = self._online()
        self.retained[online.topic] = online
        self._dirty_retained[online.topic] = None
        tokens, last = 0.0, time.monotonic()
        while not conn.lost.is_set():
            self._publish_retained(conn)
            while self._live and len(self._inflight) < self.cfg.max_inflight:
                self._publish(conn, *self._live.popleft())
            now = time.monotonic()
            tokens = min(tokens + (now - last) * self.cfg.drain_rate, self.cfg.drain_rate)
            last = now
            if not self._backlog and self._backlog_next < self._live_from:
                await self._read_backlog()
            while (
                self._backlog
                and tokens >= 1
                and len(self._inflight) < self.cfg.max_inflight
                and not self._live
            ):
                msg_id, msg = self._backlog.popleft()
                if msg_id not in self._busy:
                    self._publish(conn, msg_id, msg)
                    tokens -= 1
            self._wake.clear()
            waiting_for_rate = bool(self._backlog) and tokens < 1
            timeout = 1 / self.cfg.drain_rate if waiting_for_rate else 0.5
            lost = asyncio.ensure_future(conn.lost.wait())
            woke = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait({lost, woke}, timeout=timeout, return_when="FIRST_COMPLETED")
            lost.cancel()
            woke.cancel()

    async def _read_backlog(self) -> None:
        rows = await self.spool.read(self._backlog_next, self._live_from, self.READ_AHEAD)
        if rows:
            self._backlog.extend(rows)
            self._backlog_next = rows[-1][0] + 1
        else:
            self._backlog_next = self._live_from  # the backlog is drained

    def _publish_retained(self, conn: Connection) -> None:
        for topic in list(self._dirty_retained):
            msg = self.retained[topic]
            conn.client.publish(msg.topic, msg.payload, qos=1, retain=True)
        self._dirty_retained.clear()

    def _publish(self, conn: Connection, msg_id: int, msg: Message) -> None:
        info = conn.client.publish(msg.topic, msg.payload, qos=1)
        if info.rc != 0:  # the connection just dropped: the spool still has it
            return
        self._inflight[info.mid] = (msg_id, time.monotonic())
        self._busy.add(msg_id)

    def _on_pubacks(self, batch: list[tuple[Any, ...]]) -> None:
        """PUBACKs (paho's on_publish arguments), as many as arrived since the last call."""
        now = time.monotonic()
        for _client, _userdata, mid, code, _props in batch:
            sent = self._inflight.pop(mid, None)
            if sent is None:
                continue  # a retained status, or a message of a connection already gone
            msg_id, sent_at = sent
            self.stats.ack_seconds += now - sent_at
            if getattr(code, "is_failure", False):
                # refused (MQTT 5, e.g. an ACL): keep it in the spool, do not loop on it now
                self.stats.refused += 1
                self._note_refusal(msg_id, str(code))
            else:
                self.spool.ack(msg_id)
                self.stats.published += 1
        # refill the window in bursts, not one wake-up per acknowledgement
        if len(self._inflight) <= self.cfg.max_inflight // 2:
            self._wake.set()

    def _note_refusal(self, msg_id: int, reason: str) -> None:
        if len(self._refused_topics) < 100 and reason not in self._refused_topics:
            self._refused_topics.add(reason)
            log.error(
                "MQTT broker %s refused a message (%s): the broker's ACL must let this agent "
                "publish under vatio/v1/<site>/#; it stays in the spool",
                self.where,
                reason,
            )

    # -- stopping ---------------------------------------------------------------------------

    async def drain(self, timeout: float) -> bool:
        """Wait until every live message is acknowledged (or ``timeout``); the backlog
        stays in the spool for the next start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.stats.connected:
            self._take_acks()
            if self.spool.unsaved:
                await asyncio.sleep(self.commit_interval)
                continue
            if not self._live and not self._inflight:
                return True
            await asyncio.sleep(0.05)
        self._take_acks()
        return not self._live and not self._inflight and not self.spool.unsaved

    async def announce_offline(self) -> None:
        """Publish the retained ``offline`` status ourselves (a clean stop sends no will)."""
        conn = self._conn
        if conn is None or conn.lost.is_set():
            return
        msg = self._offline()
        info = conn.client.publish(msg.topic, msg.payload, qos=1, retain=True)
        try:
            await asyncio.wait_for(asyncio.to_thread(info.wait_for_publish, 5), 6)
        except (TimeoutError, RuntimeError, ValueError) as exc:
            log.warning("could not publish offline status to %s: %s", self.where, exc)

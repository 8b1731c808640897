"""MQTT output: publishes contract messages at QoS 1 with aiomqtt, reconnecting with backoff.

Messages wait in a bounded in-memory queue while the broker is away (the disk spool that
keeps them across restarts is agent/spool, a later stage); when the queue is full the oldest
message is dropped and counted, never the newest. A message leaves the queue only when the
broker acknowledged it (PUBACK): one whose publish failed goes back to the front.

On every (re)connect the agent's retained status becomes ``online``; the connection's last
will sets it to ``offline`` if the agent dies, and a clean stop publishes ``offline`` itself.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt

from agent.config import MqttOutputConfig
from agent.messages import Message

log = logging.getLogger(__name__)


@dataclass
class MqttStats:
    published: int = 0
    dropped: int = 0
    connects: int = 0
    connected: bool = False
    last_error: str = ""


class MessageQueue:
    """Bounded FIFO that drops its oldest entry when full, with an awaitable get."""

    def __init__(self, maxlen: int) -> None:
        self._items: deque[Message] = deque()
        self._maxlen = maxlen
        self._ready = asyncio.Event()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, msg: Message) -> None:
        if len(self._items) >= self._maxlen:
            self._items.popleft()
            self.dropped += 1
        self._items.append(msg)
        self._ready.set()

    def put_front(self, msg: Message) -> None:
        self._items.appendleft(msg)
        self._ready.set()

    async def get(self) -> Message:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


class MqttOutput:
    """Publishes :class:`Message` objects to one broker."""

    BACKOFF_START = 1.0
    BACKOFF_MAX = 60.0

    def __init__(
        self,
        cfg: MqttOutputConfig,
        client_id: str,
        online: Callable[[], Message],
        offline: Callable[[], Message],
    ) -> None:
        self.cfg = cfg
        self.client_id = client_id
        self._online = online
        self._offline = offline
        self.queue = MessageQueue(cfg.queue_size)
        self.stats = MqttStats()
        self._client: aiomqtt.Client | None = None
        self._inflight = 0
        self._idle = asyncio.Event()

    @property
    def where(self) -> str:
        return f"{'mqtts' if self.cfg.tls else 'mqtt'}://{self.cfg.host}:{self.cfg.port}"

    def submit(self, msg: Message) -> None:
        before = self.queue.dropped
        self.queue.put(msg)
        if self.queue.dropped != before and self.queue.dropped % 1000 == 1:
            log.warning(
                "MQTT queue full (%d messages) while %s is unreachable: dropping the oldest "
                "(%d so far)",
                self.cfg.queue_size,
                self.where,
                self.queue.dropped,
            )

    def _make_client(self) -> aiomqtt.Client:
        will = self._offline()
        client = aiomqtt.Client(
            self.cfg.host,
            self.cfg.port,
            identifier=self.client_id,
            username=self.cfg.username,
            password=self.cfg.password.get_secret_value() if self.cfg.password else None,
            will=aiomqtt.Will(will.topic, will.payload, qos=1, retain=True),
            keepalive=self.cfg.keepalive,
            max_inflight_messages=self.cfg.max_inflight,
            tls_context=ssl.create_default_context() if self.cfg.tls else None,
            timeout=10,
        )
        # aiomqtt warns on every publish beyond 10 pending calls (stack-notes §3.2)
        client.pending_calls_threshold = self.cfg.max_inflight + 10
        return client

    async def run(self) -> None:
        """Connect, publish until cancelled; reconnect with exponential backoff."""
        backoff = self.BACKOFF_START
        while True:
            client = self._make_client()
            try:
                async with client:
                    self._client = client
                    self.stats.connected = True
                    self.stats.connects += 1
                    log.info("connected to MQTT broker %s as %s", self.where, self.client_id)
                    backoff = self.BACKOFF_START
                    online = self._online()
                    await client.publish(online.topic, online.payload, qos=1, retain=True)
                    await self._pump(client)
            except* aiomqtt.MqttError as group:
                err = group.exceptions[0]
                self.stats.last_error = str(err)
                # the first failure, then once a minute while the broker stays away
                loud = self.stats.connected or backoff in (self.BACKOFF_START, self.BACKOFF_MAX)
                level = logging.WARNING if loud else logging.DEBUG
                log.log(
                    level,
                    (
                        "MQTT broker %s: %s; retrying in %.0f s (check that the broker runs, the "
                        "URL and the credentials)"
                    ),
                    self.where,
                    err,
                    backoff,
                )
            finally:
                self._client = None
                self.stats.connected = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.BACKOFF_MAX)

    async def _pump(self, client: aiomqtt.Client) -> None:
        window = asyncio.Semaphore(self.cfg.max_inflight)
        async with asyncio.TaskGroup() as tasks:
            while True:
                msg = await self.queue.get()
                await window.acquire()
                self._inflight += 1
                self._idle.clear()
                tasks.create_task(self._publish(client, msg, window))

    async def _publish(
        self, client: aiomqtt.Client, msg: Message, window: asyncio.Semaphore
    ) -> None:
        try:
            await client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
            self.stats.published += 1
        except BaseException:
            self.queue.put_front(msg)  # not acknowledged: publish again after reconnecting
            raise
        finally:
            window.release()
            self._inflight -= 1
            if self._inflight == 0 and not self.queue:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued message is acknowledged (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while (self.queue or self._inflight) and time.monotonic() < deadline:
            if not self.stats.connected:
                return False
            try:
                await asyncio.wait_for(self._idle.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        return not self.queue and not self._inflight

    async def announce_offline(self) -> None:
        """Publish the retained ``offline`` status ourselves (a clean stop sends no will)."""
        if self._client is not None and self.stats.connected:
            msg = self._offline()
            try:
                await asyncio.wait_for(
                    self._client.publish(msg.topic, msg.payload, qos=1, retain=True), 5
                )
            except (aiomqtt.MqttError, TimeoutError) as exc:
                log.warning("could not publish offline status to %s: %s", self.where, exc)

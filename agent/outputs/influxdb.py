"""The direct InfluxDB output (``outputs.influxdb``): one plant, no broker, nothing lost.

Messages go through a spool of their own (``<state_dir>/influx-spool.sqlite``, bounded like
the MQTT one) and leave it only once the database accepted the batch holding their points,
so a database outage or a power cut loses nothing. Points are built as the ingest bridge
builds them (:mod:`vatio.agent.ingest.lineproto`), so both paths give the same series. Statuses
are state, not history, and make no point; a message the database refuses (HTTP 400, e.g. a
field type clash with older data) can never be written: it is logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging

from vatio.agent.config import InfluxConfig
from vatio.agent.influx import Unavailable, Writer, make_writer, write_isolating
from vatio.agent.ingest.lineproto import BadMessage, to_line
from vatio.agent.messages import Message
from vatio.agent.spool import Spool, keep_committing

log = logging.getLogger(__name__)


class InfluxOutput:
    BACKOFF_START = 1.0
    BACKOFF_MAX = 60.0

    def __init__(
        self,
        cfg: InfluxConfig,
        spool: Spool,
        commit_interval: float = 0.2,
        writer: Writer | None = None,
    ) -> None:
        self.cfg = cfg
        self.spool = spool
        self.commit_interval = commit_interval
        self._writer = writer or make_writer(cfg)  # fails now if influxdb-client is missing
        self.written = 0
        self.refused = 0
        self.unwritable = 0  # messages no point can be made of (a bug: said once per kind)
        self._said: set[str] = set()
        self._next_id = 0

    @property
    def where(self) -> str:
        return self.cfg.where

    @property
    def backlog(self) -> int:
        return self.spool.backlog

    def submit(self, msg: Message) -> None:
        if not msg.retain:  # statuses (retained) are state: no point
            self.spool.put(msg)

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(
                    keep_committing(self.spool, self.commit_interval), name="influx-spool-commit"
                )
                tasks.create_task(self._send_loop(), name="influx")
        finally:
            self._writer.close()

    async def _send_loop(self) -> None:
        while True:
            rows = await self.spool.read(
                self._next_id, self.spool.committed_below, self.cfg.batch_size
            )
            if rows:
                await self._send(rows)
                self._next_id = rows[-1][0] + 1
            if len(rows) < self.cfg.batch_size:
                await asyncio.sleep(self.cfg.flush_interval)

    async def _send(self, rows: list[tuple[int, Message]]) -> None:
        lines: list[str] = []
        topics: list[str] = []  # per line, to say which message a refused point came from
        for _, msg in rows:
            try:
                line = to_line(msg.topic, msg.payload)
            except BadMessage as exc:  # our own message: a bug, said once per kind
                self.unwritable += 1
                if exc.kind not in self._said:
                    self._said.add(exc.kind)
                    log.error("cannot write %s to InfluxDB (dropped): %s", msg.topic, exc)
                line = None
            if line is not None:
                lines.append(line)
                topics.append(msg.topic)
        backoff = self.BACKOFF_START
        while True:
            try:
                rejected = await asyncio.to_thread(write_isolating, self._writer.write, lines)
                break
            except Unavailable as exc:
                log.warning(
                    "%s; retrying in %.0f s (%d message(s) wait in the spool)",
                    exc,
                    backoff,
                    self.spool.backlog,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.BACKOFF_MAX)
        for index, reason in rejected:
            log.error("InfluxDB refused the point of %s (dropped): %s", topics[index], reason)
        self.refused += len(rejected)
        self.written += len(lines) - len(rejected)
        for msg_id, _ in rows:
            self.spool.ack(msg_id)

    async def drain(self, timeout: float) -> bool:
        """Wait until the spool is empty (or ``timeout``)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.spool.backlog and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        return self.spool.backlog == 0

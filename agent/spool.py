"""The disk spool: every outgoing message is stored here before it is published, and leaves
only when the broker acknowledged it (QoS 1 PUBACK).

One SQLite database in WAL mode. Writes are batched: :meth:`Spool.put` only buffers, and
:meth:`Spool.commit` (the output calls it every ``commit_interval``) stores the buffered
messages, deletes the acknowledged ones and enforces the bounds in a single transaction
(``BEGIN IMMEDIATE`` … ``COMMIT``, all or nothing), so an SD card sees one small write burst
per interval instead of one per message. The MQTT output publishes a message as soon as it
is put; an acknowledgement (:meth:`Spool.ack`) that arrives before the commit takes the
message out of the buffer, so with the broker up most messages never reach the card (issue
18: the card wears out by what is written, not by what is stored). What a crash can lose is
what it lost before: the messages put since the last commit and not acknowledged, at most
``commit_interval`` of readings; with ``durability: full`` (the default) each commit is
fsynced, and a power cut never corrupts the file (SQLite's WAL guarantees). The InfluxDB
output still reads only what was committed (:attr:`Spool.committed_below`).

A full or read-only disk is a state, not a crash. A commit that fails is rolled back whole;
its messages are *held* in memory (at most ``max_held_bytes``, oldest dropped and counted),
handed to the publisher all the same (live data keeps flowing while the broker is up), and
written with the next commit that succeeds: retried every :attr:`Spool.RETRY_S` while the
disk refuses. The same holds when the file cannot even be opened at start. Only messages
held in memory when the process dies are lost, and :meth:`close` says how many.

Bounds: at most ``max_bytes`` of payload as stored (deflated: :mod:`vatio.agent.spoolcodec`)
and ``max_age_s`` of age; past either, the oldest messages are dropped and counted
(:attr:`Spool.dropped`), never the newest. A message stamped by a clock still in 1970 (a Pi
before NTP answered) has no known age and is kept until the size bound says otherwise
(:func:`aged`).

Ids are assigned here, strictly increasing and never reused for what reached the file (the
high-water mark is kept there whenever a delete could remove the highest row), so the
publisher can tell "older than this connection" (the backlog) from live.

All database work runs on one worker thread, never on the event loop, so an fsync on a slow
card does not delay polling.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from vatio.agent.messages import Message
from vatio.agent.spoolcodec import pack, unpack
from vatio.agent.storage import (
    DISK_STATES,
    HEALED_ABOVE,
    StorageHealth,
    disk_state,
    explain,
    file_system_refuses,
    open_db,
    read_only_query,
    transaction,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Durability = Literal["full", "normal"]
Row = tuple[int, float, Message]  # id, created (time.time()), message


class SpoolError(Exception):
    """The spool cannot be used at all (a config mistake); the message says what to do."""


@dataclass
class CommitResult:
    stored: list[tuple[int, Message]]  # accepted now, in id order: ready to publish
    dropped: int  # oldest messages dropped by the bounds in this commit
    on_disk: bool = True  # False: the disk refused, ``stored`` is held in memory


@dataclass
class _Delta:
    """What one transaction changes in the counters; applied only once it committed."""

    stored: int = 0
    bytes: int = 0
    dropped: int = 0


class Spool:
    RETRY_S = 5.0  # while the disk refuses writes, try again this often (not every commit)
    # A commit rewrites the last, partly filled page of the table and its interior pages
    # whole: with a few messages per commit, small pages write less (bench/spool, issue 18).
    PAGE_SIZE = 1024

    def __init__(
        self,
        path: Path,
        max_bytes: int = 100 * 2**20,
        max_age_s: float = 7 * 86400,
        durability: Durability = "full",
        *,
        health: StorageHealth | None = None,
        name: str = "spool",
        max_held_bytes: int = 16 * 2**20,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.durability = durability
        self.health = health or StorageHealth()
        self.name = name
        # memory is scarcer than disk on a Pi (the service has MemoryMax=200M)
        self.max_held_bytes = min(max_held_bytes, max_bytes)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="spool")
        # put, not yet written: an acknowledgement that comes first takes it out, so a
        # message the broker confirmed within the commit interval never reaches the card
        self._pending: dict[int, tuple[float, Message]] = {}
        self._acked: list[int] = []
        self._held: dict[int, tuple[float, Message]] = {}  # accepted, not on disk (id order)
        self._held_bytes = 0
        self._writing: set[int] = set()  # held ids in the commit running now
        self._commit_task: asyncio.Future[CommitResult] | None = None  # commit_shielded's
        self._retry_at = 0.0
        self._watch_at = 0.0  # next look at the file system while nothing is written
        self.failing = False  # the last attempt to write failed: messages are held in memory
        self.dropped = 0
        self.commits = 0
        self.failed_commits = 0
        self.stored = 0
        self.bytes = 0
        self._last_id = 0
        self._db: sqlite3.Connection | None = None
        self._high_on_disk = 0  # the highest id ever written to the file
        code = disk_state(path)
        if code is not None and code not in DISK_STATES:
            raise SpoolError(
                f"cannot write the spool {path} ({os.strerror(code)}): give the agent's user "
                "write access to that directory, or set spool.path to a writable place"
            )
        try:
            self._last_id = self._open()
        except (sqlite3.Error, OSError) as exc:
            if code is None:  # the directory takes files: the database itself is the problem
                raise SpoolError(f"spool {path}: {exc}") from None
            self._last_id = _last_id_read_only(path)
            self._failed(exc)
        self._committed_below = self._last_id + 1

    def _open(self) -> int:
        """Open (or create, or replace if damaged) the file; returns the last id it knows."""
        self._db, rows = open_db(
            self.path,
            [
                # Debian's SQLite zeroes deleted content (SQLITE_SECURE_DELETE): for a queue
                # that deletes everything it stores, that doubled the bytes written
                "PRAGMA secure_delete=OFF",
                "CREATE TABLE IF NOT EXISTS q (id INTEGER PRIMARY KEY, created REAL NOT NULL,"
                " topic TEXT NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL)",
                "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER)",
            ],
            self.durability.upper(),
            "SELECT max(coalesce((SELECT max(id) FROM q), 0),"
            " coalesce((SELECT v FROM meta WHERE k = 'last_id'), 0)),"
            " (SELECT count(*) FROM q), (SELECT coalesce(sum(length(payload)), 0) FROM q)",
            page_size=self.PAGE_SIZE,
        )
        last, stored, size = rows[0]
        self.stored, self.bytes = int(stored), int(size)
        self._high_on_disk = int(last)
        return int(last)

    def _renumber_after(self, last: int, pending: list[Row]) -> list[Row]:
        """The file, opened late, knows ids up to ``last``; what was numbered in memory
        meanwhile must come after them. Rare (the file could not even be read at start);
        acknowledgements of renumbered messages miss, so those may go out twice."""
        ids = [*self._held, *(i for i, _, _ in pending)]
        if not ids or min(ids) > last:
            self._last_id = max(self._last_id, last)
            return pending
        log.warning("%s: renumbering %d message(s) held in memory", self.name, len(ids))
        held, self._held = self._held, {}
        for n, old in enumerate(held, start=last + 1):
            self._held[n] = held[old]
        base = last + len(held)
        pending = [(base + n, c, m) for n, (_, c, m) in enumerate(pending, start=1)]
        self._last_id = base + len(pending)
        self._committed_below = self._last_id + 1
        return pending

    def _failed(self, exc: BaseException) -> None:
        self.failing = True
        self.failed_commits += 1
        self._retry_at = time.monotonic() + self.RETRY_S
        self.health.failed(self.name, self.path, explain(self.path, exc))

    # -- called on the event loop: cheap, no I/O ------------------------------------------

    @property
    def next_id(self) -> int:
        """The id the next :meth:`put` gets: everything below it is already known."""
        return self._last_id + 1

    @property
    def committed_below(self) -> int:
        """Ids below this are on disk, held in memory (see :meth:`read`), or gone; ids from
        it on are handed out by a later :meth:`commit`, even while one is running. A
        publisher that reads the backlog must stop here, or it misses what a commit in
        progress is still writing."""
        return self._committed_below

    def put(self, msg: Message) -> int:
        self._last_id += 1
        self._pending[self._last_id] = (time.time(), msg)
        return self._last_id

    def ack(self, msg_id: int) -> None:
        if self._pending.pop(msg_id, None) is not None:
            return  # acknowledged before its commit: it never has to be written
        held = self._held.pop(msg_id, None)
        if held is not None:
            self._held_bytes -= len(held[1].payload)
            if msg_id not in self._writing:
                return  # never reached the disk: nothing to delete
        self._acked.append(msg_id)

    @property
    def backlog(self) -> int:
        """Messages waiting for an acknowledgement (stored, held or about to be)."""
        return self.stored + len(self._held) + len(self._pending) - len(self._acked)

    @property
    def held(self) -> int:
        """Messages accepted but only in memory, because the disk refused them."""
        return len(self._held)

    @property
    def unsaved(self) -> int:
        """Messages put but not committed yet (not handed to the publisher either)."""
        return len(self._pending)

    @property
    def dirty(self) -> bool:
        """Something to write, or a disk that refused and must be tried again."""
        return bool(self._pending or self._acked or self._held or self.failing)

    # -- database work, on the spool's thread ---------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def commit(self) -> CommitResult:
        """Store what was put, forget what was acknowledged, apply the bounds. Never fails
        on a full or read-only disk: what it cannot write is held in memory (see above)."""
        pending = [(i, c, m) for i, (c, m) in self._pending.items()]
        self._pending = {}
        if self._last_id >= self._committed_below:
            self._committed_below = self._last_id + 1
        if time.monotonic() < self._retry_at:  # the disk refused a moment ago
            return CommitResult(*self._hold(pending), on_disk=False)
        if self.failing and self._db is not None and not (pending or self._held or self._acked):
            # nothing to write (the broker acknowledged it all in time), yet the disk must be
            # seen to take writes again, or the health report stays "full" for good
            return await self._probe()
        acked, self._acked = self._acked, []
        try:
            if self._db is None:
                pending = self._renumber_after(await self._run(self._open), pending)
            batch = [(i, c, m) for i, (c, m) in self._held.items()] + pending
            # acknowledgements arriving while this runs must delete from disk afterwards
            self._writing = set(self._held) | {i for i, _, _ in pending}
            result: tuple[list[Row], _Delta] = await self._run(self._commit, batch, acked)
        except (sqlite3.Error, OSError) as exc:
            # rolled back whole: nothing of this batch is on disk, so it can be tried again;
            # what was acknowledged meanwhile need not be held
            late, written = set(self._acked), self._writing
            self._acked = acked + [i for i in self._acked if i not in written]
            pending = [r for r in pending if r[0] not in late]
            self._writing = set()
            self._failed(exc)
            return CommitResult(*self._hold(pending), on_disk=False)
        self._writing = set()
        survivors, delta = result
        self.stored += delta.stored
        self.bytes += delta.bytes
        self.dropped += delta.dropped
        self.commits += 1
        for i, _, _ in batch:
            held = self._held.pop(i, None)
            if held is not None:
                self._held_bytes -= len(held[1].payload)
        self._healed()
        kept = {i for i, _, _ in survivors}
        return CommitResult([(i, m) for i, _, m in pending if i in kept], delta.dropped)

    def watch_disk(self) -> None:
        """With nothing to write (the broker acknowledges everything in time), nothing would
        find out that the disk filled up or went read-only until an outage needs it. Every
        :attr:`RETRY_S`, ask the file system (``statvfs``: no write) and report it as a
        failed write would, so readings are flagged ``spooled: false`` as before."""
        now = time.monotonic()
        if self.failing or now < self._watch_at:
            return
        self._watch_at = now + self.RETRY_S
        code = file_system_refuses(self.path)
        if code is not None:
            self._failed(OSError(code, os.strerror(code)))

    def _healed(self) -> None:
        """A write went through. SQLite may still find room in its WAL on a full disk: the
        disk is reported healthy only once the file system agrees, or the report would
        flap between full and healed with every commit."""
        if self.failing and file_system_refuses(self.path, HEALED_ABOVE) is not None:
            self._retry_at = time.monotonic() + self.RETRY_S
            return
        self.health.ok(self.name, self.path)
        self.failing = False
        self._retry_at = 0.0

    async def _probe(self) -> CommitResult:
        code = await self._run(disk_state, self.path)
        if code is not None:
            self._failed(OSError(code, os.strerror(code)))
            return CommitResult([], 0, on_disk=False)
        self._healed()
        return CommitResult([], 0)

    async def commit_shielded(self) -> CommitResult:
        """:meth:`commit`, carried through when the caller is cancelled (a stop or a reload
        cancels the commit loop): the batch is out of the buffer by then, and a commit still
        queued for the spool's thread would be dropped with it. :meth:`close` waits for it."""
        self._commit_task = asyncio.ensure_future(self.commit())
        return await asyncio.shield(self._commit_task)

    def _hold(self, rows: list[Row]) -> tuple[list[tuple[int, Message]], int]:
        """Keep ``rows`` in memory within the bounds; returns (what is handed over, dropped)."""
        for i, c, m in rows:
            self._held[i] = (c, m)
            self._held_bytes += len(m.payload)
        dropped = 0
        old = time.time() - self.max_age_s
        while self._held:
            first = next(iter(self._held))
            created, msg = self._held[first]
            if self._held_bytes <= self.max_held_bytes and not aged(created, old):
                break
            del self._held[first]
            self._held_bytes -= len(msg.payload)
            dropped += 1
        self.dropped += dropped
        return [(i, m) for i, _, m in rows if i in self._held], dropped

    def _commit(self, batch: list[Row], acked: list[int]) -> tuple[list[Row], _Delta]:
        db = self._db
        assert db is not None
        delta = _Delta()
        with transaction(db):
            if batch:
                rows = [(i, c, m.topic, pack(m.payload), int(m.retain)) for i, c, m in batch]
                db.executemany("INSERT INTO q VALUES (?, ?, ?, ?, ?)", rows)
                delta.stored += len(batch)
                delta.bytes += sum(len(r[3]) for r in rows)
            for chunk in range(0, len(acked), 500):
                ids = acked[chunk : chunk + 500]
                marks = ",".join("?" * len(ids))
                n, size = db.execute(
                    f"SELECT count(*), coalesce(sum(length(payload)), 0) FROM q"
                    f" WHERE id IN ({marks})",
                    ids,
                ).fetchone()
                db.execute(f"DELETE FROM q WHERE id IN ({marks})", ids)
                delta.stored -= n
                delta.bytes -= size
            self._enforce_bounds(db, delta)
            high = max(self._high_on_disk, batch[-1][0] if batch else 0)
            if acked or delta.dropped:
                # max(id) of the table keeps ids above what is stored; only a delete can
                # take the highest row away, so the high-water mark is written only then
                # (one page less per commit while the broker is away)
                db.execute(
                    "INSERT INTO meta VALUES ('last_id', ?)"
                    " ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                    (high,),
                )
        self._high_on_disk = high
        survivors = batch
        if delta.dropped:
            first = db.execute("SELECT min(id) FROM q").fetchone()[0]
            survivors = [p for p in batch if first is not None and p[0] >= first]
        return survivors, delta

    def _enforce_bounds(self, db: sqlite3.Connection, delta: _Delta) -> None:
        old = time.time() - self.max_age_s
        # rows are stored oldest first: look at the first one (an index lookup) instead of
        # scanning a big backlog on every commit
        while (
            first := db.execute("SELECT created FROM q ORDER BY id LIMIT 1").fetchone()
        ) and aged(first[0], old):
            self._drop_oldest(db, delta, 1000, old, PLAUSIBLE_SINCE)
        while self.bytes + delta.bytes > self.max_bytes and self.stored + delta.stored:
            # drop the oldest ~1 % at a time (at least 100) until the payload fits
            self._drop_oldest(db, delta, max(100, (self.stored + delta.stored) // 100))

    @staticmethod
    def _drop_oldest(
        db: sqlite3.Connection,
        delta: _Delta,
        batch: int,
        created_before: float = float("inf"),
        created_since: float = float("-inf"),
    ) -> None:
        window = (created_before, created_since)
        n, size, last = db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0), max(id) FROM"
            " (SELECT id, payload FROM q WHERE created < ? AND created >= ? ORDER BY id LIMIT ?)",
            (*window, batch),
        ).fetchone()
        db.execute("DELETE FROM q WHERE id <= ? AND created < ? AND created >= ?", (last, *window))
        delta.stored -= n
        delta.bytes -= size
        delta.dropped += n

    async def read(self, from_id: int, below_id: int, limit: int) -> list[tuple[int, Message]]:
        """Messages with from_id <= id < below_id, oldest first: those on disk, those held
        in memory while the disk refused them, and those put but not committed yet."""
        # a file that cannot be opened for writing (a full disk at start or after a
        # reload) may still hold messages the last process wrote: read them all the same,
        # or the publisher would pass them by until the next start
        reader = self._read if self._db else self._read_unopened
        rows = await self._run(reader, from_id, below_id, limit)
        # after the disk read: a commit that failed meanwhile moved its rows here
        held = [
            (i, m)
            for i, (_, m) in (*self._held.items(), *self._pending.items())
            if from_id <= i < below_id
        ][:limit]
        if not held:
            return rows
        merged = dict(rows)
        merged.update(held)  # the same id in both: a commit wrote it in between
        return sorted(merged.items())[:limit]

    def _read(self, from_id: int, below_id: int, limit: int) -> list[tuple[int, Message]]:
        assert self._db is not None
        try:
            cur = self._db.execute(
                "SELECT id, topic, payload, retain FROM q WHERE id >= ? AND id < ?"
                " ORDER BY id LIMIT ?",
                (from_id, below_id, limit),
            )
            return [(i, Message(t, unpack(bytes(p)), bool(r))) for i, t, p, r in cur]
        except sqlite3.Error as exc:  # an I/O error reading: the held part still goes out
            log.warning("%s: cannot read the backlog from %s: %s", self.name, self.path, exc)
            return []

    def _read_unopened(self, from_id: int, below_id: int, limit: int) -> list[tuple[int, Message]]:
        if not self.path.exists():
            return []
        rows = read_only_query(
            self.path,
            "SELECT id, topic, payload, retain FROM q"
            f" WHERE id >= {int(from_id)} AND id < {int(below_id)} ORDER BY id LIMIT {int(limit)}",
        )
        return [(i, Message(t, unpack(bytes(p)), bool(r))) for i, t, p, r in rows or []]

    async def close(self, hand_over: bool = False) -> list[Message]:
        """Commit what is buffered and close the file. What the disk still refuses is lost
        with the process (said in the log), or, with ``hand_over`` (a reload), returned for
        the next agent's spool to take."""
        if self._commit_task is not None and not self._commit_task.done():
            await asyncio.wait([self._commit_task])  # interrupted by the stop: finish it
        self._retry_at = 0.0  # one last try, whatever the last failure
        if self.dirty:
            await self.commit()
        left = [m for _, m in self._held.values()]
        if left and hand_over:
            log.warning(
                "%s: %d message(s) held in memory go to the reloaded agent", self.name, len(left)
            )
        elif left:
            log.error(
                "%s: %d message(s) could not be written to %s (disk full or read-only) and "
                "are lost with this stop",
                self.name,
                len(self._held),
                self.path,
            )
        if self._db is not None:
            await self._run(self._db.close)
        self._pool.shutdown(wait=True)
        return left if hand_over else []


# A Raspberry Pi has no real-time clock: it may boot in 1970 and step forward once NTP answers
# (README, "Time"). A message stamped before this moment was made on such a clock: its age is
# unknown, and it must not be dropped as "older than max_age" when the clock steps forward.
PLAUSIBLE_SINCE = 1_735_689_600.0  # 2025-01-01T00:00:00Z, before this release was written


def aged(created: float, old: float) -> bool:
    """Past ``max_age`` (created before ``old``), and stamped by a clock that was plausible."""
    return PLAUSIBLE_SINCE <= created < old


def _last_id_read_only(path: Path) -> int:
    """The last id in a spool that cannot be opened for writing (a read-only disk), so ids
    stay above the file's even before it can be written again (see _renumber_after)."""
    if not path.exists():
        return 0
    rows = read_only_query(
        path,
        "SELECT max(coalesce((SELECT max(id) FROM q), 0),"
        " coalesce((SELECT v FROM meta WHERE k = 'last_id'), 0))",
    )
    return int(rows[0][0]) if rows else 0


async def keep_committing(
    spool: Spool,
    interval: float,
    on_commit: Callable[[CommitResult], None] | None = None,
    before: Callable[[], None] | None = None,
) -> None:
    """Commit every ``interval`` while there is something to commit, until cancelled. A
    disk that refuses writes is said once by the spool's :class:`StorageHealth`, and once
    when it takes them again; meanwhile nothing is lost: the spool holds it in memory.
    ``before`` runs ahead of each commit (the output hands over its acknowledgements)."""
    while True:
        await asyncio.sleep(interval)
        if before is not None:
            before()
        if not spool.dirty:
            spool.watch_disk()
            continue
        result = await spool.commit_shielded()
        if on_commit is not None:
            on_commit(result)

"""The disk spool: every outgoing message is stored here before it is published, and leaves
only when the broker acknowledged it (QoS 1 PUBACK).

One SQLite database in WAL mode. Writes are batched: :meth:`Spool.put` only buffers, and
:meth:`Spool.commit` (the output calls it every ``commit_interval``) stores the buffered
messages, deletes the acknowledged ones and enforces the bounds in a single transaction, so
an SD card sees one small write burst per interval instead of one per message. A message is
handed to the publisher only after the transaction that stored it committed, so a crash can
lose nothing that was ever offered to the broker; with ``durability: full`` (the default)
each commit is also fsynced, so a power cut loses at most the last interval's readings and
never corrupts the file (SQLite's WAL guarantees).

Bounds: at most ``max_bytes`` of payload and ``max_age_s`` of age; past either, the oldest
messages are dropped and counted (:attr:`Spool.dropped`), never the newest.

Ids are assigned here, strictly increasing and never reused (the high-water mark is kept in
the file), so the publisher can tell "older than this connection" (the backlog) from live.

All database work runs on one worker thread (:meth:`Spool.run`), never on the event loop,
so an fsync on a slow card does not delay polling.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from agent.messages import Message

log = logging.getLogger(__name__)

T = TypeVar("T")
Durability = Literal["full", "normal"]


class SpoolError(Exception):
    """The spool cannot be opened or written; the message says why and what to do."""


@dataclass
class CommitResult:
    stored: list[tuple[int, Message]]  # committed now, in id order: ready to publish
    dropped: int  # oldest messages dropped by the bounds in this commit


def _explain(path: Path, exc: Exception) -> str:
    text = str(exc)
    if "full" in text:
        return (
            f"the disk holding the spool {path} is full: free space there or lower "
            "spool.max_mb; readings are kept in memory meanwhile"
        )
    if "readonly" in text or "unable to open" in text or isinstance(exc, OSError):
        return (
            f"cannot write the spool {path} ({text}): give the agent's user write access to "
            "that directory, or set spool.path to a writable place"
        )
    return f"spool {path}: {text}"


class Spool:
    def __init__(
        self,
        path: Path,
        max_bytes: int = 100 * 2**20,
        max_age_s: float = 7 * 86400,
        durability: Durability = "full",
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="spool")
        self._pending: list[tuple[int, float, Message]] = []
        self._acked: list[int] = []
        self.dropped = 0
        self.commits = 0
        self.failed_commits = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={durability.upper()}")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS q (id INTEGER PRIMARY KEY, created REAL NOT NULL,"
                " topic TEXT NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER)")
            row = self._db.execute(
                "SELECT max(coalesce((SELECT max(id) FROM q), 0),"
                " coalesce((SELECT v FROM meta WHERE k = 'last_id'), 0)),"
                " (SELECT count(*) FROM q), (SELECT coalesce(sum(length(payload)), 0) FROM q)"
            ).fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise SpoolError(_explain(path, exc)) from None
        self._last_id, self.stored, self.bytes = int(row[0]), int(row[1]), int(row[2])
        self._committed_below = self._last_id + 1

    # -- called on the event loop: cheap, no I/O ------------------------------------------

    @property
    def next_id(self) -> int:
        """The id the next :meth:`put` gets: everything below it is already known."""
        return self._last_id + 1

    @property
    def committed_below(self) -> int:
        """Ids below this are on disk (or gone); ids from it on are handed out by a later
        :meth:`commit`, even while one is running. A publisher that reads the backlog from
        disk must stop here, or it misses what a commit in progress is still writing."""
        return self._committed_below

    def put(self, msg: Message) -> int:
        self._last_id += 1
        self._pending.append((self._last_id, time.time(), msg))
        return self._last_id

    def ack(self, msg_id: int) -> None:
        self._acked.append(msg_id)

    @property
    def backlog(self) -> int:
        """Messages waiting for an acknowledgement (stored or about to be)."""
        return self.stored + len(self._pending) - len(self._acked)

    @property
    def unsaved(self) -> int:
        """Messages put but not committed yet (not handed to the publisher either)."""
        return len(self._pending)

    @property
    def dirty(self) -> bool:
        return bool(self._pending or self._acked)

    # -- database work, on the spool's thread ---------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def commit(self) -> CommitResult:
        """Store what was put, forget what was acknowledged, apply the bounds."""
        pending, self._pending = self._pending, []
        acked, self._acked = self._acked, []
        try:
            result: CommitResult = await self._run(self._commit, pending, acked)
        except sqlite3.Error as exc:
            # keep everything for the next attempt: nothing that was accepted is lost
            self._pending = pending + self._pending
            self._acked = acked + self._acked
            self.failed_commits += 1
            raise SpoolError(_explain(self.path, exc)) from None
        self.commits += 1
        self.dropped += result.dropped
        if pending:
            self._committed_below = pending[-1][0] + 1
        return result

    def _commit(self, pending: list[tuple[int, float, Message]], acked: list[int]) -> CommitResult:
        db = self._db
        dropped = 0
        with db:  # one transaction
            if acked:
                freed = 0
                for chunk in range(0, len(acked), 500):
                    ids = acked[chunk : chunk + 500]
                    marks = ",".join("?" * len(ids))
                    n, size = db.execute(
                        f"SELECT count(*), coalesce(sum(length(payload)), 0) FROM q"
                        f" WHERE id IN ({marks})",
                        ids,
                    ).fetchone()
                    db.execute(f"DELETE FROM q WHERE id IN ({marks})", ids)
                    self.stored -= n
                    freed += size
                self.bytes -= freed
            if pending:
                db.executemany(
                    "INSERT INTO q VALUES (?, ?, ?, ?, ?)",
                    [(i, c, m.topic, m.payload, int(m.retain)) for i, c, m in pending],
                )
                self.stored += len(pending)
                self.bytes += sum(len(m.payload) for _, _, m in pending)
                db.execute(
                    "INSERT INTO meta VALUES ('last_id', ?)"
                    " ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                    (pending[-1][0],),
                )
            dropped = self._enforce_bounds(db)
        survivors = pending
        if dropped:
            first = db.execute("SELECT min(id) FROM q").fetchone()[0]
            survivors = [p for p in pending if first is not None and p[0] >= first]
        return CommitResult([(i, m) for i, _, m in survivors], dropped)

    def _enforce_bounds(self, db: sqlite3.Connection) -> int:
        dropped = 0
        old = time.time() - self.max_age_s
        # rows are stored oldest first: look at the first one (an index lookup) instead of
        # scanning a big backlog on every commit
        while (first := db.execute("SELECT created FROM q ORDER BY id LIMIT 1").fetchone()) and (
            first[0] < old
        ):
            dropped += self._drop_oldest(db, 1000, old)
        while self.bytes > self.max_bytes and self.stored:
            # drop the oldest ~1 % at a time (at least 100) until the payload fits
            dropped += self._drop_oldest(db, max(100, self.stored // 100))
        return dropped

    def _drop_oldest(
        self, db: sqlite3.Connection, batch: int, created_before: float = float("inf")
    ) -> int:
        n, size, last = db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0), max(id) FROM"
            " (SELECT id, payload FROM q WHERE created < ? ORDER BY id LIMIT ?)",
            (created_before, batch),
        ).fetchone()
        db.execute("DELETE FROM q WHERE id <= ?", (last,))
        self.stored, self.bytes = self.stored - n, self.bytes - size
        return int(n)

    async def read(self, from_id: int, below_id: int, limit: int) -> list[tuple[int, Message]]:
        """Stored messages with from_id <= id < below_id, oldest first."""
        return await self._run(self._read, from_id, below_id, limit)

    def _read(self, from_id: int, below_id: int, limit: int) -> list[tuple[int, Message]]:
        cur = self._db.execute(
            "SELECT id, topic, payload, retain FROM q WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (from_id, below_id, limit),
        )
        return [(i, Message(t, bytes(p), bool(r))) for i, t, p, r in cur]

    async def close(self) -> None:
        """Commit what is buffered and close the file."""
        if self.dirty:
            try:
                await self.commit()
            except SpoolError as exc:
                log.error("%s", exc)
        await self._run(self._db.close)
        self._pool.shutdown(wait=True)


async def keep_committing(
    spool: Spool, interval: float, on_commit: Callable[[CommitResult], None] | None = None
) -> None:
    """Commit every ``interval`` while there is something to commit, until cancelled. A
    commit that fails (a full disk) is said once, and said again when it works again;
    meanwhile nothing is lost: the spool keeps what it could not write, in memory."""
    failing = False
    while True:
        await asyncio.sleep(interval)
        if not spool.dirty:
            continue
        try:
            result = await spool.commit()
        except SpoolError as exc:
            if not failing:
                log.error("%s", exc)
            failing = True
            continue
        if failing:
            log.info("the spool is writable again")
            failing = False
        if on_commit is not None:
            on_commit(result)

"""Message sequence numbers that survive restarts and never repeat, without a disk write per
message.

``seq`` counts the messages of one device on one stream, +1 each (DESIGN.md). A counter kept
only in memory would restart at 1 and make new messages look like duplicates; one written
per message would wear out an SD card. So numbers are reserved in blocks (the hi/lo scheme):
the file holds a ceiling, rewritten once per ``block`` messages, and a clean shutdown records
the exact value. After a crash the counter resumes at the ceiling: consumers see a gap (the
truth: messages may have been lost with the process), never a reused number.

A number is handed out only below a ceiling that is already on disk. The next block is
reserved when half of the current one is used, so a disk that refuses writes for a while
(full, read-only) costs nothing until the reserve runs out. When it has: :meth:`next`
returns ``None`` and the message goes out without a ``seq`` (README, "MQTT contract") rather
than with a number that a crash could hand out again. On a disk that cannot be read at start
nothing is known, so nothing is numbered until it can be. A damaged file is moved aside and
every stream starts above any number it can have used (:meth:`_start_above_everything`).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from vatio.agent.storage import StorageHealth, explain, open_db, transaction

FLOOR_KEY = ("", "floor")  # not a device: where streams new to the store start


class SeqStore:
    RETRY_S = 5.0  # while the disk refuses writes, try to reserve again this often

    def __init__(self, path: Path, block: int = 1000, health: StorageHealth | None = None) -> None:
        self.path = path
        self.block = block
        self.health = health or StorageHealth()
        self.unnumbered = 0  # messages that got no seq: the disk refused the reservation
        self._next: dict[tuple[str, str], int] = {}
        self._ceiling: dict[tuple[str, str], int] = {}  # on disk: numbers below it are ours
        self._retry_at = 0.0
        self._floor = 1  # where a stream new to this store starts
        self._db: sqlite3.Connection | None = None
        self._open()

    def _open(self) -> bool:
        replaced: list[float] = []  # the damaged file's last write, if it was replaced
        try:
            db, rows = open_db(
                self.path,
                [
                    "CREATE TABLE IF NOT EXISTS seq (device TEXT, stream TEXT, next INTEGER,"
                    " PRIMARY KEY (device, stream))"
                ],
                query="SELECT device, stream, next FROM seq",
                on_replaced=lambda aside: replaced.append(aside.stat().st_mtime),
            )
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return False
        self._db = db
        for device, stream, nxt in rows:
            if (device, stream) == FLOOR_KEY:
                self._floor = nxt
                continue
            key = (device, stream)
            # numbers handed out from memory meanwhile (none: nothing was known) stay below
            self._next[key] = max(self._next.get(key, 1), nxt)
            self._ceiling[key] = nxt
        if replaced:
            self._start_above_everything(replaced[0])
        self.health.ok("seq", self.path)
        return True

    def _start_above_everything(self, last_written: float) -> None:
        """The counters were lost with a damaged file. Every stream starts again above any
        number it can have used: the time in milliseconds exceeds the count of a stream
        that sent fewer than 1,000 messages a second since 1970. The later of now and the
        damaged file's last write, so a clock that booted behind (no RTC) still starts above.
        One big gap, never a repeat; kept on disk for the streams that have not sent yet."""
        self._floor = int(max(time.time(), last_written) * 1000)
        assert self._db is not None
        try:
            self._write(FLOOR_KEY, self._floor)
        except sqlite3.Error as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.RETRY_S
        self.health.failed("seq", self.path, explain(self.path, exc))

    def next(self, device: str, stream: str) -> int | None:
        """The next number for (device, stream), or ``None`` while none can be reserved."""
        key = (device, stream)
        if self._db is None and (time.monotonic() < self._retry_at or not self._open()):
            self.unnumbered += 1
            return None
        value = self._next.get(key, self._floor)
        ceiling = self._ceiling.get(key, self._floor)
        if value >= ceiling - self.block // 2 and time.monotonic() >= self._retry_at:
            self._reserve(key, max(ceiling, value) + self.block)
            ceiling = self._ceiling.get(key, self._floor)
        if value >= ceiling:
            self.unnumbered += 1
            return None
        self._next[key] = value + 1
        return value

    def _reserve(self, key: tuple[str, str], ceiling: int) -> None:
        assert self._db is not None
        try:
            self._write(key, ceiling)
        except sqlite3.Error as exc:
            self._failed(exc)
            return
        self._ceiling[key] = ceiling  # only now: the numbers below it are on disk
        self.health.ok("seq", self.path)

    def _write(self, key: tuple[str, str], value: int) -> None:
        assert self._db is not None
        self._db.execute(
            "INSERT INTO seq VALUES (?, ?, ?) ON CONFLICT (device, stream)"
            " DO UPDATE SET next = excluded.next",
            (*key, value),
        )

    def close(self) -> None:
        """Record the exact next values, so a clean restart leaves no gap. On a disk that
        refuses, the stored ceilings stay: the restart leaves a gap, never a repeat."""
        if self._db is None:
            return
        try:
            with transaction(self._db):
                for key, value in self._next.items():
                    self._write(key, value)
        except sqlite3.Error as exc:
            self.health.failed("seq", self.path, explain(self.path, exc))
        self._db.close()
        self._db = None

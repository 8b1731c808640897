"""Message sequence numbers that survive restarts, without a disk write per message.

``seq`` counts the messages of one device on one stream, +1 each (DESIGN.md). A counter kept
only in memory would restart at 1 and make new messages look like duplicates; one written
per message would wear out an SD card. So numbers are reserved in blocks (the hi/lo scheme):
the file holds a ceiling, rewritten once per ``block`` messages, and a clean shutdown records
the exact value. After a crash the counter resumes at the ceiling: consumers see a gap (the
truth: messages may have been lost with the process), never a reused number.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class SeqStore:
    def __init__(self, path: Path, block: int = 1000) -> None:
        self.block = block
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seq (device TEXT, stream TEXT, next INTEGER,"
            " PRIMARY KEY (device, stream))"
        )
        self._next: dict[tuple[str, str], int] = {}
        self._ceiling: dict[tuple[str, str], int] = {}
        for device, stream, nxt in self._db.execute("SELECT device, stream, next FROM seq"):
            self._next[(device, stream)] = nxt
            self._ceiling[(device, stream)] = nxt

    def next(self, device: str, stream: str) -> int:
        key = (device, stream)
        value = self._next.get(key, 1)
        if value >= self._ceiling.get(key, 1):
            self._ceiling[key] = value + self.block
            self._write(key, self._ceiling[key])
        self._next[key] = value + 1
        return value

    def _write(self, key: tuple[str, str], value: int) -> None:
        self._db.execute(
            "INSERT INTO seq VALUES (?, ?, ?) ON CONFLICT (device, stream)"
            " DO UPDATE SET next = excluded.next",
            (*key, value),
        )

    def close(self) -> None:
        """Record the exact next values, so a clean restart leaves no gap."""
        with self._db:
            for key, value in self._next.items():
                self._write(key, value)
        self._db.close()

"""The agent's files in ``state_dir``: opening them, writing them in real transactions, and
saying — once — when the disk refuses writes and when it takes them again.

A full or read-only disk is an expected state on a gateway (a small SD card, a card that
went read-only after errors), not a crash: every store (spool, sequence numbers, metrics)
keeps working from memory meanwhile, reports here, and writes again when it can.

Python's ``sqlite3`` in autocommit mode (``isolation_level=None``) makes ``with db:`` a
no-op: statements commit one by one. A batch that fails half-way then leaves half of itself
on disk (issue 12: the spool wedged on ``UNIQUE constraint failed`` after a full disk), so
every multi-statement write here goes through :func:`transaction`.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

log = logging.getLogger(__name__)

# errors that describe the state of the disk, not a mistake in the config: the agent runs on
# and writes again once they clear (an EACCES or a file in the path is a config mistake)
DISK_STATES = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO}


class StoreUnavailable(Exception):
    """A store cannot write its file now; the message says why and what to do."""


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any error: all or nothing."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (it does so by itself after SQLITE_FULL)
        with suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def disk_state(path: Path) -> int | None:
    """Can files be created in ``path``'s directory? ``None`` if so; else the errno, which
    is in :data:`DISK_STATES` when the disk is full or read-only (a state that passes)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.probe"
        with open(probe, "wb") as f:
            f.write(b"x")  # a full disk may still create an empty file: write a byte
        probe.unlink()
    except OSError as exc:
        return exc.errno or errno.EIO
    return None


def explain(path: Path, exc: BaseException) -> str:
    """One sentence for a technician: what is wrong with the file and what to do."""
    text = str(exc)
    code = getattr(exc, "errno", None)
    if code is None:  # SQLite says "unable to open database file": ask the disk itself
        code = disk_state(path)
    if code in (errno.ENOSPC, errno.EDQUOT) or "full" in text:
        return (
            f"the disk holding {path} is full: free space there (or lower spool.max_mb); "
            "readings are kept in memory meanwhile"
        )
    if code == errno.EROFS or "readonly" in text or "read-only" in text:
        return (
            f"the disk holding {path} is read-only (a worn or failing SD card is remounted "
            "read-only): readings are kept in memory meanwhile; check the card"
        )
    return f"cannot write {path} ({text})"


class StorageHealth:
    """Which stores cannot write now. Logs one line when the first one fails and one when
    all write again, whatever the number of stores and attempts in between."""

    def __init__(self) -> None:
        self._failing: dict[str, str] = {}  # store name → why
        self.failures = 0  # failed write attempts, all stores

    def failed(self, store: str, why: str) -> None:
        self.failures += 1
        if not self._failing:
            log.error("%s", why)
        self._failing[store] = why

    def ok(self, store: str) -> None:
        if self._failing.pop(store, None) is not None and not self._failing:
            log.warning("the disk takes writes again: the state and the spool are stored")

    @property
    def problem(self) -> str:
        """Why the agent cannot store now, or ``""``."""
        return next(iter(self._failing.values()), "")

    @property
    def failing(self) -> bool:
        return bool(self._failing)

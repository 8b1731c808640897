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
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# errors that describe the state of the disk, not a mistake in the config: the agent runs on
# and writes again once they clear (an EACCES or a file in the path is a config mistake)
DISK_STATES = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO}


# Hysteresis between "full" and "takes writes again". A nearly full disk still lets SQLite
# reuse a page now and then (a WAL frame, a freed row) and a failed temp file gives its
# blocks back: healing at the first write that goes through, or at the first free page,
# reported the disk full, healed, full again, every few seconds (CI, a 3 MiB tmpfs).
FULL_BELOW = 4096  # less room than a page: the disk counts as full
HEALED_ABOVE = 64 * 1024  # reported healed only with this much room again


def file_system_refuses(path: Path, min_free: int = FULL_BELOW) -> int | None:
    """ENOSPC or EROFS if ``statvfs`` says ``path``'s directory is read-only or has less than
    ``min_free`` bytes, else None (also when it cannot tell: the next write says)."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return errno.EROFS
    # root may write into the blocks reserved for it: full for root is f_bfree
    if (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize < min_free:
        return errno.ENOSPC
    return None


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


def read_only_query(path: Path, sql: str) -> list[Any] | None:
    """Rows of ``sql`` from a database that cannot be opened for writing (a read-only
    disk); ``None`` if it cannot be read at all. Falls back to ``immutable``, which needs no
    ``-shm`` file (none can be made on a read-only disk) but ignores an uncheckpointed WAL:
    after a clean stop the WAL is empty, after a crash the answer may be a little old."""
    for mode in ("ro", "ro&immutable=1"):
        try:
            db = sqlite3.connect(f"file:{path}?mode={mode}", uri=True)
            try:
                return db.execute(sql).fetchall()
            finally:
                db.close()
        except sqlite3.Error:
            continue
    return None


CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


def is_corrupt(exc: BaseException) -> bool:
    """The file is damaged (a power cut on a card that lies about fsync, or not SQLite at
    all): no retry will open it."""
    return getattr(exc, "sqlite_errorcode", None) in CORRUPT


def quarantine(path: Path) -> Path:
    """Move a damaged database (and its WAL files) aside, so a new one can start in its place
    and the old one stays for a post-mortem. Returns the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        old = path.with_name(path.name + suffix)
        if old.exists():
            old.rename(aside.with_name(aside.name + suffix))
    log.error("%s is damaged: moved it to %s and started a new one", path, aside)
    return aside


def open_db(
    path: Path,
    schema: list[str],
    synchronous: str = "NORMAL",
    query: str | None = None,
    on_replaced: Callable[[Path], None] | None = None,
    page_size: int | None = None,
) -> tuple[sqlite3.Connection, list[Any]]:
    """Open (or create) a store's SQLite file in WAL mode with its ``schema``, and run
    ``query`` on it; returns the connection and the query's rows. A damaged file is moved
    aside (:func:`quarantine`) and a new one made in its place, once: a store that cannot
    start would stop every later start of the agent. Other errors (a full or read-only disk)
    are raised for the store to report. ``on_replaced`` is told where the damaged file went.
    ``page_size`` applies to a new file only (SQLite keeps an existing file's)."""
    for attempt in (1, 2):
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            if page_size is not None:  # before WAL mode: it cannot change in WAL
                db.execute(f"PRAGMA page_size={int(page_size)}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            for statement in schema:
                db.execute(statement)
            rows = db.execute(query).fetchall() if query else []
        except sqlite3.Error as exc:
            db.close()
            if attempt == 2 or not is_corrupt(exc):
                raise
            aside = quarantine(path)
            if on_replaced is not None:
                on_replaced(aside)
            continue
        except BaseException:
            db.close()
            raise
        return db, rows
    raise AssertionError("unreachable")


class StorageHealth:
    """Which stores cannot write now. Logs one line when the first one fails and one when
    all write again, whatever the number of stores and attempts in between.

    A store that writes again vouches for the others in the same directory (the same disk):
    the metrics state is saved once a minute, and the disk should not be reported full for
    a minute after the spool found room."""

    def __init__(self) -> None:
        self._failing: dict[str, tuple[Path, str]] = {}  # store name → (its directory, why)
        self.failures = 0  # failed write attempts, all stores

    def failed(self, store: str, path: Path, why: str) -> None:
        self.failures += 1
        if not self._failing:
            log.error("%s", why)
        self._failing[store] = (path.parent, why)

    def ok(self, store: str, path: Path) -> None:
        if not self._failing:
            return
        if file_system_refuses(path, HEALED_ABOVE) is not None:
            return  # a write found a page, but the disk is still (nearly) full
        for name, (where, _) in list(self._failing.items()):
            if name == store or where == path.parent:
                del self._failing[name]
        if not self._failing:
            log.warning("the disk takes writes again: the state and the spool are stored")

    @property
    def problem(self) -> str:
        """Why the agent cannot store now, or ``""``."""
        return next((why for _, why in self._failing.values()), "")

    @property
    def failing(self) -> bool:
        return bool(self._failing)

"""Is the system clock synchronised? The kernel's answer, read without privileges.

A Raspberry Pi has no real-time clock: it boots with the last saved time (fake-hwclock) or
1970, and the time is right only once a time source (NTP via systemd-timesyncd or chrony, or
an RTC HAT) has set it. Readings stamped before that carry a wrong date. This module asks
the kernel the same question ``timedatectl``'s "System clock synchronized" asks:
``adjtimex(2)`` with ``modes = 0`` (read only; nothing here ever sets the clock), and the
clock counts as synchronised when the kernel's maximum error is below its 16 s limit
(systemd's ``ntp_synced()`` rule: it ignores ``STA_UNSYNC``, which chrony leaves set unless
``rtcsync`` is configured). The kernel grows that maximum error by 500 ppm between
corrections, so a time source that stops answering turns the clock unsynchronised again
after about 9 hours: that is how "the time source is unreachable" shows.

Where the call is refused (a systemd unit with ``ProtectClock=yes`` filters even the read:
systemd issue #26413), the flag file systemd-timesyncd writes on its first synchronisation
since boot (``/run/systemd/timesync/synchronized``) is used instead; failing both, the state
is *unknown* and the caller decides (``time.require_sync``).

Under ``VATIO_SIMULATED_TIME`` the simulated clock counts as synchronised. ``VATIO_TIME_SYNC``
overrides the answer, for tests and diagnostics only (this module never changes the real
clock): ``yes`` / ``no``, or the path of a file holding ``yes`` or ``no``, optionally
followed by ``offset=SECONDS``: the agent's clock then reads that far off, to rehearse a
gateway that booted with a wrong clock. The file is re-read at each refresh, so a test can
"synchronise" a running agent by rewriting it.

Reading costs one system call; :func:`state` caches the answer for :data:`CACHE_S` seconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vatio.common import clock

ENV = "VATIO_TIME_SYNC"
CACHE_S = 2.0
MAX_ERROR_LIMIT_US = 16_000_000  # the kernel's NTP_PHASE_LIMIT: at or above it, unsynchronised
TIME_ERROR = 5  # adjtimex's return value for "clock not synchronised"
STA_UNSYNC = 0x0040
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")

Source = Literal["kernel", "timesyncd", "simulated", "override", "unavailable"]


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """``struct timex`` of <sys/timex.h> (glibc and musl share the layout)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),  # room the kernel may write into
    ]


@dataclass(frozen=True)
class SyncState:
    """``synchronised`` is None when nothing could tell (the caller's policy decides)."""

    synchronised: bool | None
    source: Source
    max_error_s: float | None = None  # the kernel's bound on the clock's error
    est_error_s: float | None = None
    kernel_status: int | None = None  # adjtimex's status bits (STA_*)
    detail: str = ""  # why the state is unknown, or what the override said

    def describe(self) -> str:
        if self.synchronised is None:
            return f"unknown ({self.detail})"
        word = "synchronised" if self.synchronised else "not synchronised"
        if self.max_error_s is not None:
            return f"{word} ({self.source}: max error {self.max_error_s:g} s)"
        return f"{word} ({self.source}{': ' + self.detail if self.detail else ''})"


_libc: ctypes.CDLL | None = None


def read_kernel() -> SyncState:
    """The kernel's answer now: ``adjtimex`` with ``modes = 0`` (a read; never a change)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        tx = _Timex()
        tx.modes = 0  # read only: never pass anything else here
        ret = _libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError) as exc:  # no libc, no adjtimex (not Linux)
        return _fallback(f"adjtimex unavailable: {exc}")
    if ret < 0:
        err = ctypes.get_errno()
        reason = os.strerror(err)
        if err == errno.EPERM:
            reason += " (a sandbox filters adjtimex: systemd's ProtectClock=yes does)"
        return _fallback(f"adjtimex: {reason}")
    return SyncState(
        tx.maxerror < MAX_ERROR_LIMIT_US,
        "kernel",
        max_error_s=tx.maxerror / 1e6,
        est_error_s=tx.esterror / 1e6,
        kernel_status=tx.status,
        detail=f"adjtimex returned {ret}" + (" (TIME_ERROR)" if ret == TIME_ERROR else ""),
    )


def _fallback(why: str) -> SyncState:
    if TIMESYNCD_FLAG.exists():  # timesyncd synchronised the clock since boot (/run is tmpfs)
        return SyncState(True, "timesyncd", detail=f"{TIMESYNCD_FLAG}; {why}")
    return SyncState(None, "unavailable", detail=why)


@dataclass(frozen=True)
class Override:
    synchronised: bool
    offset_s: float = 0.0


def parse_override(text: str) -> Override:
    """``yes|no [offset=SECONDS]``; ValueError says what is wrong."""
    words = text.split()
    if not words or words[0].lower() not in _WORDS:
        raise ValueError(f"{ENV}: write yes or no (optionally offset=SECONDS), not '{text}'")
    offset = 0.0
    for w in words[1:]:
        key, _, value = w.partition("=")
        if key != "offset":
            raise ValueError(f"{ENV}: unknown '{w}': only offset=SECONDS may follow")
        try:
            offset = float(value)
        except ValueError:
            raise ValueError(f"{ENV}: offset must be a number of seconds, not '{value}'") from None
    return Override(_WORDS[words[0].lower()], offset)


_WORDS = {
    "yes": True,
    "synchronised": True,
    "synchronized": True,
    "no": False,
    "unsynchronised": False,
    "unsynchronized": False,
}


def read_override(spec: str) -> Override:
    if spec.lower() in _WORDS:
        return parse_override(spec)
    try:
        return parse_override(Path(spec).read_text())
    except OSError as exc:
        raise ValueError(f"{ENV}: cannot read '{spec}': {exc.strerror}") from None


_cached: tuple[float, SyncState] | None = None


def refresh() -> SyncState:
    """Ask again now (the override file included), and remember the answer."""
    global _cached
    spec = os.environ.get(ENV)
    if spec:
        try:
            o = read_override(spec)
        except ValueError as exc:  # a half-written file: keep the last answer a moment
            if _cached is not None:
                return _cached[1]
            st = SyncState(None, "override", detail=str(exc))
        else:
            clock.set_error(o.offset_s)
            st = SyncState(o.synchronised, "override", detail=spec)
    elif clock.simulated():
        st = SyncState(True, "simulated")
    else:
        st = read_kernel()
    _cached = (time.monotonic(), st)
    return st


def state() -> SyncState:
    """The sync state, at most :data:`CACHE_S` seconds old."""
    c = _cached
    if c is not None and time.monotonic() - c[0] < CACHE_S:
        return c[1]
    return refresh()


def forget() -> None:
    """Drop the cached answer and any override offset (tests; a reload)."""
    global _cached
    _cached = None
    clock.set_error(0.0)

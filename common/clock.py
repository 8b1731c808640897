"""The agent's clock: the wall clock, or a simulated one that runs faster, for replays.

Everything that stamps a reading or schedules a poll asks :func:`now` and :func:`sleep`
instead of :mod:`time`, so a simulated day can run in a minute: set ``VATIO_SIMULATED_TIME``
to ``START,SPEED[,ANCHOR]`` (START an ISO 8601 time with its UTC offset, SPEED how many
simulated seconds pass per real second, ANCHOR the real Unix time at which the simulated
clock reads START, default: when the process starts). ``vatio run`` and ``vatio simulate``
both read it, so an agent and its simulated meters given the same value share one clock.
Timeouts on the wire stay real: only time as the readings see it is simulated.

:func:`monotonic` is the same clock's steady counterpart (it never steps; it runs at the
simulated speed): the metrics engine uses it to link readings taken while the wall clock was
not yet trusted to the true time once it is (common/timesync.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from dataclasses import dataclass

ENV = "VATIO_SIMULATED_TIME"


@dataclass(frozen=True)
class SimulatedClock:
    start: float  # simulated Unix time at ``anchor``
    speed: float
    anchor: float  # real Unix time

    def now(self) -> float:
        return self.start + (time.time() - self.anchor) * self.speed

    @classmethod
    def parse(cls, spec: str) -> SimulatedClock:
        """``START,SPEED[,ANCHOR]``; raises ValueError saying what is wrong."""
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) not in (2, 3):
            raise ValueError(
                f"{ENV}='{spec}': write START,SPEED[,ANCHOR], e.g. 2026-11-03T00:00:00-06:00,1440"
            )
        try:
            start = dt.datetime.fromisoformat(parts[0])
        except ValueError:
            raise ValueError(f"{ENV}: '{parts[0]}' is not an ISO 8601 time") from None
        if start.tzinfo is None:
            raise ValueError(f"{ENV}: give '{parts[0]}' its UTC offset, e.g. -06:00")
        try:
            speed = float(parts[1].removeprefix("x"))
            anchor = float(parts[2]) if len(parts) == 3 else time.time()
        except ValueError:
            raise ValueError(f"{ENV}: SPEED and ANCHOR must be numbers") from None
        if not 0 < speed <= 100_000:
            raise ValueError(f"{ENV}: SPEED must be above 0 and at most 100000")
        return cls(start.timestamp(), speed, anchor)


_clock: SimulatedClock | None = None
_error = 0.0  # seconds the clock is made to read off (VATIO_TIME_SYNC offset=: rehearsals only)


def use(clock: SimulatedClock | None) -> None:
    """Make ``clock`` this process's clock (None: the wall clock)."""
    global _clock
    _clock = clock


def use_environment() -> SimulatedClock | None:
    """Use the clock ``VATIO_SIMULATED_TIME`` describes, if set (ValueError if malformed)."""
    spec = os.environ.get(ENV)
    use(SimulatedClock.parse(spec) if spec else None)
    return _clock


def now() -> float:
    """Unix time as readings see it."""
    return (time.time() if _clock is None else _clock.now()) + _error


def monotonic() -> float:
    """Seconds of this clock's time from an arbitrary origin; never steps."""
    return time.monotonic() * speed()


def simulated() -> bool:
    return _clock is not None


def set_error(seconds: float) -> None:
    """Make :func:`now` read ``seconds`` off (common/timesync.py's test override only)."""
    global _error
    _error = seconds


def speed() -> float:
    return 1.0 if _clock is None else _clock.speed


async def sleep(seconds: float) -> None:
    """Sleep ``seconds`` of this clock's time."""
    await asyncio.sleep(seconds / speed() if seconds > 0 else 0)

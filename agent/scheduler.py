"""Scheduler: when each device is polled, and what happens when a poll is late or fails.

* One worker per bus. Devices on different buses never wait for each other. On one bus, the
  transport decides how many requests run at once (one on RS-485; ``max_connections`` on TCP),
  and requests queue fairly (FIFO) for it.
* Ticks are aligned to the wall clock: a 1 s device polls every whole second, a 15 min
  device at :00, :15, :30, :45. With hundreds of devices each gets a fixed phase under one
  second (:func:`stagger`), so that 500 meters do not all hit the CPU and the network in the
  same millisecond. Each next tick is computed from the clock, never by adding sleeps, so there is
  no drift. If the clock steps (NTP), the schedule re-aligns: a step back does not stall
  the loop, and a step forward is told from a slow poll by the steady clock, so it neither
  bursts polls to catch up nor counts the skipped time as missed ticks. A reading's ``ts`` is
  when it was taken.
* A poll that outlasts the next tick makes that tick *missed*: counted, not queued up, so a
  slow device falls back to the ticks it can make instead of building a backlog.
* A device whose poll fails is *degraded* (one log line, one status and one event per change,
  not per poll). After three failures in a row it is polled less often (backoff up to
  ``BACKOFF_MAX``), so a dead meter does not eat the bus time of its healthy neighbours.
* A device that answers but keeps refusing part of its values (a driver sets
  ``PollResult.degraded``, e.g. a Modbus register the meter does not have) is *degraded* too,
  with that reason, but polled on schedule: what it gives is still wanted. A change between
  "fails" and "refuses values" is a change of state (said once), so an old reason never hides
  a new silence.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from vatio.common import clock as simulated_or_wall
from vatio.drivers.base import Driver
from vatio.drivers.reading import DeviceError, PollResult

log = logging.getLogger(__name__)

FAILURES_BEFORE_BACKOFF = 3
BACKOFF_MAX = 60.0  # seconds between attempts on a device that keeps failing


class Sink(Protocol):
    """Where the scheduler delivers results; a plain call, it must not block."""

    def readings(self, result: PollResult) -> None: ...

    def device_state(self, device: str, state: str, reason: str) -> None: ...


@dataclass
class DeviceStats:
    polls: int = 0
    failures: int = 0
    missed_ticks: int = 0
    backoff_skips: int = 0
    consecutive_failures: int = 0
    last_poll_s: float = 0.0
    state: str = "starting"
    partial: bool = False  # degraded because values are refused, not because polls fail
    last_error: str = ""
    heartbeat: float = 0.0  # monotonic time the device's loop last went round (or started)


@dataclass
class ScheduledDevice:
    driver: Driver
    interval: float
    where: str  # "bus 'x' (127.0.0.1:5020) unit 3", for messages
    phase: float = 0.0  # seconds after each aligned tick (see stagger)
    stats: DeviceStats = field(default_factory=DeviceStats)


def next_tick(now: float, interval: float, phase: float = 0.0) -> float:
    """The first tick ``k * interval + phase`` strictly after ``now``."""
    return (math.floor((now - phase) / interval) + 1) * interval + phase


DEVICES_PER_SLOT = 100
MAX_SLOTS = 5


def stagger_slots(devices: int) -> int:
    """How many phase slots a schedule of ``devices`` devices is spread over (1 to 5)."""
    return max(1, min(MAX_SLOTS, devices // DEVICES_PER_SLOT))


def stagger(name: str, interval: float, slots: int) -> float:
    """A stable phase for a device: one of ``slots`` slots in the first 90 % of the interval
    (at most 0.9 s).

    Slots, not a phase per device: devices that share a slot are served by the same
    wake-ups of the event loop (one epoll call, coalesced writes), which costs less CPU than
    waking for each device, while the peak load is divided by the number of slots. A few
    dozen devices need no spreading at all (one slot: every tick exactly on the second).
    """
    slot = zlib.crc32(name.encode()) % slots
    return slot * 0.9 * min(interval, 1.0) / slots


class BusWorker:
    """Runs the tick loops of the devices on one bus."""

    def __init__(
        self,
        name: str,
        devices: list[ScheduledDevice],
        sink: Sink,
        clock: Callable[[], float] = simulated_or_wall.now,
        sleep: Callable[[float], Awaitable[None]] = simulated_or_wall.sleep,
        steady: Callable[[], float] = simulated_or_wall.monotonic,
    ) -> None:
        self.name = name
        self.devices = devices
        self.sink = sink
        self.clock = clock
        self.sleep = sleep
        self.steady = steady  # the same clock's monotonic counterpart: it never steps
        self.stopping = False
        self.in_flight = 0  # polls awaiting their device's answer

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for dev in self.devices:
                tasks.create_task(self._guarded_loop(dev), name=f"poll:{dev.driver.name}")

    async def _guarded_loop(self, dev: ScheduledDevice) -> None:
        # An exception escaping one device loop would end this bus's TaskGroup, and through
        # the scheduler's, every bus. A failed poll never gets here (see _poll); this is for
        # a bug elsewhere in the loop: it stops this device only, its heartbeat stops, and
        # the watchdog (stalled) has systemd restart the agent.
        try:
            await self._device_loop(dev)
        except Exception:
            log.exception(
                "device '%s' (%s): its poll loop stopped on an unexpected error; the other "
                "devices go on",
                dev.driver.name, dev.where,
            )  # fmt: skip

    async def _device_loop(self, dev: ScheduledDevice) -> None:
        interval, phase = dev.interval, dev.phase
        tick = next_tick(self.clock(), interval, phase)
        skip_until = 0.0
        dev.stats.heartbeat = time.monotonic()
        mark = (self.clock(), self.steady())  # wall and steady time at the last tick's end
        # The flag, not only cancellation, ends the loop: Python 3.11's wait_for (inside
        # pymodbus) can swallow a cancel that races a reply (gh-86296), and a loop that
        # missed its cancel must still stop at its next tick.
        while not self.stopping:
            delay = tick - self.clock()
            if delay > interval + 1.0:
                # the wall clock stepped back: re-align instead of sleeping through it
                tick = next_tick(self.clock(), interval, phase)
                skip_until = 0.0  # a backoff deadline from before the step would last as long
                continue
            if delay > 0:
                await self.sleep(delay)
                if self.stopping:  # asked to stop while asleep: start no new poll
                    break
            dev.stats.heartbeat = time.monotonic()
            if tick < skip_until:
                dev.stats.backoff_skips += 1
            else:
                await self._poll(dev)
                if dev.stats.consecutive_failures >= FAILURES_BEFORE_BACKOFF:
                    excess = dev.stats.consecutive_failures - FAILURES_BEFORE_BACKOFF
                    pause = min(interval * 2 ** (excess + 1), max(BACKOFF_MAX, interval))
                    skip_until = tick + pause
            now, now_steady = self.clock(), self.steady()
            following = tick + interval
            if (now - mark[0]) - (now_steady - mark[1]) > interval:
                # the wall clock stepped forward (NTP at boot): nothing was missed, re-align
                following = next_tick(now, interval, phase)
            elif now >= following:
                missed = math.floor((now - following) / interval) + 1
                dev.stats.missed_ticks += missed
                following += missed * interval
            tick = following
            mark = (now, now_steady)

    async def _poll(self, dev: ScheduledDevice) -> None:
        started = time.monotonic()
        mono = simulated_or_wall.monotonic()  # never steps: ties the reading's ts to it
        stats = dev.stats
        stats.polls += 1
        self.in_flight += 1
        try:
            result = await dev.driver.poll()
        except Exception as exc:
            # A DeviceError is the driver's word for a failed poll. Anything else (a bug, an
            # error a driver did not foresee) fails this device the same way: escaping, it
            # would end the bus's TaskGroup and, through the scheduler's, every bus.
            unexpected = not isinstance(exc, DeviceError)
            if isinstance(exc, DeviceError):
                code, reason = exc.code, f"{exc}: {exc.hint}"
            else:
                code = "error"
                reason = (
                    f"unexpected {type(exc).__name__} in its driver: {exc}: report this to "
                    "the driver's authors"
                )
            stats.failures += 1
            stats.consecutive_failures += 1
            stats.last_error = str(exc)
            result = PollResult(
                dev.driver.name,
                self.clock(),
                dict.fromkeys(dev.driver.quantities),
                dict.fromkeys(dev.driver.quantities, code),
                error=str(exc) or type(exc).__name__,
            )
            if stats.state != "degraded" or stats.partial:
                stats.partial = False
                if unexpected:  # the traceback once per state change, for the bug report
                    log.debug("device '%s': poll failed", dev.driver.name, exc_info=exc)
                self._transition(dev, "degraded", reason)
        else:
            if result.degraded:
                # it answers, but part of its profile is never read: degraded (not backed
                # off: what it gives is polled on schedule), once per change of reason
                if not stats.partial or stats.last_error != result.degraded:
                    stats.partial = True
                    stats.last_error = result.degraded
                    self._transition(dev, "degraded", result.degraded)
            elif stats.state != "online":
                stats.partial = False
                self._transition(dev, "online", "answering")
            stats.consecutive_failures = 0
        finally:
            self.in_flight -= 1
        stats.last_poll_s = time.monotonic() - started
        result.mono = mono
        self.sink.readings(result)

    def _transition(self, dev: ScheduledDevice, state: str, reason: str) -> None:
        previous, dev.stats.state = dev.stats.state, state
        if state == "degraded":
            log.warning(
                "device '%s' (%s): %s",
                dev.driver.name, dev.where, reason,
                extra={"device": dev.driver.name, "state": state},
            )  # fmt: skip
        elif previous == "degraded":
            log.info(
                "device '%s' (%s) answers again",
                dev.driver.name, dev.where,
                extra={"device": dev.driver.name, "state": state},
            )  # fmt: skip
        self.sink.device_state(dev.driver.name, state, reason)


class Scheduler:
    """All bus workers of one agent."""

    def __init__(self, workers: list[BusWorker]) -> None:
        self.workers = workers

    @property
    def devices(self) -> list[ScheduledDevice]:
        return [d for w in self.workers for d in w.devices]

    def stalled(self, grace: float = 60.0) -> list[str]:
        """Devices whose loop has not gone round for ``2 × interval + grace`` seconds: a poll
        that hangs past every timeout. The watchdog stops vouching for the agent then, so
        systemd restarts it instead of a keepalive from elsewhere masking the hang."""
        now = time.monotonic()
        return [
            d.driver.name
            for d in self.devices
            if d.stats.heartbeat and now - d.stats.heartbeat > 2 * d.interval + grace
        ]

    def stop(self) -> None:
        """Ask every device loop to end at its next tick (see BusWorker._device_loop)."""
        for w in self.workers:
            w.stopping = True

    async def settle(self, timeout: float) -> bool:
        """After :meth:`stop`: wait (at most ``timeout`` s) for the polls already on the wire to
        end, so their readings reach the outputs instead of being cut off by the cancel that
        follows; polls are bounded by their timeouts. True if none is left."""
        deadline = time.monotonic() + timeout
        while any(w.in_flight for w in self.workers):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def run(self) -> None:
        if not self.workers:  # every device disabled: stay up (status, outputs) until stopped
            log.warning("no enabled device: nothing to poll")
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tasks:
            for w in self.workers:
                tasks.create_task(w.run(), name=f"bus:{w.name}")

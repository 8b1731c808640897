"""Scheduler behaviour with fake drivers: wall-clock ticks, missed ticks, isolation, backoff."""

import asyncio
import time

import pytest

from vatio.agent.scheduler import (
    BusWorker,
    ScheduledDevice,
    Scheduler,
    next_tick,
    stagger,
    stagger_slots,
)
from vatio.drivers.reading import DeviceTimeout, PollResult


class FakeDriver:
    def __init__(self, name, delay=0.0, fail=False):
        self.name = name
        self.delay = delay
        self.fail = fail
        self.poll_times: list[float] = []

    @property
    def quantities(self):
        return ["active_power_w"]

    def describe(self):
        return self.name

    async def poll(self):
        self.poll_times.append(time.time())
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise DeviceTimeout("no answer within 0.1 s")
        return PollResult(self.name, self.poll_times[-1], {"active_power_w": 1.0})


class Sink:
    def __init__(self):
        self.results: list[PollResult] = []
        self.states: list[tuple[str, str, str]] = []

    def readings(self, result):
        self.results.append(result)

    def device_state(self, device, state, reason):
        self.states.append((device, state, reason))


async def run_for(scheduler, seconds):
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_next_tick_is_aligned_to_the_wall_clock():
    assert next_tick(1000.3, 1.0) == 1001.0
    assert next_tick(1000.0, 1.0) == 1001.0
    assert next_tick(1000.0, 900.0) == 1800.0  # 15-minute blocks at :00, :15 …
    assert next_tick(1000.3, 1.0, phase=0.25) == 1001.25
    assert next_tick(1000.1, 1.0, phase=0.25) == 1000.25


def test_stagger_is_stable_small_and_only_for_many_devices():
    assert stagger_slots(10) == 1 and stagger_slots(250) == 2 and stagger_slots(5000) == 5
    assert {stagger(f"m{i}", 1.0, 1) for i in range(50)} == {0.0}
    phases = {stagger(f"m{i}", 1.0, 5) for i in range(500)}
    assert len(phases) == 5 and min(phases) == 0.0 and max(phases) < 0.9
    assert stagger("general", 1.0, 5) == stagger("general", 1.0, 5)
    assert all(0 <= stagger(f"m{i}", 900.0, 5) < 0.9 for i in range(100))
    assert all(0 <= stagger(f"m{i}", 0.2, 5) < 0.18 for i in range(100))


async def test_phase_shifts_every_tick_by_the_same_amount():
    drv = FakeDriver("m")
    dev = ScheduledDevice(drv, interval=0.2, where="test", phase=0.07)
    await run_for(Scheduler([BusWorker("b", [dev], Sink())]), 1.3)
    assert len(drv.poll_times) >= 5
    for t in drv.poll_times:
        offset = (t - 0.07) % 0.2
        assert min(offset, 0.2 - offset) < 0.03


@pytest.mark.serial  # 30 ms of tolerance: a loaded machine's event loop wakes later
async def test_ticks_are_aligned_and_do_not_drift():
    drv = FakeDriver("m")
    dev = ScheduledDevice(drv, interval=0.1, where="test")
    await run_for(Scheduler([BusWorker("b", [dev], Sink())]), 2.05)
    assert len(drv.poll_times) >= 18
    for t in drv.poll_times:
        phase = t % 0.1
        assert min(phase, 0.1 - phase) < 0.03, f"poll at {t} is {phase:.3f} s off its tick"
    assert dev.stats.missed_ticks == 0


async def test_slow_poll_misses_ticks_without_queueing_them():
    drv = FakeDriver("slow", delay=0.25)
    dev = ScheduledDevice(drv, interval=0.1, where="test")
    await run_for(Scheduler([BusWorker("b", [dev], Sink())]), 1.55)
    # a poll every third tick (0.3 s); never a burst to catch up
    assert 4 <= len(drv.poll_times) <= 6
    gaps = [b - a for a, b in zip(drv.poll_times, drv.poll_times[1:], strict=False)]
    assert min(gaps) > 0.25
    assert dev.stats.missed_ticks >= 2 * (len(drv.poll_times) - 1)


async def test_slow_device_never_delays_another_bus():
    slow = ScheduledDevice(FakeDriver("slow", delay=0.7), interval=0.1, where="a")
    fast_drv = FakeDriver("fast")
    fast = ScheduledDevice(fast_drv, interval=0.1, where="b")
    sink = Sink()
    await run_for(Scheduler([BusWorker("a", [slow], sink), BusWorker("b", [fast], sink)]), 1.55)
    assert fast.stats.missed_ticks == 0
    assert len(fast_drv.poll_times) >= 14


async def test_failing_device_reports_once_and_backs_off():
    bad = FakeDriver("bad", fail=True)
    good_drv = FakeDriver("good")
    bad_dev = ScheduledDevice(bad, interval=0.05, where="bus 'b' unit 9")
    good_dev = ScheduledDevice(good_drv, interval=0.05, where="bus 'b' unit 1")
    sink = Sink()
    await run_for(Scheduler([BusWorker("b", [bad_dev, good_dev], sink)]), 1.5)
    failing = [s for s in sink.states if s[0] == "bad"]
    assert failing[0][1] == "degraded"
    assert "no answer within 0.1 s" in failing[0][2] and "check the wiring" in failing[0][2]
    assert len(failing) == 1  # one message per state change, not per poll
    # backoff: far fewer attempts than ticks
    assert len(bad.poll_times) < len(good_drv.poll_times) / 2
    assert bad_dev.stats.backoff_skips > 0
    # a failed poll still delivers a result, with nulls and the reason as quality
    bad_results = [r for r in sink.results if r.device == "bad"]
    assert bad_results[0].values == {"active_power_w": None}
    assert bad_results[0].quality == {"active_power_w": "timeout"}


async def test_recovery_is_reported():
    drv = FakeDriver("m", fail=True)
    dev = ScheduledDevice(drv, interval=0.05, where="x")
    sink = Sink()
    task = asyncio.create_task(Scheduler([BusWorker("b", [dev], sink)]).run())
    await asyncio.sleep(0.12)
    drv.fail = False
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [s[1] for s in sink.states] == ["degraded", "online"]


class SwallowsCancel(FakeDriver):
    """A poll that loses its cancellation, as 3.11's wait_for can inside pymodbus."""

    swallow = True

    async def poll(self):
        try:
            await asyncio.sleep(1.0)  # long enough that the cancel always lands in here
        except asyncio.CancelledError:
            if not self.swallow:
                raise
        return PollResult(self.name, time.time(), {"active_power_w": 1.0})


async def test_stop_ends_polling_even_when_a_poll_swallows_its_cancel():
    dev = ScheduledDevice(SwallowsCancel("m"), interval=0.1, where="x")
    scheduler = Scheduler([BusWorker("b", [dev], Sink())])
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0.33)
    scheduler.stop()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=1.0)
    if task not in done:  # let the test fail without hanging the suite
        dev.driver.swallow = False
        task.cancel()
        await asyncio.wait([task], timeout=2.0)
    assert task in done


async def test_a_poll_on_the_wire_at_stop_ends_and_its_reading_is_kept():
    """A clean stop (or a reload) lets the polls already waiting for their device finish, so
    their readings reach the outputs; a loop asleep at the stop starts no new poll."""
    slow, idle = FakeDriver("slow", delay=0.3), FakeDriver("idle")
    sink = Sink()
    scheduler = Scheduler(
        [BusWorker("b", [ScheduledDevice(slow, 1.0, "x"), ScheduledDevice(idle, 0.2, "y")], sink)]
    )
    task = asyncio.create_task(scheduler.run())
    try:
        await wait_for_poll(slow)
        assert "slow" not in [r.device for r in sink.results]  # its answer is 0.3 s away
        scheduler.stop()
        idle_polls = len(idle.poll_times)
        assert await scheduler.settle(timeout=2.0)
        assert [r.device for r in sink.results].count("slow") == 1
        await asyncio.sleep(0.5)  # two of idle's ticks: it wakes, and stops instead of polling
        assert len(idle.poll_times) == idle_polls and len(slow.poll_times) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_settle_gives_up_on_a_poll_that_outlasts_it():
    hung = FakeDriver("hung", delay=3600)
    scheduler = Scheduler([BusWorker("b", [ScheduledDevice(hung, 1.0, "x")], Sink())])
    task = asyncio.create_task(scheduler.run())
    try:
        await wait_for_poll(hung)
        scheduler.stop()
        assert await scheduler.settle(timeout=0.1) is False
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_for_poll(driver: FakeDriver) -> None:
    for _ in range(300):  # the first tick is at most a second away
        if driver.poll_times:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{driver.name} was never polled")


async def test_a_poll_that_hangs_past_every_timeout_shows_as_stalled():
    """What the systemd watchdog checks: a loop that stops going round is named, the others
    are not (a keepalive from a healthy neighbour must not mask it)."""
    hung, fine = FakeDriver("hung", delay=3600), FakeDriver("fine")
    worker = BusWorker(
        "b", [ScheduledDevice(hung, 0.1, "here"), ScheduledDevice(fine, 0.1, "there")], Sink()
    )
    scheduler = Scheduler([worker])
    task = asyncio.create_task(scheduler.run())
    try:
        await asyncio.sleep(0.2)
        assert scheduler.stalled(grace=0.3) == []
        await asyncio.sleep(0.6)
        assert scheduler.stalled(grace=0.3) == ["hung"]
    finally:
        scheduler.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class BuggyDriver(FakeDriver):
    async def poll(self):
        self.poll_times.append(time.time())
        raise RuntimeError("a bug in a driver")


async def test_an_unexpected_exception_degrades_its_device_not_every_bus():
    # issue 12 item 9: an exception that is not a DeviceError used to end the bus's
    # TaskGroup and, through the scheduler's, every bus
    buggy, neighbour, other_bus = BuggyDriver("buggy"), FakeDriver("n"), FakeDriver("o")
    sink = Sink()
    workers = [
        BusWorker(
            "b1", [ScheduledDevice(buggy, 0.2, "t"), ScheduledDevice(neighbour, 0.2, "t")], sink
        ),
        BusWorker("b2", [ScheduledDevice(other_bus, 0.2, "t")], sink),
    ]
    await run_for(Scheduler(workers), 1.1)
    assert len(buggy.poll_times) >= 3  # polled again (with backoff), not dead
    assert len(neighbour.poll_times) >= 4 and len(other_bus.poll_times) >= 4
    degraded = [s for s in sink.states if s[0] == "buggy" and s[1] == "degraded"]
    assert len(degraded) == 1 and "unexpected RuntimeError" in degraded[0][2]
    failed = [r for r in sink.results if r.device == "buggy"]
    assert failed and all(r.error and r.quality == {"active_power_w": "error"} for r in failed)


class ScriptedDriver(FakeDriver):
    """Answers with each outcome in turn: "ok", "fail", or a reason values are refused."""

    def __init__(self, name, outcomes):
        super().__init__(name)
        self.outcomes = list(outcomes)

    async def poll(self):
        outcome = self.outcomes.pop(0)
        if outcome == "fail":
            raise DeviceTimeout("no answer within 0.1 s")
        degraded = None if outcome == "ok" else outcome
        return PollResult(self.name, time.time(), {"active_power_w": 1.0}, degraded=degraded)


async def test_a_device_that_keeps_refusing_values_is_degraded_once_per_change_not_backed_off():
    refused = "1 of 38 values refused by the device (exception 2): current_n_a"
    drv = ScriptedDriver(
        "m", ["ok", refused, refused, "fail", "fail", refused, refused, "ok", refused]
    )
    dev = ScheduledDevice(drv, interval=1.0, where="test")
    sink = Sink()
    worker = BusWorker("b", [dev], sink)
    for _ in range(9):
        await worker._poll(dev)
    states = [(state, reason[:14]) for _, state, reason in sink.states]
    assert (
        states
        == [
            ("online", "answering"),
            ("degraded", refused[:14]),
            ("degraded", "no answer with"),  # silent now: said, not hidden
            ("degraded", refused[:14]),
            ("online", "answering"),
            ("degraded", refused[:14]),
        ]
    )
    assert dev.stats.failures == 2 and dev.stats.consecutive_failures == 0
    assert dev.stats.last_error == refused  # what the status page shows as the reason
    assert [r.degraded for r in sink.results][1] == refused


@pytest.mark.parametrize("step", [3 * 86400.0, -3 * 86400.0])
async def test_a_clock_step_neither_bursts_nor_stalls_nor_counts_missed_ticks(step):
    """NTP steps the clock (at boot a Pi's clock is days off): polls keep their pace, and
    the skipped (or repeated) wall time is not counted as missed ticks."""
    offset = [0.0]
    drv = FakeDriver("m")
    polls_before_step = 5

    async def poll():
        result = await FakeDriver.poll(drv)
        if len(drv.poll_times) == polls_before_step:
            offset[0] = step  # the clock steps between this poll and the next
        return result

    drv.poll = poll  # type: ignore[method-assign]
    dev = ScheduledDevice(drv, 0.1, "here")
    worker = BusWorker("b", [dev], Sink(), clock=lambda: time.time() + offset[0])
    await run_for(Scheduler([worker]), 1.5)
    n = len(drv.poll_times)
    assert 10 <= n <= 17, n  # ~15 at 10 Hz: no burst to catch up, no 3-day stall
    assert dev.stats.missed_ticks <= 2

"""The status page's memory: 10-second buckets, an hour's window, bounded events."""

from __future__ import annotations

from vatio.agent.livestatus import LiveStatus
from vatio.drivers.reading import PollResult


def reading(ts: float, power: float | None, device: str = "m") -> PollResult:
    return PollResult(device, ts, {"active_power_w": power, "voltage_v": 230.0})


def test_readings_are_averaged_in_buckets_and_kept_for_the_window():
    live = LiveStatus(window_s=3600, bucket_s=10)
    for i in range(2 * 3600):  # two hours at 1 Hz
        live.reading(reading(1000.0 + i, float(i % 10)))
    series = live.snapshot(1000.0 + 2 * 3600)["series"]["active_power_w"]["m"]
    assert len(series) == 360  # the last hour only
    assert all(v == 4.5 for _, v in series)  # the mean of 0..9 in each bucket
    assert series[0][0] == 1000.0 + 3600


def test_a_failed_poll_a_missing_value_and_a_clock_step_back_add_nothing():
    live = LiveStatus()
    live.reading(reading(2000.0, 5.0))
    live.reading(PollResult("m", 2001.0, {}, error="timeout"))
    live.reading(reading(2002.0, None))
    live.reading(reading(1500.0, 99.0))  # NTP stepped the clock back
    snap = live.snapshot(2003.0)
    assert snap["series"]["active_power_w"]["m"] == [[2000.0, 5.0]]
    assert snap["devices"]["m"]["last_ts"] == 1500.0  # the last values are still shown


def test_events_are_newest_first_and_bounded():
    live = LiveStatus(events=3)
    for i in range(5):
        live.event("m", "device_degraded", f"n{i}", float(i))
    assert [e["message"] for e in live.snapshot(5.0)["events"]] == ["n4", "n3", "n2"]


def test_a_clock_step_back_restarts_the_chart_instead_of_freezing_it():
    from vatio.agent.livestatus import LiveStatus
    from vatio.drivers.reading import PollResult

    live = LiveStatus()
    ahead = 1_780_000_000.0 + 3 * 86400  # the clock was 3 days ahead, then NTP stepped it
    for i in range(30):
        live.reading(PollResult("m", ahead + 10 * i, {"active_power_w": 1.0}))
    now = 1_780_000_000.0
    for i in range(30):
        live.reading(PollResult("m", now + 10 * i, {"active_power_w": 2.0}))
    series = live.snapshot(now + 300)["series"]["active_power_w"]["m"]  # type: ignore[index]
    assert len(series) == 30 and {v for _, v in series} == {2.0}

"""The projected demand alarm: the rule (table-driven) and its wiring through the engine."""

from __future__ import annotations

import json

import pytest

from vatio.agent.config import DeviceMetricsConfig, MetricsConfig
from vatio.agent.messages import MessageBuilder, rfc3339
from vatio.agent.metrics.demand_alarm import DemandAlarm, projected_kw
from vatio.agent.metrics.engine import MetricsEngine, MetricsStore
from vatio.agent.runtime import _Pipeline
from vatio.agent.seqstore import SeqStore
from vatio.drivers.reading import PollResult

B = 1_780_000_200.0 // 900 * 900  # the start of a 15-minute block
LIMIT = 100.0


def test_projection_formula():
    # 5 min at 90 kW (7.5 kWh), then 130 kW for the 10 min left: (7.5 + 21.667) / 0.25 h
    assert projected_kw(7.5, 130.0, 300, 600) == pytest.approx(116.667, abs=1e-3)
    assert projected_kw(25.0, 0.0, 900, 0) == pytest.approx(100.0)  # the block's own average
    assert projected_kw(5.0, -3.0, 300, 600) == pytest.approx(20.0)  # export counts as 0


def steady(steps: list[tuple[float, float]], every: float = 10.0, blocks: int = 1):
    """(seconds into the first block, kW) steps → (t, block kWh so far, kW) every ``every``."""
    out, by_block, t = [], {}, every
    while t <= blocks * 900:
        kw = [k for start, k in steps if start < t][-1]
        block = (t - every / 2) // 900  # the block the energy since the last point is in
        by_block[block] = by_block.get(block, 0.0) + kw * every / 3600
        out.append((B + t, by_block.get(t // 900, 0.0), kw))
        t += every
    return out


# (case, steps (s, kW), blocks, expected [(kind, seconds into the first block, projected kW)])
CASES = [
    ("below the limit all block: nothing", [(0, 90.0)], 1, []),
    # from 400 s at 130 kW: (400·90 + 130·(t−400) + 130·(900−t)) / 900 > 100 from the start
    ("a crossing is raised at once", [(0, 90.0), (400, 130.0)], 1, [("high", 410, 112.2)]),
    (
        "too early to say: the first 2 minutes are not projected",
        [(0, 150.0)],
        1,
        [("high", 120, 150.0)],
    ),
    (
        "above the limit for the whole block: one high, not one per reading",
        [(0, 90.0), (300, 130.0), (400, 250.0)],
        1,
        [("high", 310, 116.7)],
    ),
    (
        "a load shed brings the projection under 95 %: ok; put back too soon: high again",
        [(0, 90.0), (300, 130.0), (400, 60.0), (700, 200.0)],
        1,
        # shed at 400 s: (300·90 + 100·130 + 500·60) / 900 = 77.8 < 95 → ok; at 700 s
        # 200 kW pushes it over again: (300·90 + 100·130 + 300·60 + 10·200 + 190·200) / 900
        [("high", 310, 116.7), ("ok", 410, 77.8), ("high", 710, 108.9)],
    ),
    (
        "hysteresis: a projection back at 96-99 % of the limit keeps the alarm",
        [(0, 90.0), (300, 120.0), (400, 95.0)],
        1,
        [("high", 310, 110.0)],
    ),
    (
        "block rollover: a new block above the limit raises its own high",
        [(0, 120.0)],
        2,
        [("high", 120, 120.0), ("high", 900 + 120, 120.0)],
    ),
    (
        "block rollover: the next block's projection under 95 % clears it",
        [(0, 120.0), (800, 50.0)],
        2,
        [("high", 120, 120.0), ("ok", 900 + 120, 50.0)],
    ),
]


@pytest.mark.parametrize(("case", "steps", "blocks", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rule(case, steps, blocks, expected):
    alarm = DemandAlarm(LIMIT)
    alarm.last_ts = B - 10  # measured from the block's start
    got = []
    for t, kwh, kw in steady(steps, blocks=blocks):
        a = alarm.update(t, kwh, kw)
        if a is not None:
            got.append((a.kind.removeprefix("demand_projected_"), t - B, round(a.projected_kw, 1)))
            assert a.limit_kw == LIMIT
            assert a.block_start == t // 900 * 900
            assert a.minutes_left == pytest.approx((a.block_start + 900 - t) / 60)
    assert got == expected


def test_without_rearming_a_block_raises_one_high_at_most():
    alarm = DemandAlarm(LIMIT, rearm=False)
    alarm.last_ts = B - 10
    got = []
    for t, kwh, kw in steady([(0, 90.0), (300, 130.0), (400, 60.0), (700, 200.0)]):
        a = alarm.update(t, kwh, kw)
        got += [] if a is None else [a.kind]
    assert got == ["demand_projected_high", "demand_projected_ok"]


def test_a_block_joined_late_is_projected_over_its_measured_part():
    alarm = DemandAlarm(LIMIT)
    t0 = B + 600  # the agent starts 10 minutes into the block
    assert alarm.update(t0, 0.0, 120.0) is None
    assert alarm.update(t0 + 100, 120 * 100 / 3600, 120.0) is None  # 100 s measured: too early
    a = alarm.update(t0 + 130, 120 * 130 / 3600, 120.0)
    assert a is not None and a.projected_kw == pytest.approx(120.0)  # not 120 × 5/15


def test_a_clock_stepped_back_is_not_projected():
    alarm = DemandAlarm(LIMIT)
    alarm.update(B, 0.0, 110.0)
    assert alarm.update(B + 300, 9.0, 110.0) is not None
    state = alarm.state()
    assert alarm.update(B + 200, 0.5, 500.0) is None
    assert alarm.state() == state


def test_no_limit_still_projects():
    alarm = DemandAlarm(None)
    alarm.update(B, 0.0, 150.0)
    assert alarm.update(B + 300, 10.0, 150.0) is None
    assert alarm.value(B + 301) == pytest.approx((10 + 150 * 600 / 3600) * 4, abs=1e-3)
    assert alarm.value(B + 900) is None  # another block: that projection is stale


# through the engine: counter readings every 10 s


def readings(kw_at, start: float, end: float, every: float = 10.0, kwh: float = 1000.0):
    t = start
    while t <= end:
        yield t, kwh, kw_at(t)
        kwh += kw_at(t + every / 2) * every / 3600
        t += every


def meter(t: float, kwh: float, kw: float) -> PollResult:
    return PollResult("m", t, {"energy_import_kwh": kwh, "active_power_w": kw * 1000})


def test_engine_publishes_the_projection_and_events_with_their_figures():
    engine = MetricsEngine(MetricsConfig(), {"m": DeviceMetricsConfig(demand_limit_kw=LIMIT)})
    events = []
    for t, kwh, kw in readings(lambda t: 90.0 if t < B + 400 else 130.0, B - 60, B + 600):
        events += engine.observe(meter(t, kwh, kw))[1]
    assert [e[0] for e in events] == ["demand_projected_high"]
    _, message, fields = events[0]  # type: ignore[misc]
    assert "above the 100 kW limit" in message
    assert fields["limit_kw"] == LIMIT
    assert 100 < fields["projected_kw"] < 130
    # raised within 30 s of the step at 400 s (P_now is a 60-second mean)
    assert 7.8 <= fields["minutes_left"] < (900 - 400) / 60
    assert fields["block_start"] == rfc3339(B) and fields["block_end"] == rfc3339(B + 900)
    projected = engine.values("m", B + 600)["demand_projected_kw"]
    # by now: 400 s at 90 + 200 s at 130 kW, and 300 s left at 130 kW
    assert projected == pytest.approx((400 * 90 + 500 * 130) / 900, rel=0.01)


def test_an_untrusted_clock_raises_nothing_until_synchronised():
    engine = MetricsEngine(MetricsConfig(), {"m": DeviceMetricsConfig(demand_limit_kw=LIMIT)})
    step = 3 * 86400  # the boot clock is 3 days behind
    events = []
    for t, kwh, kw in readings(lambda t: 150.0, B, B + 1800):
        events += engine.observe(meter(t - step, kwh, kw), False, t - B)[1]
    assert events == [] and engine.values("m", B + 1800) == {}
    # synchronised: the held blocks are filed (demand_high for the closed ones), and only
    # the live block is projected, once 2 minutes of it have been measured
    got = []
    for t, kwh, kw in readings(lambda t: 150.0, B + 1810, B + 2100, kwh=1000 + 150 * 1810 / 3600):
        got += [(e[0], t - B) for e in engine.observe(meter(t, kwh, kw), True, t - B)[1]]
    assert got[0] == ("demand_high", 1810)
    assert got[1:] == [("demand_projected_high", 1820 + 120)]


def test_a_restart_does_not_raise_the_same_block_twice(tmp_path):
    settings = {"m": DeviceMetricsConfig(demand_limit_kw=LIMIT)}
    engine = MetricsEngine(MetricsConfig(), settings, MetricsStore(tmp_path / "m.sqlite"))
    feed = list(readings(lambda t: 150.0, B - 60, B + 600))
    events = []
    for t, kwh, kw in feed[:25]:
        events += engine.observe(meter(t, kwh, kw))[1]
    assert [e[0] for e in events] == ["demand_projected_high"]
    engine.save()
    assert engine.store is not None
    engine.store.close()
    again = MetricsEngine(MetricsConfig(), settings, MetricsStore(tmp_path / "m.sqlite"))
    later = []
    for t, kwh, kw in feed[25:]:
        later += again.observe(meter(t, kwh, kw))[1]
    assert later == []


def test_the_pipeline_puts_the_figures_in_the_event_json(tmp_path):
    engine = MetricsEngine(MetricsConfig(), {"m": DeviceMetricsConfig(demand_limit_kw=LIMIT)})
    pipeline = _Pipeline(MessageBuilder("s", "gw", SeqStore(tmp_path / "seq.sqlite")), engine)
    sent = []

    class Sink:
        def submit(self, msg):
            sent.append(msg)

    pipeline.outputs = [Sink()]  # type: ignore[list-item]
    for t, kwh, kw in readings(lambda t: 150.0, B - 60, B + 200):
        pipeline.readings(meter(t, kwh, kw))
    events = [json.loads(m.payload) for m in sent if m.topic.endswith("/events")]
    assert [e["event"] for e in events] == ["demand_projected_high"]
    assert events[0]["limit_kw"] == LIMIT and events[0]["projected_kw"] > LIMIT
    assert events[0]["block_start"] == rfc3339(B)

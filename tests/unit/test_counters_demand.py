"""Energy counters and demand windows: properties (hypothesis) and worked numbers."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vatio.agent.metrics.counters import CounterTracker
from vatio.agent.metrics.demand import DemandState

increments = st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=60)


@given(st.floats(0, 1e6, allow_nan=False), increments)
def test_a_monotonic_counter_gives_its_exact_energy_and_never_negative(start, steps):
    tracker = CounterTracker()
    value, ts = start, 0.0
    total = 0.0
    assert tracker.update(value, ts).flag == "first"
    for step in steps:
        value += step
        ts += 60
        d = tracker.update(value, ts)
        assert d.kwh >= 0
        total += d.kwh
    assert total == pytest.approx(value - start, rel=1e-9, abs=1e-6)


@given(
    st.lists(st.one_of(st.none(), st.just(float("nan")), st.floats(-10, 1e5)), max_size=80),
    st.one_of(st.none(), st.floats(1, 500)),
)
def test_any_sequence_never_gives_negative_energy(values, max_kw):
    tracker = CounterTracker(max_power_kw=max_kw)
    for i, v in enumerate(values):
        assert tracker.update(v, i * 60.0).kwh >= 0


@given(st.floats(1000, 1e5), st.floats(0, 50))
def test_a_reset_never_makes_a_spike(before, after):
    tracker = CounterTracker(max_power_kw=100)  # 100 kW for 60 s is at most 1.67 kWh
    tracker.update(before, 0)
    d = tracker.update(after, 60)  # the counter went back to near zero
    assert d.flag in ("reset", "replaced")
    assert d.kwh <= 100 * 60 / 3600 * 1.5 + 0.001


def test_rollover_wraps_around_the_register_limit():
    t = CounterTracker(rollover_kwh=100000.0, max_power_kw=200)
    t.update(99999.5, 0)
    d = t.update(1.5, 60)
    assert d.flag == "rollover" and d.kwh == pytest.approx(2.0)


def test_a_replaced_meter_becomes_the_new_baseline():
    t = CounterTracker(max_power_kw=50)
    t.update(20000.0, 0)
    d = t.update(1523.0, 60)  # a used meter put in: far more than 50 kW could count in 60 s
    assert (d.kwh, d.flag) == (0.0, "replaced")
    assert t.update(1524.0, 120).kwh == pytest.approx(1.0)


def test_implausible_jump_and_invalid_values_are_flagged_not_counted():
    t = CounterTracker(max_power_kw=10)
    t.update(100.0, 0)
    assert t.update(200.0, 60).flag == "implausible"  # 100 kWh in a minute at 10 kW max
    assert t.update(float("nan"), 120).flag == "invalid"
    assert t.update(None, 180).flag == "invalid"


def test_demand_block_worked_number():
    # 30.25 kWh in a 15-minute block → 121 kW (domain.md §6)
    d = DemandState()
    for i in range(15):  # one increment a minute inside the block 0..900 s
        d.add(i * 60 + 30, 30.25 / 15)
    assert d.add(900 + 30, 0.0) == pytest.approx(121.0)
    assert d.last_block_kw == pytest.approx(121.0)


def test_billed_peak_rounds_a_fraction_up_and_sliding_is_at_least_the_block_peak():
    d = DemandState()
    # 60.8 kWh across the :15 boundary: blocks see part of it, the sliding window all of it
    for i in range(30):
        d.add(450 + i * 30, 60.8 / 30)
    d.add(2 * 900 + 1, 0.0)
    assert d.peak_sliding_kw >= d.peak_block_kw
    assert d.billed_peak_kw == math.ceil(d.peak_block_kw)
    d2 = DemandState()
    d2.add(10, 60.8)  # 60.8 kWh in one block = 243.2 kW
    d2.add(910, 0)
    assert d2.billed_peak_kw == 244  # any fraction of a kW rounds up (GDMTH)


def test_current_block_average_so_far():
    d = DemandState()
    d.add(900 + 60, 1.0)
    assert d.current_kw(900 + 120) == pytest.approx(1.0 * 3600 / 120)


def test_power_integration_trapezoid_gap_and_clock():
    from vatio.agent.metrics.integration import PowerIntegrator

    p = PowerIntegrator(max_gap_s=120)
    assert p.update(1000.0, 0).flag == "first"
    assert p.update(3000.0, 60).kwh == pytest.approx((1000 + 3000) / 2 * 60 / 3.6e6)
    gap = p.update(3000.0, 400)  # 340 s without a reading: not bridged, reported
    assert (gap.kwh, gap.flag) == (0.0, "gap")
    assert p.update(3000.0, 460).kwh == pytest.approx(3000 * 60 / 3.6e6)
    assert p.update(3000.0, 450).flag == "clock_back"  # NTP stepped back: restart
    neg = p.update(-500.0, 510)
    assert neg.flag == "negative" and neg.kwh == pytest.approx(1500 * 60 / 3.6e6)


@given(st.lists(st.tuples(st.floats(0, 1e5), st.floats(1, 60)), min_size=2, max_size=50))
def test_integrated_energy_is_never_negative(samples):
    from vatio.agent.metrics.integration import PowerIntegrator

    p = PowerIntegrator()
    ts = 0.0
    for watts, step in samples:
        ts += step
        assert p.update(watts, ts).kwh >= 0

"""Metrics while the wall clock is not trusted: a gateway boots with its clock 3 days behind
(fake-hwclock's last saved time), meters for two hours across a midnight, then NTP answers
and the clock steps +3 days. Nothing may be filed under a wrong day, no false demand peak,
and every kWh the counter counted is attributed exactly once (counted, not sampled)."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import pytest

from vatio.agent.config import DeviceMetricsConfig, MetricsConfig
from vatio.agent.metrics.electrical import HOLD_MAX_BUCKETS, HeldEnergy
from vatio.agent.metrics.engine import MetricsEngine, MetricsStore
from vatio.drivers.reading import PollResult

TZ = ZoneInfo("America/Mexico_City")
STEP = 3 * 86400.0  # the boot clock is this far behind
START = dt.datetime(2026, 11, 3, 22, 0, tzinfo=TZ).timestamp()  # true time, a Tuesday
SYNC = dt.datetime(2026, 11, 4, 1, 0, tzinfo=TZ).timestamp()  # NTP answers here (true)
END = dt.datetime(2026, 11, 4, 2, 0, tzinfo=TZ).timestamp()
MONO0 = 5000.0  # the steady clock's value at START


def load_kw(true_ts: float) -> float:
    """40 kW before midnight, 80 kW after: the true peak is 80 kW."""
    return 40.0 if true_ts < dt.datetime(2026, 11, 4, tzinfo=TZ).timestamp() else 80.0


def run(engine: MetricsEngine, every: float = 60.0) -> tuple[float, float]:
    """Play the night; returns the counter's first and last values."""
    kwh = 1000.0
    first = kwh
    t = START
    while t <= END:
        trusted = t >= SYNC
        wall = t if trusted else t - STEP  # what the clock says
        engine.observe(
            PollResult("m", wall, {"energy_import_kwh": kwh}), trusted, MONO0 + (t - START)
        )
        t += every
        kwh += load_kw(t - every / 2) * every / 3600
    return first, kwh - load_kw(t - every / 2) * every / 3600


def test_a_clock_step_at_sync_files_everything_at_its_true_time():
    engine = MetricsEngine(MetricsConfig(), {"m": DeviceMetricsConfig()})
    first, last = run(engine)
    em = engine.devices["m"].electrical
    assert em is not None and em.held is None
    # only the true day that ended (Nov 3) was closed; nothing under Oct 31 / Nov 1
    closed_days = {key: rec for kind, key, rec in em.closed if kind == "day"}
    assert set(closed_days) == {"2026-11-03"}
    assert {key for kind, key, _ in em.closed if kind == "month"} == set()
    # Nov 3: 22:00–24:00 at 40 kW
    assert closed_days["2026-11-03"]["kwh"] == pytest.approx(80.0, abs=1e-6)
    # energy conserved: what was attributed equals the counter's difference
    today = em.totals.kwh_day
    assert em.totals.day == "2026-11-04"
    assert today == pytest.approx(2 * 80.0, abs=1e-6)  # 00:00–02:00 at 80 kW
    assert closed_days["2026-11-03"]["kwh"] + today == pytest.approx(last - first, abs=1e-9)
    assert em.totals.kwh_month == pytest.approx(last - first, abs=1e-9)
    print(
        f"readings: {int((END - START) / 60) + 1} ({int((SYNC - START) / 60)} untrusted);"
        f" counter difference {last - first:.6f} kWh,"
        f" attributed {em.totals.kwh_month:.6f} kWh; lost {last - first - em.totals.kwh_month:.2e}"
    )
    # no false demand peak: no block above the true 80 kW, and the blocks are the load's
    assert em.demand.peak_block_kw == pytest.approx(80.0, abs=1e-6)
    assert em.demand.peak_sliding_kw <= 80.0 + 1e-6
    assert closed_days["2026-11-03"]["peak_kw"] == pytest.approx(40.0, abs=1e-6)
    # tariff periods by the true time: SIN winter weekday, 22–24 intermedia, 0–2 base
    assert closed_days["2026-11-03"]["kwh_by_period"]["intermedia"] == pytest.approx(80.0)
    assert em.totals.kwh_day_by_period["base"] == pytest.approx(160.0)


def test_nothing_is_published_or_saved_while_the_clock_is_untrusted(tmp_path):
    store = MetricsStore(tmp_path / "metrics.sqlite")
    engine = MetricsEngine(MetricsConfig(), {"m": DeviceMetricsConfig()}, store)
    engine.observe(PollResult("m", START, {"energy_import_kwh": 10.0}), True, MONO0)
    engine.save()
    for i in range(1, 30):  # the clock becomes untrusted; wrong by 3 days
        r = PollResult("m", START - STEP + 60 * i, {"energy_import_kwh": 10.0 + i})
        engine.observe(r, False, MONO0 + 60 * i)
    assert engine.holding() == ["m"]
    assert engine.values("m", START - STEP + 1800) == {}  # metrics wait
    engine.save()
    store.close()
    # a restart while untrusted resumes from the last trusted state: the counter bridges it
    again = MetricsEngine(MetricsConfig(), {}, MetricsStore(tmp_path / "metrics.sqlite"))
    again.observe(PollResult("m", START + 1800, {"energy_import_kwh": 40.0}), True, 0.0)
    v = again.values("m", START + 1800)
    assert v["energy_today_kwh"] == pytest.approx(30.0)
    assert again.store is not None
    assert again.store.history("day") == []


def test_held_energy_stays_bounded_and_loses_nothing():
    held = HeldEnergy(None, 0.0, 0.0)
    n = HOLD_MAX_BUCKETS * 3
    for i in range(n):
        held.add(61.0 * i, 0.001, 0.0005)
    assert len(held.buckets) <= HOLD_MAX_BUCKETS
    assert held.kwh == pytest.approx(n * 0.001, abs=1e-9)
    # the buckets still tile the steady time without gaps or overlaps
    assert all(a[1] == b[0] for a, b in zip(held.buckets, held.buckets[1:], strict=False))


def test_power_integration_is_held_on_the_steady_clock():
    """No counter: power is integrated on the steady clock while untrusted, so the step at
    sync is not a 3-day gap and the energy of the held hour is not lost."""
    engine = MetricsEngine(MetricsConfig(), {"m": DeviceMetricsConfig(energy_source="power")})
    t = START
    while t <= START + 7200:
        trusted = t >= START + 3600
        engine.observe(
            PollResult("m", t if trusted else t - STEP, {"active_power_w": 60_000.0}),
            trusted,
            MONO0 + (t - START),
        )
        t += 10
    em = engine.devices["m"].electrical
    assert em is not None
    assert em.totals.kwh_day == pytest.approx(120.0, abs=1e-6)  # 2 h at 60 kW
    assert not math.isclose(em.demand.peak_block_kw, 0.0)
    assert em.demand.peak_block_kw == pytest.approx(60.0, abs=1e-6)
    assert em.totals.flags.get("gap", 0) == 0


def test_air_readings_wait_and_are_filed_by_the_true_hour():
    engine = MetricsEngine(MetricsConfig(), {"s": DeviceMetricsConfig()})
    hour = math.floor(START / 3600) * 3600
    for i in range(0, 7200, 30):  # two hours at 30 s, untrusted and 3 days behind
        engine.observe(PollResult("s", hour + i - STEP, {"pm2_5_ugm3": 10.0}), False, float(i))
    assert engine.values("s", hour) == {}
    engine.observe(PollResult("s", hour + 7200, {"pm2_5_ugm3": 10.0}), True, 7200.0)
    air = engine.devices["s"].air
    assert air is not None
    assert sorted(air.hours["pm2_5"]) == [hour // 3600, hour // 3600 + 1, hour // 3600 + 2]
    assert engine.values("s", hour + 7201)["pm2_5_1h_ugm3"] == pytest.approx(10.0)


def test_a_block_above_the_limit_while_held_is_still_an_event():
    engine = MetricsEngine(MetricsConfig(), {"m": DeviceMetricsConfig(demand_limit_kw=100)})
    kwh, t = 0.0, START
    events = []
    while t <= START + 3 * 3600:
        trusted = t >= START + 3 * 3600 - 60
        kw = 150.0 if START + 900 <= t < START + 1800 else 50.0  # one hot block, held
        _, ev, _ = engine.observe(
            PollResult("m", t if trusted else t - STEP, {"energy_import_kwh": kwh}),
            trusted,
            MONO0 + (t - START),
        )
        events += ev
        kwh += kw * 60 / 3600
        t += 60
    assert [k for k, _ in events] == ["demand_high"]
    assert "150.0 kW" in events[0][1]

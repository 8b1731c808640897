"""A known day through the electrical metrics: totals by tariff period, demand, PF,
emissions; and a restart in the middle that loses nothing."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from vatio.agent.metrics.electrical import ElectricalMetrics

TZ = ZoneInfo("America/Mexico_City")
DAY = dt.datetime(2025, 6, 2, tzinfo=TZ)  # a Monday in the SIN summer


def load_kw(local: dt.datetime) -> float:
    return 100.0 if 6 <= local.hour < 22 else 20.0


def play(metrics: ElectricalMetrics, minutes: range, kwh: float) -> float:
    """Feed one reading a minute of a meter whose counters follow load_kw."""
    for m in minutes:
        t = DAY + dt.timedelta(minutes=m)
        if m:
            # energy of the minute that just ended, at that minute's load
            kwh += load_kw(t - dt.timedelta(minutes=1)) / 60
        metrics.observe(
            {"energy_import_kwh": kwh, "reactive_energy_import_kvarh": kwh * 0.5},
            t.timestamp(),
        )
    return kwh


def test_a_known_day():
    m = ElectricalMetrics()
    play(m, range(0, 24 * 60 + 1), 5000.0)
    v = m.values((DAY + dt.timedelta(days=1)).timestamp())
    # 20 kW × 8 h + 100 kW × 16 h
    assert v["energy_month_kwh"] == pytest.approx(1760.0)
    # SIN verano Mon–Fri: base 0–6, intermedia 6–20 and 22–24, punta 20–22 (domain.md §4.3)
    assert v["energy_month_base_kwh"] == pytest.approx(120.0)
    assert v["energy_month_intermedia_kwh"] == pytest.approx(1400.0 + 40.0)
    assert v["energy_month_punta_kwh"] == pytest.approx(200.0)
    assert v["demand_peak_month_kw"] == 100.0
    assert v["demand_peak_punta_kw"] == pytest.approx(100.0)
    # 2025 uses the latest published factor, 2024's 0.444 (domain.md §3.1)
    assert v["emissions_month_kgco2e"] == pytest.approx(1760.0 * 0.444)
    # kVArh = kWh / 2 → FP 89.44 % → surcharge 3/5·(90/89.44 − 1) = 0.4 % (one decimal)
    assert v["power_factor_month_pct"] == pytest.approx(89.44)
    assert v["pf_surcharge_pct"] == pytest.approx(0.4)
    assert m.totals.flags == {}


def test_a_restart_mid_day_loses_nothing():
    whole = ElectricalMetrics()
    play(whole, range(0, 24 * 60 + 1), 5000.0)

    first = ElectricalMetrics()
    kwh = play(first, range(0, 13 * 60 + 7), 5000.0)  # stop inside a 15-minute block
    saved = json.loads(json.dumps(first.state()))  # what the agent would persist
    second = ElectricalMetrics()
    second.restore(saved)
    play(second, range(13 * 60 + 7, 24 * 60 + 1), kwh)  # resume with the next reading
    end = (DAY + dt.timedelta(days=1)).timestamp()
    assert second.values(end) == pytest.approx(whole.values(end))


def test_power_integration_when_there_is_no_counter():
    m = ElectricalMetrics()
    for s in range(0, 3601, 10):
        m.observe({"active_power_w": 2000.0}, DAY.timestamp() + s)
    assert m.values(DAY.timestamp() + 3600)["energy_today_kwh"] == pytest.approx(2.0)


def test_a_new_month_starts_new_totals_and_a_new_peak():
    m = ElectricalMetrics()
    start = dt.datetime(2025, 6, 30, 23, 0, tzinfo=TZ)
    kwh = 100.0
    for i in range(0, 121):
        t = start + dt.timedelta(minutes=i)
        kwh += (200 if t.month == 6 else 10) / 60
        m.observe({"energy_import_kwh": kwh}, t.timestamp())
    v = m.values((start + dt.timedelta(minutes=121)).timestamp())
    assert m.totals.month == "2025-07"
    assert v["energy_month_kwh"] == pytest.approx(10.0, abs=0.5)
    assert v["demand_peak_month_kw"] <= 11


def test_a_slow_poll_splits_its_energy_at_the_period_boundary():
    # SIN verano Mon–Fri: intermedia until 20:00, punta from 20:00 (domain.md §4.3). A reading
    # at 19:50 and the next at 20:10 at a steady 60 kW: 10 kWh on each side of the boundary.
    m = ElectricalMetrics()
    t0 = DAY + dt.timedelta(hours=19, minutes=50)
    m.observe({"energy_import_kwh": 100.0}, t0.timestamp())
    m.observe({"energy_import_kwh": 120.0}, (t0 + dt.timedelta(minutes=20)).timestamp())
    v = m.values((t0 + dt.timedelta(minutes=20)).timestamp())
    assert v["energy_month_intermedia_kwh"] == pytest.approx(10.0)
    assert v["energy_month_punta_kwh"] == pytest.approx(10.0)


def test_an_outage_of_the_agent_makes_no_false_demand_peak():
    # a steady 40 kW; the agent is down 50 minutes, then the counter bridges the gap
    m = ElectricalMetrics()
    start = DAY + dt.timedelta(hours=8)
    kwh = 0.0
    for minute in [*range(0, 31), *range(81, 121)]:
        m.observe(
            {"energy_import_kwh": kwh + 40 * minute / 60},
            (start + dt.timedelta(minutes=minute)).timestamp(),
        )
    assert m.demand.peak_block_kw == pytest.approx(40.0)
    assert m.values(start.timestamp() + 7200)["energy_today_kwh"] == pytest.approx(80.0)


def test_yesterday_and_the_closed_day_and_month_records():
    m = ElectricalMetrics()
    play(m, range(0, 24 * 60 + 5), 5000.0)
    v = m.values((DAY + dt.timedelta(days=1, minutes=5)).timestamp())
    assert v["energy_yesterday_kwh"] == pytest.approx(1760.0)
    assert v["energy_yesterday_base_kwh"] == pytest.approx(120.0)
    assert v["energy_yesterday_punta_kwh"] == pytest.approx(200.0)
    assert v["demand_peak_yesterday_kw"] == pytest.approx(100.0)
    assert v["energy_today_kwh"] == pytest.approx(20 * 4 / 60)
    assert [(kind, key) for kind, key, _ in m.closed] == [("day", "2025-06-02")]
    assert m.closed[0][2]["kwh_by_period"]["intermedia"] == pytest.approx(1440.0)


def test_energy_source_power_ignores_the_counter():
    m = ElectricalMetrics(source="power")
    for s in range(0, 3601, 60):
        m.observe({"energy_import_kwh": 99.0 + s, "active_power_w": 3000.0}, DAY.timestamp() + s)
    assert m.values(DAY.timestamp() + 3600)["energy_today_kwh"] == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("decimals", "cap", "surcharge"),
    [
        # kVArh = 2 × kWh → FP 44.72 %: 3/5·(90/44.72 − 1)·100 = 60.75 % (domain.md §4.4)
        (1, 120.0, 60.8),
        (None, 120.0, 60.75134168157424),
        (1, 50.0, 50.0),
    ],
)
def test_the_unconfirmed_pf_rounding_and_cap_are_settings(decimals, cap, surcharge):
    from vatio.agent.metrics.electrical import PowerFactorRule

    m = ElectricalMetrics(pf_rule=PowerFactorRule(90.0, decimals, cap))
    m.observe({"energy_import_kwh": 0.0, "reactive_energy_import_kvarh": 0.0}, DAY.timestamp())
    m.observe(
        {"energy_import_kwh": 10.0, "reactive_energy_import_kvarh": 20.0}, DAY.timestamp() + 600
    )
    assert m.values(DAY.timestamp() + 600)["pf_surcharge_pct"] == pytest.approx(surcharge)

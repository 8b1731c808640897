"""A known day through the electrical metrics: totals by tariff period, demand, PF,
emissions; and a restart in the middle that loses nothing."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from agent.metrics.electrical import ElectricalMetrics

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

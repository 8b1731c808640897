"""The metrics engine: which metrics a device gets, demand events, persistence in SQLite."""

from vatio.agent.config import DeviceMetricsConfig, MetricsConfig
from vatio.agent.metrics.engine import MetricsEngine, MetricsStore
from vatio.drivers.reading import PollResult

T0 = 1_780_000_200.0 // 900 * 900  # the start of a 15-minute block


def meter(kwh: float, ts: float) -> PollResult:
    return PollResult("m", ts, {"energy_import_kwh": kwh, "active_power_w": 1.0})


def test_demand_above_the_limit_is_an_event_when_the_block_closes():
    engine = MetricsEngine(MetricsConfig(), {"m": DeviceMetricsConfig(demand_limit_kw=100)})
    engine.observe(meter(0.0, T0))
    engine.observe(meter(30.0, T0 + 600))  # 30 kWh in this block → 120 kW
    closed, events, _ = engine.observe(meter(30.0, T0 + 900 + 1))
    assert closed
    assert events == [("demand_high", "15-minute demand 120.0 kW above the 100 kW limit")]


def test_state_is_saved_and_restored(tmp_path):
    store = MetricsStore(tmp_path / "metrics.sqlite")
    engine = MetricsEngine(MetricsConfig(), {}, store)
    engine.observe(meter(100.0, T0))
    engine.observe(meter(105.0, T0 + 60))
    engine.save()
    store.close()
    again = MetricsEngine(MetricsConfig(), {}, MetricsStore(tmp_path / "metrics.sqlite"))
    again.observe(meter(107.0, T0 + 120))  # continues from the saved counter reading
    assert again.values("m", T0 + 121)["energy_month_kwh"] == 7.0


def test_failed_polls_and_disabled_devices_are_ignored():
    engine = MetricsEngine(MetricsConfig(), {"off": DeviceMetricsConfig(enabled=False)})
    bad = PollResult("m", T0, {"energy_import_kwh": None}, error="timeout")
    assert engine.observe(bad) == (False, [], {})
    assert engine.observe(PollResult("off", T0, {"energy_import_kwh": 1.0})) == (False, [], {})
    assert engine.devices == {}


def test_air_devices_get_air_metrics_only():
    engine = MetricsEngine(MetricsConfig(), {})
    engine.observe(PollResult("aire", T0, {"pm2_5_ugm3": 12.0, "pm10_ugm3": 20.0}))
    values = engine.values("aire", T0 + 1)
    assert "aqi_us" in values and "energy_month_kwh" not in values


def test_reading_quality_flags():
    engine = MetricsEngine(MetricsConfig(), {"m": DeviceMetricsConfig(max_power_kw=10)})
    engine.observe(meter(5000.0, T0))
    assert engine.observe(meter(0.1, T0 + 60))[2] == {"energy_import_kwh": "reset"}
    assert engine.observe(meter(0.2, T0 + 30))[2] == {"ts": "clock_back"}  # NTP stepped back
    power_only = MetricsEngine(MetricsConfig(), {})
    power_only.observe(PollResult("p", T0, {"active_power_w": 100.0}))
    flags = power_only.observe(PollResult("p", T0 + 10, {"active_power_w": -50.0}))[2]
    assert flags == {"active_power_w": "negative"}  # import-only: counted as 0


def test_closed_days_go_to_the_history_and_vatio_history_prints_them(tmp_path, capsys):
    from vatio.agent.history import history_command

    store = MetricsStore(tmp_path / "metrics.sqlite")
    engine = MetricsEngine(MetricsConfig(), {}, store)
    midnight = 1_780_000_200.0 // 86400 * 86400 + 6 * 3600  # 00:00 in Mexico City (UTC-6)
    for minute in range(-60, 61, 5):  # 23:00 → 01:00 at 12 kW
        engine.observe(meter(1000.0 + 12 * (minute + 60) / 60, midnight + minute * 60))
    engine.save()
    store.close()
    assert history_command(tmp_path, "day", None, as_json=True) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and '"kwh": 12.0' in lines[0].replace("12.000000000", "12.0")
    assert history_command(tmp_path, "day", "m", as_json=False) == 0
    table = capsys.readouterr().out
    assert "12.000" in table and "intermedia" in table

"""PM2.5 corrected for humidity (EPA, with the Fire and Smoke Map extension), the cross-device
humidity source, its flags, and the config check of ``humidity_from``."""

import textwrap

import pytest

from vatio.agent.config import (
    ConfigError,
    DeviceMetricsConfig,
    MetricsConfig,
    parse_config_text,
)
from vatio.agent.metrics.engine import MetricsEngine
from vatio.agent.metrics.pm_humidity import correct, epa_correction
from vatio.drivers.reading import PollResult

T0 = 1_780_000_000 // 3600 * 3600


# (PA_cf1, RH, expected) worked by hand from the segment formulas (pm_humidity.py docstring)
@pytest.mark.parametrize(
    "pa, rh, expected",
    [
        (20.0, 50.0, 11.92),  # 10.48 − 4.31 + 5.75
        (0.0, 0.0, 5.75),  # the intercept
        (0.0, 100.0, 0.0),  # −2.87 → never negative
        (40.0, 50.0, 27.64),  # f = 0.5: 0.655 × 40 − 4.31 + 5.75
        (100.0, 40.0, 80.902),  # 78.6 − 3.448 + 5.75
        (235.0, 50.0, 200.04245),  # f = 0.5: 173.43 − 2.155 + 1.483 + 2.875 + 24.40945
        (300.0, 50.0, 289.526),  # 2.966 + 207 + 79.56, no RH term
        (300.0, 90.0, 289.526),
    ],
)
def test_segments_worked_by_hand(pa, rh, expected):
    assert epa_correction(pa, rh) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("breakpoint", [30.0, 50.0, 210.0, 260.0])
@pytest.mark.parametrize("rh", [10.0, 50.0, 95.0])
def test_the_curve_is_continuous_at_each_breakpoint(breakpoint, rh):
    below, at = epa_correction(breakpoint - 1e-9, rh), epa_correction(breakpoint, rh)
    assert below == pytest.approx(at, abs=1e-6)


@pytest.mark.parametrize(
    "pa, rh, value, flag",
    [
        (20.0, 50.0, 11.92, ""),
        (500.0, 50.0, 2.966 + 345 + 221.0, ""),  # the top of the effective range: fine
        (600.0, 50.0, round(2.966 + 414 + 318.24, 2), "pm_beyond_range"),  # computed, flagged
        (-1.0, 50.0, None, "pm_invalid"),
        (float("nan"), 50.0, None, "pm_invalid"),
        (20.0, None, None, "humidity_missing"),
        (20.0, -0.1, None, "humidity_out_of_range"),
        (20.0, 100.1, None, "humidity_out_of_range"),
        (20.0, 100.0, round(10.48 - 8.62 + 5.75, 2), ""),
    ],
)
def test_validity_flags(pa, rh, value, flag):
    c = correct(pa, rh)
    assert c.flag == flag
    assert c.value == (None if value is None else pytest.approx(value, abs=0.005))


def engine(**settings) -> MetricsEngine:
    cfg = settings.pop("cfg", MetricsConfig())
    return MetricsEngine(cfg, {"pm": DeviceMetricsConfig(humidity_from="rh", **settings)})


def poll(device, ts, **values) -> PollResult:
    return PollResult(device, ts, dict(values))


def test_corrected_value_is_added_next_to_the_raw_one_from_the_named_device():
    e = engine()
    e.observe(poll("rh", T0, humidity_pct=50.0, temperature_c=20.0))
    pm = poll("pm", T0 + 10, pm2_5_ugm3=18.0, pm2_5_cf1_ugm3=20.0)
    flags = e.observe(pm)[2]
    assert pm.values["pm2_5_corrected_ugm3"] == pytest.approx(11.92)
    assert pm.values["pm2_5_ugm3"] == 18.0 and pm.values["pm2_5_cf1_ugm3"] == 20.0
    assert "pm2_5_corrected_ugm3" not in flags
    # the humidity device polled after the PM device, in the same tick, still counts
    e.observe(poll("rh", T0 + 70, humidity_pct=80.0))
    pm2 = poll("pm", T0 + 60, pm2_5_cf1_ugm3=20.0)
    e.observe(pm2)
    assert pm2.values["pm2_5_corrected_ugm3"] == pytest.approx(10.48 - 6.896 + 5.75, abs=0.005)


@pytest.mark.parametrize(
    "rh_poll, pm_values, settings, flag, has_value",
    [
        (None, {"pm2_5_cf1_ugm3": 20.0}, {}, "humidity_missing", False),
        ((T0 - 301, 50.0), {"pm2_5_cf1_ugm3": 20.0}, {}, "humidity_stale", False),
        ((T0 - 299, 50.0), {"pm2_5_cf1_ugm3": 20.0}, {}, None, True),
        ((T0 - 50, 50.0), {"pm2_5_cf1_ugm3": 20.0}, {"humidity_max_age": 30}, "humidity_stale",
         False),
        ((T0, None), {"pm2_5_cf1_ugm3": 20.0}, {}, "humidity_missing", False),
        ((T0, 130.0), {"pm2_5_cf1_ugm3": 20.0}, {}, "humidity_out_of_range", False),
        ((T0, 50.0), {"pm10_ugm3": 20.0}, {}, "pm_missing", False),
        ((T0, 50.0), {"pm2_5_ugm3": 20.0}, {}, "input_not_cf1", True),
        ((T0, 50.0), {"pm2_5_ugm3": 20.0}, {"humidity_input": "pm2_5_ugm3"}, None, True),
        ((T0, 50.0), {"pm2_5_cf1_ugm3": 600.0}, {}, "pm_beyond_range", True),
    ],
)  # fmt: skip
def test_flags_for_missing_stale_and_out_of_range_inputs(
    rh_poll, pm_values, settings, flag, has_value
):
    e = engine(**settings)
    if rh_poll is not None:
        e.observe(poll("rh", rh_poll[0], humidity_pct=rh_poll[1]))
    pm = poll("pm", T0, **pm_values)
    flags = e.observe(pm)[2]
    assert flags.get("pm2_5_corrected_ugm3") == flag
    assert (pm.values["pm2_5_corrected_ugm3"] is not None) == has_value


def test_devices_without_humidity_from_get_no_corrected_value():
    e = MetricsEngine(MetricsConfig(), {})
    e.observe(poll("rh", T0, humidity_pct=50.0))
    pm = poll("pm", T0, pm2_5_cf1_ugm3=20.0)
    e.observe(pm)
    assert "pm2_5_corrected_ugm3" not in pm.values


def feed_hours(e: MetricsEngine, cf1_by_hour: list[float], rh: float = 50.0) -> None:
    for h, cf1 in enumerate(cf1_by_hour):
        for i in range(4):
            ts = T0 + h * 3600 + i * 900
            e.observe(poll("rh", ts, humidity_pct=rh))
            e.observe(poll("pm", ts + 5, pm2_5_ugm3=cf1 * 0.9, pm2_5_cf1_ugm3=cf1))


def test_indices_use_the_corrected_value_only_when_asked():
    hours = [40.0, 40.0, 40.0]  # CF=1 40 at 50 % RH → 27.64 corrected; reported 36
    raw = engine()
    feed_hours(raw, hours)
    corrected = engine(cfg=MetricsConfig(pm2_5_indices_from_corrected=True))
    feed_hours(corrected, hours)
    now = T0 + 3 * 3600 + 1
    v_raw, v_cor = raw.values("pm", now), corrected.values("pm", now)
    assert v_raw["pm2_5_corrected_1h_ugm3"] == v_cor["pm2_5_corrected_1h_ugm3"] == 27.64
    assert v_raw["pm2_5_nowcast_ugm3"] == 36.0  # the sensor's own PM2.5 (default)
    assert v_raw["pm2_5_12h_ugm3"] == 36.0 and v_raw["ias_mx_pm2_5"] == 3.0  # 26–79: Mala
    assert v_cor["pm2_5_nowcast_ugm3"] == 27.6  # truncated to 0.1
    assert v_cor["pm2_5_12h_ugm3"] == 28.0 and v_cor["ias_mx_pm2_5"] == 3.0
    assert v_cor["aqi_us"] < v_raw["aqi_us"]


CONFIG = """\
site: s
buses:
  gw: {type: modbus-tcp, host: 127.0.0.1, port: 5020}
  uart: {type: serial, port: /dev/ttyAMA0}
devices:
  aqt: {bus: gw, unit: 1, profile: vaisala_aqt530}
  meter: {bus: gw, unit: 2, profile: eastron_sdm630}
  pms: {bus: uart, driver: pms5003, metrics: {humidity_from: SOURCE}}
"""


def config_problems(source: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config_text(textwrap.dedent(CONFIG.replace("SOURCE", source)), file="f.yaml")
    return [str(p) for p in info.value.problems]


def test_humidity_from_must_name_a_device_that_reads_humidity():
    loaded = parse_config_text(CONFIG.replace("SOURCE", "aqt"))
    assert loaded.config.devices["pms"].metrics.humidity_from == "aqt"
    assert loaded.config.devices["pms"].metrics.humidity_max_age == 300
    (unknown,) = config_problems("aqtt")
    assert unknown == (
        "f.yaml:8: devices.pms.metrics.humidity_from: unknown device 'aqtt': name the device "
        "that measures relative humidity (these do: aqt)"
    )
    (no_rh,) = config_problems("meter")
    assert "device 'meter' does not read humidity_pct" in no_rh and "(these do: aqt)" in no_rh
    (uart,) = config_problems("pms")  # a serial driver's quantities are known too
    assert "device 'pms' does not read humidity_pct" in uart
    off = CONFIG.replace("SOURCE", "aqt").replace("profile: vaisala_aqt530}", "profile: "
                                                  "vaisala_aqt530, enabled: false}")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        parse_config_text(off)
    assert "device 'aqt' is disabled: enable it or remove humidity_from" in str(
        info.value.problems[0]
    )


def test_corrected_and_gas_hours_survive_a_restart(tmp_path):
    from vatio.agent.metrics.engine import MetricsStore

    store = MetricsStore(tmp_path / "metrics.sqlite")
    e = MetricsEngine(MetricsConfig(), {"pm": DeviceMetricsConfig(humidity_from="rh")}, store)
    for h in range(8):
        for i in range(4):
            ts = T0 + h * 3600 + i * 900
            e.observe(poll("rh", ts, humidity_pct=50.0))
            e.observe(poll("pm", ts + 5, pm2_5_cf1_ugm3=20.0, co_ppm=2.0, o3_ppb=70.0))
    e.save()
    store.close()
    again = MetricsEngine(
        MetricsConfig(),
        {"pm": DeviceMetricsConfig(humidity_from="rh")},
        MetricsStore(tmp_path / "metrics.sqlite"),
    )
    again.observe(poll("pm", T0 + 8 * 3600, pm2_5_cf1_ugm3=20.0))  # loads the saved state
    now = T0 + 8 * 3600 + 1
    v = again.values("pm", now)
    assert v == e.values("pm", now)
    assert v["co_8h_ppm"] == 2.0 and v["o3_1h_ppm"] == 0.07 and v["ias_mx_o3"] == 2.0
    assert v["pm2_5_corrected_1h_ugm3"] == 11.92


def test_metrics_messages_carry_quality_and_the_critical_pollutant():
    e = MetricsEngine(MetricsConfig(), {})
    for h in range(3):
        e.observe(poll("aq", T0 + h * 3600, pm2_5_ugm3=10.0, o3_ppb=100.0, co_ppm=1.0))
    extras = e.extras("aq", T0 + 3 * 3600 + 1)
    assert extras["ias_mx_pollutant"] == "o3"  # 0.100 ppm: Mala; PM2.5 10: Buena
    assert extras["quality"]["co_8h_ppm"] == "insufficient_hours"  # 3 of 8 hours
    assert extras["quality"]["pm2_5_24h_ugm3"] == "insufficient_hours"
    assert e.extras("unknown", T0) == {}

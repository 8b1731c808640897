"""NOM-172 Índice AIRE Y SALUD for O3, NO2, SO2 and CO (domain.md §2.3–2.4): band edges with
half-up rounding, the averaging and validity of each indicator, the overall IAS and its
critical pollutant, insufficient-hours flags, state across a restart."""

import json
from decimal import Decimal

import pytest

from vatio.agent.metrics.air import AirQualityMetrics
from vatio.agent.metrics.ias_gases import gas_ias, indicator_ppm, round_half_up
from vatio.common.vocabulary import QUANTITIES

T0 = 1_780_000_000 // 3600 * 3600


# (indicator, ppm, stage, level): each bound from domain.md §2.3, the value on it, and the
# values just above it before and after rounding
@pytest.mark.parametrize(
    "indicator, ppm, stage, level",
    [
        ("o3_1h", 0.058, "2026", 1), ("o3_1h", 0.0584, "2026", 1), ("o3_1h", 0.0585, "2026", 2),
        ("o3_1h", 0.090, "2026", 2), ("o3_1h", 0.0905, "2026", 3), ("o3_1h", 0.135, "2026", 3),
        ("o3_1h", 0.136, "2026", 4), ("o3_1h", 0.175, "2026", 4), ("o3_1h", 0.1755, "2026", 5),
        ("o3_1h", 0.058, "2024", 1),
        ("o3_1h", 0.051, "2019", 1), ("o3_1h", 0.052, "2019", 2), ("o3_1h", 0.095, "2019", 2),
        ("o3_1h", 0.096, "2019", 3),
        ("o3_8h", 0.051, "2026", 1), ("o3_8h", 0.0515, "2026", 2), ("o3_8h", 0.070, "2026", 2),
        ("o3_8h", 0.092, "2026", 3), ("o3_8h", 0.114, "2026", 4), ("o3_8h", 0.115, "2026", 5),
        ("no2_1h", 0.053, "2026", 1), ("no2_1h", 0.0535, "2026", 2), ("no2_1h", 0.106, "2026", 2),
        ("no2_1h", 0.160, "2026", 3), ("no2_1h", 0.213, "2026", 4), ("no2_1h", 0.2134, "2026", 4),
        ("no2_1h", 0.2135, "2026", 5),
        ("so2_1h", 0.035, "2026", 1), ("so2_1h", 0.036, "2026", 2), ("so2_1h", 0.075, "2026", 2),
        ("so2_1h", 0.185, "2026", 3), ("so2_1h", 0.304, "2026", 4), ("so2_1h", 0.305, "2026", 5),
        ("co_8h", 5.00, "2026", 1), ("co_8h", 5.004, "2026", 1), ("co_8h", 5.005, "2026", 2),
        ("co_8h", 9.00, "2026", 2), ("co_8h", 12.00, "2026", 3), ("co_8h", 16.00, "2026", 4),
        ("co_8h", 16.005, "2026", 5),
    ],
)  # fmt: skip
def test_band_edges_after_half_up_rounding(indicator, ppm, stage, level):
    assert gas_ias(indicator, ppm, stage).level == level


@pytest.mark.parametrize(
    "value, decimals, expected",
    [(0.0585, 3, "0.059"), (0.0575, 3, "0.058"), (0.0584999, 3, "0.058"), (5.005, 2, "5.01"),
     (5.015, 2, "5.02"), (2.5, 0, "3")],
)  # fmt: skip
def test_rounding_is_half_up_not_bankers(value, decimals, expected):
    assert round_half_up(value, decimals) == Decimal(expected)


# (indicator, hourly values in the analyzer's unit newest first, expected ppm or None)
@pytest.mark.parametrize(
    "indicator, hourly, expected",
    [
        ("o3_1h", [58.4, 200.0], "0.058"),  # the last full hour only; ppb → ppm
        ("o3_1h", [58.5], "0.059"),
        ("o3_1h", [None, 58.5], None),  # the last hour has no data: no 1-h value
        ("no2_1h", [106.0], "0.106"),
        ("so2_1h", [35.5], "0.036"),
        ("co_8h", [5.0] * 8, "5.00"),
        ("co_8h", [5.0] * 6 + [None, None], "5.00"),  # 6 of 8 hours: valid
        ("co_8h", [5.0] * 5 + [None] * 3, None),  # 5 of 8: not valid
        ("co_8h", [4.0, 6.0, None, 5.0, 5.0, 5.0, 5.0, 5.01, 99.0], "5.00"),  # 9th hour ignored
        ("co_8h", [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.04], "5.01"),  # 5.005 → 5.01
        ("o3_8h", [80.0] * 6 + [None, None], "0.080"),
        ("o3_8h", [80.0] * 5 + [None, None, None, 80.0], None),  # the 9th hour is not in it
    ],
)
def test_averaging_and_validity(indicator, hourly, expected):
    ppm = indicator_ppm(indicator, hourly)[0]
    assert ppm == (None if expected is None else Decimal(expected))


def feed(m: AirQualityMetrics, hours: list[dict[str, float]], per_hour: int = 4) -> list:
    events = []
    for h, values in enumerate(hours):
        for i in range(per_hour):
            events += m.observe(dict(values), T0 + h * 3600 + i * (3600 // per_hour))
    return events


def test_gas_metrics_overall_ias_and_the_critical_pollutant():
    m = AirQualityMetrics(ias_stage="2026")
    hours = [
        {
            "o3_ppb": 30.0,
            "no2_ppb": 40.0,
            "so2_ppb": 10.0,
            "co_ppm": 1.0,
            "pm2_5_ugm3": 10.0,
            "pm10_ugm3": 20.0,
        }
    ] * 7
    hours.append({**hours[0], "o3_ppb": 100.0})  # the last hour: O3 0.100 ppm → Mala
    events = feed(m, hours)
    events += m.observe({}, T0 + 8 * 3600)  # the first poll of the next hour closes the 8th
    r = m.report(T0 + 8 * 3600 + 1)
    v = r.values
    assert v["o3_1h_ppm"] == 0.1 and v["ias_mx_o3"] == 3.0
    assert v["o3_8h_ppm"] == 0.039  # (7 × 30 + 100) / 8 = 38.75 ppb
    assert v["no2_1h_ppm"] == 0.04 and v["ias_mx_no2"] == 1.0
    assert v["so2_1h_ppm"] == 0.01 and v["ias_mx_so2"] == 1.0
    assert v["co_8h_ppm"] == 1.0 and v["ias_mx_co"] == 1.0
    assert v["ias_mx_pm2_5"] == 1.0 and v["ias_mx_pm10"] == 1.0
    assert v["ias_mx"] == 3.0 and r.critical == ["o3"]
    assert any(k == "ias_changed" and "Buena → Mala (o3)" in msg for k, msg in events)


def test_o3_8h_counts_in_the_overall_only_in_stage_2019():
    hours = [{"o3_ppb": 85.0}] * 7 + [{"o3_ppb": 50.0}]  # 8-h 80.6 ppb → 0.081; 1-h 0.050
    for stage, o3_level in (("2026", 1.0), ("2019", 3.0)):
        m = AirQualityMetrics(ias_stage=stage)  # type: ignore[arg-type]
        feed(m, hours)
        v = m.values(T0 + 8 * 3600 + 1)
        assert v["o3_8h_ppm"] == 0.081 and v["ias_mx_o3_8h"] == 3.0
        assert v["ias_mx_o3"] == o3_level and v["ias_mx"] == o3_level


def test_too_few_hours_are_flagged_insufficient_not_published():
    m = AirQualityMetrics()
    hours = [{"co_ppm": 2.0, "pm2_5_ugm3": 10.0}] * 17
    feed(m, hours, per_hour=1)
    r = m.report(T0 + 17 * 3600 + 1)
    assert r.values["pm2_5_24h_ugm3"] is None  # 17 of 24 hours
    assert r.quality["pm2_5_24h_ugm3"] == "insufficient_hours"
    assert r.values["co_8h_ppm"] == 2.0 and "co_8h_ppm" not in r.quality
    feed_one = [{"co_ppm": 2.0, "pm2_5_ugm3": 10.0}]
    for i, values in enumerate(feed_one):
        m.observe(values, T0 + (17 + i) * 3600)
    r = m.report(T0 + 18 * 3600 + 1)
    assert r.values["pm2_5_24h_ugm3"] == 10.0 and "pm2_5_24h_ugm3" not in r.quality
    # three hours later with no data: CO has 5 of its 8 hours, the PM indicators 0 of 3
    r = m.report(T0 + 21 * 3600 + 1)
    assert r.values["co_8h_ppm"] is None and r.quality["co_8h_ppm"] == "insufficient_hours"
    assert r.values["ias_mx_co"] is None and r.quality["ias_mx_co"] == "insufficient_hours"
    assert r.values["ias_mx_pm2_5"] is None
    assert r.quality["ias_mx_pm2_5"] == "insufficient_hours"


def test_a_pm_only_device_publishes_nothing_about_gases():
    m = AirQualityMetrics()
    feed(m, [{"pm2_5_ugm3": 10.0}] * 3)
    v = m.values(T0 + 3 * 3600 + 1)
    assert not any(k.startswith(("o3", "no2", "so2", "co_")) for k in v)


def test_gas_state_survives_a_restart_and_old_states_still_load():
    m = AirQualityMetrics()
    feed(m, [{"o3_ppb": 40.0, "co_ppm": 3.0}] * 8)
    again = AirQualityMetrics()
    again.restore(json.loads(json.dumps(m.state())))
    now = T0 + 8 * 3600 + 1
    assert again.report(now) == m.report(now)
    old = m.state()
    old["hours"] = {"pm2_5": {}, "pm10": {}}  # saved before gases existed
    AirQualityMetrics().restore(old)


def test_every_new_metric_name_is_in_the_vocabulary():
    m = AirQualityMetrics()
    feed(m, [{"o3_ppb": 40.0, "no2_ppb": 1.0, "so2_ppb": 1.0, "co_ppm": 1.0,
              "pm2_5_corrected_ugm3": 5.0, "pm2_5_ugm3": 5.0}] * 8)  # fmt: skip
    names = set(m.values(T0 + 8 * 3600 + 1))
    assert names <= set(QUANTITIES), names - set(QUANTITIES)

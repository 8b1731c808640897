"""Air-quality metrics over hours of readings: means, NowCast, AQI, IAS, CO2 and events."""

import json

import pytest

from vatio.agent.metrics.air import AirQualityMetrics
from vatio.common.vocabulary import QUANTITIES

T0 = 1_780_000_000 // 3600 * 3600  # a whole hour

# EPA NowCast slides, oldest → newest (domain.md §1.5): NowCast 17.4 → AQI 66
EPA_SERIES = [50, 80, 75, 90, 82, 53, 64, 74, 21, 10, 16, 13]


def feed_hours(m: AirQualityMetrics, hourly: list[float], per_hour: int = 6) -> list:
    events = []
    for h, value in enumerate(hourly):
        for i in range(per_hour):
            events += m.observe(
                {"pm2_5_ugm3": value, "pm10_ugm3": value * 1.5}, T0 + h * 3600 + i * 600
            )
    return events


def test_nowcast_aqi_and_ias_from_hourly_means():
    m = AirQualityMetrics()
    feed_hours(m, EPA_SERIES)
    v = m.values(T0 + 12 * 3600 + 1)  # the twelfth hour has just completed
    assert v["pm2_5_1h_ugm3"] == 13
    assert v["pm2_5_nowcast_ugm3"] == pytest.approx(17.4)
    assert v["aqi_us"] >= 66  # PM2.5 gives 66; PM10 (×1.5) gives less
    assert v["ias_mx"] == 2.0  # 17 µg/m³ PM2.5: Aceptable in the 2026 stage
    assert v["pm2_5_24h_ugm3"] is None  # 12 hours are not 18 valid hours


def test_24h_mean_needs_18_valid_hours():
    m = AirQualityMetrics()
    feed_hours(m, [10.0] * 18, per_hour=2)
    assert m.values(T0 + 18 * 3600 + 1)["pm2_5_24h_ugm3"] == 10.0


def test_ias_change_and_co2_limit_are_events():
    m = AirQualityMetrics(co2_limit_ppm=1000)
    events = feed_hours(m, [5.0] * 3 + [60.0] * 3)
    assert any(kind == "ias_changed" and "Buena → " in msg for kind, msg in events)
    co2_events = []
    for i in range(10):
        co2_events += m.observe({"co2_ppm": 800 + i * 100}, T0 + 7 * 3600 + i * 60)
    assert [k for k, _ in co2_events] == ["co2_high"]  # once, when the mean crosses


def test_state_round_trip():
    m = AirQualityMetrics()
    feed_hours(m, EPA_SERIES[:6])
    m2 = AirQualityMetrics()
    m2.restore(json.loads(json.dumps(m.state())))
    now = T0 + 6 * 3600 + 1
    assert m2.values(now) == m.values(now)


def test_every_metric_name_is_in_the_vocabulary():
    from vatio.agent.metrics.electrical import ElectricalMetrics

    names = set(AirQualityMetrics().values(T0)) | set(ElectricalMetrics().values(T0))
    assert names <= set(QUANTITIES), names - set(QUANTITIES)

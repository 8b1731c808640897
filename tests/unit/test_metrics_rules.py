"""Air quality, power factor and emission rules, table-driven; each case cites its rule
(domain.md sections in brackets)."""

from decimal import Decimal

import pytest

from vatio.agent.metrics.air_quality import aqi, nowcast
from vatio.agent.metrics.emissions import factor_for, kg_co2e
from vatio.agent.metrics.ias_mx import ias, weighted_12h
from vatio.agent.metrics.power_factor import cfe_charge, power_factor_pct

# EPA "Computing the NowCast" slides, oldest → newest [§1.5]; our functions take newest first
EPA_SERIES = [50, 80, 75, 90, 82, 53, 64, 74, 21, 10, 16, 13][::-1]


@pytest.mark.parametrize(
    "concentration,pollutant,expected,why",
    [
        (9.05, "pm2_5", 50, "truncate to 0.1 first: 9.0 is the top of Good [§1.4]"),
        (9.1, "pm2_5", 51, "9.1 opens Moderate [§1.3, 2024 table]"),
        (35.4, "pm2_5", 100, "top of Moderate"),
        (17.4, "pm2_5", 66, "EPA NowCast example with the 2024 table [§1.5]"),
        (17.4, "pm2_5_legacy", 62, "the same with the 2012 table [§1.5]"),
        (125.4, "pm2_5", 200, "AQI 200 at 125.4 since 2024 [§1.3]"),
        (325.4, "pm2_5", 500, "top of the scale [§1.3]"),
        (54.9, "pm10", 50, "PM10 truncates to 1 µg/m³: 54 [§1.4]"),
        (55, "pm10", 51, "PM10 Moderate starts at 55 [§1.3]"),
        (604, "pm10", 500, "top of the PM10 scale"),
        (0, "pm2_5", 0, "clean air"),
    ],
)
def test_aqi(concentration, pollutant, expected, why):
    assert aqi(concentration, pollutant).value == expected, why


def test_beyond_the_scale_is_extrapolated_and_flagged():
    # 40 CFR 58 App. G §12(ii) lets the last band extend; 500.0 µg/m³ → 848 [§1.4]
    high = aqi(500.0, "pm2_5")
    assert (high.value, high.beyond_scale, high.category) == (848, True, "Hazardous")
    assert not aqi(325.4, "pm2_5").beyond_scale


def test_categories_and_negative_input():
    assert aqi(12.0).category == "Moderate"
    with pytest.raises(ValueError):
        aqi(-1.0)


def test_nowcast_epa_worked_example():
    assert nowcast(EPA_SERIES) == Decimal("17.4")  # recomputed 17.4139, truncated [§1.5]
    assert aqi(float(nowcast(EPA_SERIES))).value == 66


@pytest.mark.parametrize(
    "hours,expected,why",
    [
        ([None, 10.0, None] + [10.0] * 9, None, "needs 2 of the 3 most recent hours [§1.5.5]"),
        (
            [None, 10.0, 12.0],
            Decimal("10.9"),
            "w = 10/12; (10w + 12w²)/(w + w²) = 10.909, truncated [§1.5.4, §1.5.6]",
        ),
        (
            [20.0, None, 10.0],
            Decimal("18.0"),
            "w = max(10/20, 0.5); the gap keeps its exponent: (20 + 10·0.5²)/(1 + 0.5²) [§1.5.5]",
        ),
        ([0.0] * 12, Decimal("0.0"), "all zero: w = 1, NowCast 0 [§1.5.7]"),
    ],
)
def test_nowcast_validity_and_gaps(hours, expected, why):
    assert nowcast(hours) == expected, why


def test_nowcast_pm10_truncates_to_whole_micrograms():
    assert nowcast([54.9, 54.9, 54.9], "pm10") == Decimal("54")


@pytest.mark.parametrize(
    "c,pollutant,stage,level,why",
    [
        (15, "pm2_5", "2026", 1, "Buena ≤ 15 [§2.3, 2023 NOM]"),
        (15.5, "pm2_5", "2026", 2, "rounded half-up to 16 → Aceptable [§2.4]"),
        (25, "pm2_5", "2026", 2, "Aceptable ≤ 25 from 2026"),
        (26, "pm2_5", "2026", 3, "Mala from 26 in 2026"),
        (33, "pm2_5", "2024", 2, "Aceptable ≤ 33 in the 2024 stage"),
        (131, "pm2_5", "2024", 5, "Extremadamente Mala > 130"),
        (50, "pm10", "2026", 2, "PM10 Aceptable ≤ 50 from 2026 (partly UNCONFIRMED)"),
        (60, "pm10", "2024", 2, "PM10 Aceptable ≤ 60 in 2024"),
        (51, "pm10", "2019", 2, "2019 NOM: Aceptable 51–75"),
        (147, "pm2_5", "2019", 4, "2019 NOM: Muy Mala 80–147"),
    ],
)
def test_ias_levels(c, pollutant, stage, level, why):
    assert ias(c, pollutant, stage).level == level, why


def test_ias_names_are_spanish():
    r = ias(100, "pm2_5", "2026")
    assert (r.category, r.colour_name, r.risk) == ("Muy Mala", "Rojo", "Muy alto")


def test_ias_weighted_mean_with_and_without_the_disputed_factor():
    assert weighted_12h(EPA_SERIES) == 17  # [§2.4] same series as EPA's example
    assert weighted_12h(EPA_SERIES, adjustment=0.694) == 12  # FA applied: 12 [§2.4, C]
    assert weighted_12h([None, None, 30.0]) is None


@pytest.mark.parametrize(
    "kwh,kvarh,threshold,surcharge,bonus,why",
    [
        (1000, 750, 90, "7.5", "0.0", "FP 80 % → recargo 3/5·(90/80−1) = 7.5 % [§6]"),
        (1000, 0, 90, "0.0", "2.5", "FP 100 % → bonus 1/4·(1−90/100) = 2.5 %, not 2.49999 [§6]"),
        (1000, 484.32, 90, "0.0", "0.0", "FP exactly 90 % → neither [§6]"),
        (97.83, 20.58, 90, "0.0", "2.0", "sunwise bill: FP 97.83 % → 2.0 % [§4.4]"),
        (1000, 395.2, 95, "1.3", "0.0", "95 % threshold (A/073/2023): FP 93 % → 1.3 % [§4.4]"),
    ],
)
def test_cfe_power_factor(kwh, kvarh, threshold, surcharge, bonus, why):
    r = cfe_charge(kwh, kvarh, threshold)
    assert (str(r.surcharge_pct), str(r.bonus_pct)) == (surcharge, bonus), (why, r)


def test_power_factor_from_energies():
    assert power_factor_pct(1000, 750) == Decimal(80)
    with pytest.raises(ValueError):
        power_factor_pct(0, 10)


@pytest.mark.parametrize(
    "year,factor,why",
    [
        (2021, 0.423, "SEMARNAT aviso 2021 [§3.1]"),
        (2024, 0.444, "aviso of 28 Feb 2025 [§3.1]"),
        (2026, 0.444, "the latest published applies until the next one [§3.1]"),
    ],
)
def test_emission_factors(year, factor, why):
    assert factor_for(year).kg_per_kwh == factor, why


def test_emissions():
    assert kg_co2e(1000, 2024) == pytest.approx(444.0)  # 1000 kWh × 0.444 [§6]
    assert round(kg_co2e(0.12, 2024), 3) == 0.053  # [§6]
    assert not factor_for(2019).confirmed
    with pytest.raises(ValueError):
        factor_for(2010)

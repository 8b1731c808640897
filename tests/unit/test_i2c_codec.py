"""Sensirion CRC-8 and Bosch BME280 compensation against the manufacturers' own examples."""

import pytest

from vatio.drivers.i2c import bme280, sensirion
from vatio.drivers.i2c.transport import BadCrc
from vatio.simulators.i2c_sensors import DATASHEET_CALIBRATION, compensate_double


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        (b"\xbe\xef", 0x92),  # SHT3x-DIS / SCD4x / SPS30 datasheets, "CRC example"
        (b"\x03\x00", 0xAC),  # SPS30 datasheet §6.3.1: start measurement, float format
        (b"\x07\xe6", 0x48),  # SCD4x datasheet: set_temperature_offset example word
    ],
)
def test_sensirion_crc8_matches_the_datasheet_examples(data, crc):
    assert sensirion.crc8(data) == crc


def test_a_command_with_an_argument_carries_the_crc():
    assert sensirion.command(0x0010, 0x0300) == bytes([0x00, 0x10, 0x03, 0x00, 0xAC])


def test_words_with_a_bad_crc_are_never_decoded():
    good = sensirion.encode_words([0xBEEF, 0x1234])
    assert good[:3] == b"\xbe\xef\x92"
    assert sensirion.words(good, "x") == [0xBEEF, 0x1234]
    spoiled = good[:5] + bytes([good[5] ^ 1])
    assert sensirion.words_or_none(spoiled) == [0xBEEF, None]
    with pytest.raises(BadCrc, match=r"word 1 \(bytes 3–5"):
        sensirion.words(spoiled, "x")


def test_bme280_temperature_and_pressure_match_the_bosch_worked_example():
    # Bosch BMP280 data sheet (BST-BMP280-DS001) §3.12, the formulas BME280 §4.2.3 shares:
    # adc_T 519888 → t_fine 128422, T 25.08 °C; adc_P 415148 → p 100653.27 Pa
    c = DATASHEET_CALIBRATION
    t, t_fine = bme280.compensate_temperature(519888, c)
    assert (t, t_fine) == (2508, 128422)
    p = bme280.compensate_pressure(415148, t_fine, c)
    assert abs(p / 256 - 100653.27) < 0.1


def test_bme280_calibration_is_split_as_the_datasheet_table_says():
    # 0xE4 = 0x14, 0xE5 = 0x0D, 0xE6 = 0x00: dig_H4 = 0x14·16 + 0xD = 333, dig_H5 = 0
    tp, _ = DATASHEET_CALIBRATION.to_registers()
    h = bytes([0x6A, 0x01, 0x00, 0x14, 0x0D, 0x00, 0x1E])
    c = bme280.Calibration.parse(tp, h)
    assert (c.H2, c.H3, c.H4, c.H5, c.H6) == (362, 0, 333, 0, 30)
    assert (c.T1, c.T2, c.T3, c.P9) == (27504, 26435, -1000, 6000)
    negative = bme280.Calibration.parse(tp, bytes([0x6A, 0x01, 0x00, 0xFF, 0x8F, 0xF0, 0xE2]))
    assert (negative.H4, negative.H5, negative.H6) == (-1, -248, -30)  # 0xFFF, 0xF08, 0xE2: signed
    assert bme280.Calibration.parse(*negative.to_registers()) == negative


@pytest.mark.parametrize("adc_h", [18000, 24000, 28000, 32000, 36000])
@pytest.mark.parametrize("adc_t", [430000, 519888, 560000])
def test_bme280_integer_humidity_agrees_with_the_floating_point_formula(adc_t, adc_h):
    # two independent formulas of the datasheet (§4.2.3 integer, §8.1 double)
    c = DATASHEET_CALIBRATION
    raw = bme280.RawSample(415148, adc_t, adc_h)
    sample = bme280.compensate(raw, c)
    t, p, h = compensate_double(raw, c)
    assert sample.temperature_c == pytest.approx(t, abs=0.01)
    assert sample.pressure_hpa == pytest.approx(p, abs=0.01)
    assert sample.humidity_pct == pytest.approx(h, abs=0.05)


def test_bme280_skipped_measurements_are_none():
    c = DATASHEET_CALIBRATION
    raw = bme280.RawSample.parse(bytes([0x80, 0, 0, 0x80, 0, 0, 0x80, 0]))  # reset values
    assert bme280.compensate(raw, c) == bme280.Sample(None, None, None)
    only_t = bme280.compensate(bme280.RawSample(0x80000, 519888, 0x8000), c)
    assert only_t == bme280.Sample(25.08, None, None)


def test_bme280_measurement_time_is_the_datasheets_maximum():
    assert bme280.measurement_time_s(1, 1, 1) == pytest.approx(0.0093)
    assert bme280.measurement_time_s(16, 16, 16) == pytest.approx(0.1128)

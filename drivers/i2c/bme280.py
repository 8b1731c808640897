"""Bosch BME280 (temperature, pressure, humidity): registers, calibration and compensation.

Source: Bosch Sensortec, "BME280 – Data sheet", BST-BME280-DS002 (rev. 1.6 and later).
* §5.3/§5.4 memory map: chip id 0xD0 = 0x60; ctrl_hum 0xF2 (osrs_h, takes effect only after
  a write to ctrl_meas); status 0xF3 (bit 3 ``measuring``); ctrl_meas 0xF4 (osrs_t[7:5],
  osrs_p[4:2], mode[1:0]: 00 sleep, 01 forced, 11 normal); config 0xF5 (t_sb[7:5],
  filter[4:2]); data 0xF7–0xFE (press msb/lsb/xlsb, temp msb/lsb/xlsb, hum msb/lsb), read in
  one burst so the three belong to the same measurement (§4.1 "data readout").
* §4.2.2 Table 16, calibration ("trimming") words: 0x88–0xA1 hold dig_T1..dig_T3, dig_P1..
  dig_P9 (little-endian; T1 and P1 unsigned, the rest signed) and dig_H1 (0xA1, unsigned);
  0xE1–0xE7 hold dig_H2 (signed 16), dig_H3 (unsigned 8), dig_H4 = 0xE4[7:0]·16 + 0xE5[3:0]
  and dig_H5 = 0xE6[7:0]·16 + 0xE5[7:4] (signed 12 bit each) and dig_H6 (signed 8).
* §4.2.3 "Compensation formulas": the integer code below (temperature in 0.01 °C with
  ``t_fine`` carried to the others, pressure with 64-bit integers in Q24.8 Pa, humidity in
  Q22.10 %RH), written here in Python with C's truncating division where it matters.
* §9.1 (Appendix B) measurement time: t_max = 1.25 + 2.3·osrs_t + (2.3·osrs_p + 0.575) +
  (2.3·osrs_h + 0.575) ms; §3.5.1 recommends forced mode, ×1 oversampling and no filter for
  weather monitoring (one measurement per minute or so): that is the default here.
* A skipped measurement reads 0x80000 (T, P) or 0x8000 (H).

The temperature and pressure formulas are the BMP280's (Bosch, "BMP280 Data sheet",
BST-BMP280-DS001, §3.11.3), whose worked example the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

CHIP_ID_REG = 0xD0
CHIP_ID = 0x60
CHIP_ID_BMP280 = 0x58
CTRL_HUM = 0xF2
STATUS = 0xF3
CTRL_MEAS = 0xF4
CONFIG = 0xF5
DATA = 0xF7
CALIB_TP = 0x88  # 26 bytes: 0x88–0xA1
CALIB_H = 0xE1  # 7 bytes: 0xE1–0xE7
MODE_SLEEP, MODE_FORCED, MODE_NORMAL = 0b00, 0b01, 0b11
OVERSAMPLING = {0: 0, 1: 1, 2: 2, 4: 3, 8: 4, 16: 5}  # factor → register code
SKIPPED_TP = 0x80000
SKIPPED_H = 0x8000


@dataclass(frozen=True)
class Calibration:
    T1: int
    T2: int
    T3: int
    P1: int
    P2: int
    P3: int
    P4: int
    P5: int
    P6: int
    P7: int
    P8: int
    P9: int
    H1: int
    H2: int
    H3: int
    H4: int
    H5: int
    H6: int

    @classmethod
    def parse(cls, tp: bytes, h: bytes) -> Calibration:
        """From the 26 bytes at 0x88 and the 7 bytes at 0xE1."""
        if len(tp) != 26 or len(h) != 7:
            raise ValueError("BME280 calibration: 26 bytes at 0x88 and 7 at 0xE1 are needed")

        def u16(i: int) -> int:
            return tp[i] | tp[i + 1] << 8

        def s16(i: int) -> int:
            v = u16(i)
            return v - 0x10000 if v & 0x8000 else v

        def s12(v: int) -> int:
            return v - 0x1000 if v & 0x800 else v

        h2 = h[0] | h[1] << 8
        return cls(
            T1=u16(0), T2=s16(2), T3=s16(4),
            P1=u16(6), P2=s16(8), P3=s16(10), P4=s16(12), P5=s16(14),
            P6=s16(16), P7=s16(18), P8=s16(20), P9=s16(22),
            H1=tp[25],
            H2=h2 - 0x10000 if h2 & 0x8000 else h2,
            H3=h[2],
            H4=s12(h[3] << 4 | (h[4] & 0x0F)),
            H5=s12(h[5] << 4 | (h[4] >> 4)),
            H6=h[6] - 0x100 if h[6] & 0x80 else h[6],
        )  # fmt: skip

    def to_registers(self) -> tuple[bytes, bytes]:
        """The inverse of :meth:`parse` (simulators)."""
        tp = bytearray()
        for v in (self.T1, self.T2, self.T3, self.P1, self.P2, self.P3, self.P4, self.P5,
                  self.P6, self.P7, self.P8, self.P9):  # fmt: skip
            tp += (v & 0xFFFF).to_bytes(2, "little")
        tp += bytes([0, self.H1])  # 0xA0 is not used
        h4, h5 = self.H4 & 0xFFF, self.H5 & 0xFFF
        h = (self.H2 & 0xFFFF).to_bytes(2, "little") + bytes(
            [self.H3, h4 >> 4, (h4 & 0x0F) | (h5 & 0x0F) << 4, h5 >> 4, self.H6 & 0xFF]
        )
        return bytes(tp), h


def _cdiv(a: int, b: int) -> int:
    """C's integer division (truncates toward zero; Python's // floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def compensate_temperature(adc_t: int, c: Calibration) -> tuple[int, int]:
    """(temperature in 0.01 °C, t_fine): §4.2.3, BME280_compensate_T_int32."""
    var1 = (((adc_t >> 3) - (c.T1 << 1)) * c.T2) >> 11
    var2 = (((((adc_t >> 4) - c.T1) * ((adc_t >> 4) - c.T1)) >> 12) * c.T3) >> 14
    t_fine = var1 + var2
    return (t_fine * 5 + 128) >> 8, t_fine


def compensate_pressure(adc_p: int, t_fine: int, c: Calibration) -> int:
    """Pressure in Pa as Q24.8 (value / 256 = Pa): §4.2.3, BME280_compensate_P_int64."""
    var1 = t_fine - 128000
    var2 = var1 * var1 * c.P6
    var2 = var2 + ((var1 * c.P5) << 17)
    var2 = var2 + (c.P4 << 35)
    var1 = ((var1 * var1 * c.P3) >> 8) + ((var1 * c.P2) << 12)
    var1 = (((1 << 47) + var1) * c.P1) >> 33
    if var1 == 0:
        return 0  # the datasheet's guard against a division by zero
    p = 1048576 - adc_p
    p = _cdiv(((p << 31) - var2) * 3125, var1)
    var1 = (c.P9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (c.P8 * p) >> 19
    return ((p + var1 + var2) >> 8) + (c.P7 << 4)


def compensate_humidity(adc_h: int, t_fine: int, c: Calibration) -> int:
    """Relative humidity as Q22.10 (value / 1024 = %RH): §4.2.3, bme280_compensate_H_int32."""
    v = t_fine - 76800
    v = ((((adc_h << 14) - (c.H4 << 20) - (c.H5 * v)) + 16384) >> 15) * (
        ((((((v * c.H6) >> 10) * (((v * c.H3) >> 11) + 32768)) >> 10) + 2097152) * c.H2 + 8192)
        >> 14
    )
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * c.H1) >> 4)
    v = min(max(v, 0), 419430400)
    return v >> 12


@dataclass(frozen=True)
class RawSample:
    adc_p: int
    adc_t: int
    adc_h: int

    @classmethod
    def parse(cls, data: bytes) -> RawSample:
        """The 8 bytes read from 0xF7 (20-bit P and T, 16-bit H)."""
        return cls(
            adc_p=data[0] << 12 | data[1] << 4 | data[2] >> 4,
            adc_t=data[3] << 12 | data[4] << 4 | data[5] >> 4,
            adc_h=data[6] << 8 | data[7],
        )

    def to_registers(self) -> bytes:
        return bytes(
            [self.adc_p >> 12, (self.adc_p >> 4) & 0xFF, (self.adc_p & 0x0F) << 4,
             self.adc_t >> 12, (self.adc_t >> 4) & 0xFF, (self.adc_t & 0x0F) << 4,
             self.adc_h >> 8, self.adc_h & 0xFF]
        )  # fmt: skip


@dataclass(frozen=True)
class Sample:
    temperature_c: float | None
    pressure_hpa: float | None
    humidity_pct: float | None


def compensate(raw: RawSample, c: Calibration) -> Sample:
    """Physical values; None for a measurement that was skipped (oversampling 0)."""
    if raw.adc_t == SKIPPED_TP:
        return Sample(None, None, None)  # P and H need t_fine
    t, t_fine = compensate_temperature(raw.adc_t, c)
    p = None if raw.adc_p == SKIPPED_TP else compensate_pressure(raw.adc_p, t_fine, c)
    h = None if raw.adc_h == SKIPPED_H else compensate_humidity(raw.adc_h, t_fine, c)
    return Sample(
        temperature_c=t / 100,
        pressure_hpa=None if p is None else round(p / 256 / 100, 4),
        humidity_pct=None if h is None else round(h / 1024, 3),
    )


def measurement_time_s(osrs_t: int, osrs_p: int, osrs_h: int) -> float:
    """The maximum time of one forced measurement (§9.1), in seconds."""
    ms = 1.25 + 2.3 * osrs_t
    if osrs_p:
        ms += 2.3 * osrs_p + 0.575
    if osrs_h:
        ms += 2.3 * osrs_h + 0.575
    return ms / 1000

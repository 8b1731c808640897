"""Sensirion SPS30 particulate matter sensor on UART: its SHDLC commands and replies.

Source: Sensirion, "Datasheet SPS30", Version 1.0 – D1 – March 2020, §4 (functional
overview: measurement timing, fan cleaning, device status register) and §5.3 (UART
commands); command codes cross-checked against Sensirion's drivers (Sensirion/embedded-uart-sps
``sps30-uart/sps30.c``, Sensirion/python-uart-sps30 ``commands.py``). Framing:
:mod:`vatio.drivers.uart.shdlc`.

==========================  =====  ==========================  ===============================
command                     CMD    MOSI data                   MISO data
==========================  =====  ==========================  ===============================
start measurement           0x00   01 03 (big-endian IEEE754)  —
stop measurement            0x01   —                           —
read measured values        0x03   —                           40 bytes, or none (no new data)
start fan cleaning          0x56   —                           — (measurement mode only)
auto-cleaning interval      0x80   00 (read) / 00 + u32 (set)  u32 seconds (read)
device information          0xD0   00 product type, 03 serial  ASCII, NUL-terminated
read device status register 0xD2   00 (keep) / 01 (clear)      u32 register + 1 reserved byte
device reset                0xD3   —                           —
==========================  =====  ==========================  ===============================

Measured values (float format): ten big-endian IEEE754 floats, in this order: mass
concentration PM1.0, PM2.5, PM4.0, PM10 (µg/m³); number concentration PM0.5, PM1.0, PM2.5,
PM4.0, PM10 (particles 0.3 µm up to the size, #/cm³); typical particle size (µm).

Timing: the sensor measures once per second in measurement mode; reading faster returns an
empty reply ("no new measurement values available"). The fan cleans itself (10 s at full
speed) every *auto-cleaning interval*, by default 604,800 s = 168 h = one week (§4.2). The
driver reads the interval once per (re)open and logs it; a configured interval is written
then too (writing the same value again is harmless), so a replaced sensor gets it as well.
Manual cleaning (``start fan cleaning``) is accepted only in measurement mode; during the
10 s of cleaning the values are not meaningful.

Device status register bits (§4.4): 21 = fan speed out of range (warning), 5 = laser
failure, 4 = fan failure (blocked or broken: 0 rpm).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vatio.drivers.uart import shdlc

START_MEASUREMENT = 0x00
STOP_MEASUREMENT = 0x01
READ_MEASURED_VALUES = 0x03
START_FAN_CLEANING = 0x56
AUTO_CLEANING_INTERVAL = 0x80
DEVICE_INFORMATION = 0xD0
READ_STATUS_REGISTER = 0xD2
RESET = 0xD3

FLOAT_FORMAT = 0x03  # "big-endian IEEE754 float" output format of start measurement
INFO_PRODUCT_TYPE = 0x00
INFO_SERIAL_NUMBER = 0x03
PRODUCT_TYPE = "00080000"  # what every SPS30 answers to "product type"
DEFAULT_AUTO_CLEANING_S = 604_800  # 168 h

MEASURED_VALUES_LEN = 40

# (bit, name, meaning) of the device status register
STATUS_BITS = (
    (21, "fan_speed", "fan speed out of range (too high or too low)"),
    (5, "laser", "laser failure (laser current out of range)"),
    (4, "fan", "fan failure: the fan is blocked or broken (0 rpm)"),
)

# the quantities of a measured-values reply, in wire order
QUANTITIES = (
    "pm1_0_ugm3",
    "pm2_5_ugm3",
    "pm4_0_ugm3",
    "pm10_ugm3",
    "nc0_5_per_cm3",
    "nc1_0_per_cm3",
    "nc2_5_per_cm3",
    "nc4_0_per_cm3",
    "nc10_per_cm3",
    "typical_particle_size_um",
)


def start_measurement() -> bytes:
    return shdlc.mosi(START_MEASUREMENT, bytes([0x01, FLOAT_FORMAT]))


def stop_measurement() -> bytes:
    return shdlc.mosi(STOP_MEASUREMENT)


def read_measured_values() -> bytes:
    return shdlc.mosi(READ_MEASURED_VALUES)


def start_fan_cleaning() -> bytes:
    return shdlc.mosi(START_FAN_CLEANING)


def read_auto_cleaning_interval() -> bytes:
    return shdlc.mosi(AUTO_CLEANING_INTERVAL, b"\x00")


def write_auto_cleaning_interval(seconds: int) -> bytes:
    return shdlc.mosi(AUTO_CLEANING_INTERVAL, b"\x00" + struct.pack(">I", seconds))


def device_information(which: int) -> bytes:
    return shdlc.mosi(DEVICE_INFORMATION, bytes([which]))


def read_status_register(clear: bool = False) -> bytes:
    return shdlc.mosi(READ_STATUS_REGISTER, bytes([1 if clear else 0]))


@dataclass(frozen=True)
class Measurement:
    values: dict[str, float]  # by quantity name, wire order


def parse_measured_values(data: bytes) -> Measurement | None:
    """The data of a read-measured-values reply; None when it is empty (no new values)."""
    if not data:
        return None
    if len(data) != MEASURED_VALUES_LEN:
        raise shdlc.ShdlcError(
            f"measured values are {MEASURED_VALUES_LEN} bytes in float format, this reply "
            f"holds {len(data)} (is the sensor in uint16 format?)"
        )
    return Measurement(dict(zip(QUANTITIES, struct.unpack(">10f", data), strict=True)))


def encode_measured_values(values: dict[str, float]) -> bytes:
    """The 40 data bytes for ``values`` (simulators, tests)."""
    return struct.pack(">10f", *(values[q] for q in QUANTITIES))


def parse_interval(data: bytes) -> int:
    if len(data) != 4:
        raise shdlc.ShdlcError(f"auto-cleaning interval is 4 bytes, this reply holds {len(data)}")
    value: int = struct.unpack(">I", data)[0]
    return value


def parse_string(data: bytes) -> str:
    """A device-information string: ASCII up to the first NUL."""
    return data.split(b"\x00", 1)[0].decode("ascii", "replace")


def parse_status_register(data: bytes) -> int:
    if len(data) < 4:
        raise shdlc.ShdlcError(f"device status register is 4 bytes, this reply holds {len(data)}")
    value: int = struct.unpack(">I", data[:4])[0]
    return value


def describe_status(register: int) -> str:
    """The set bits of the device status register, in words ("" when none is set)."""
    return "; ".join(text for bit, _, text in STATUS_BITS if register >> bit & 1)

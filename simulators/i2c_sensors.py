"""Byte-level I2C sensor simulators behind the drivers' transport: BME280, SHT3x, SHT4x,
SCD4x and SPS30.

A kernel I2C bus cannot be used in tests, so the seam is the byte transport
(:class:`vatio.drivers.i2c.transport.I2cTransport`): :class:`SimulatedI2cBus` routes each
write and read to the simulated device at that address and answers as the part does, from
the same datasheets the drivers cite:

* a read from an address nobody answers, from an unplugged sensor, or from a Sensirion
  sensor that is still measuring raises ``OSError(EREMOTEIO)`` / ``OSError(ENXIO)``, as the
  kernel's i2c-dev does for a NAK;
* Sensirion sensors check the CRC of written arguments and reply with CRC-8 words; a
  measurement is ready only after its documented time (SHT3x 15 ms, SHT4x 8.3 ms, SCD4x
  every 5 s after start, SPS30 every second), and before that a read is NAKed (SCD4x
  read_measurement, SHT single shots) or the data-ready flag says "not yet";
* the BME280 has its register file: chip id, the calibration words, ctrl_hum / ctrl_meas,
  ``measuring`` in status during a forced measurement, and data registers holding the
  reset values (0x80000) until a measurement ran.

Faults per device (:class:`Faults`): ``unplug()`` (every transaction fails with ENXIO;
``plug()`` brings it back as after a power cycle: idle, default registers), ``nak_next`` (the
next N transactions NAK), ``bad_crc_next`` (the next N replies carry a spoiled CRC in
``bad_crc_word``).

BME280 calibration: the temperature and pressure words are the worked example of Bosch's
BMP280 data sheet (BST-BMP280-DS001, §3.12: dig_T1 27504 … dig_P9 6000, whose T and P
formulas the BME280 shares); the humidity words (H1 75, H2 362, H3 0, H4 333, H5 0, H6 30)
are typical of production parts in published register dumps — UNCONFIRMED as a dump of
one device. The raw ADC values are found by inverting the datasheet's floating-point
formulas (BME280 data sheet §8.1), not the integer ones the driver uses, so a mistake in
either shows up as a disagreement.
"""

from __future__ import annotations

import errno
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from vatio.drivers.i2c import bme280
from vatio.drivers.i2c.sensirion import crc8, encode_words

Clock = Callable[[], float]
D = TypeVar("D", bound="SimDevice")


class FakeClock:
    """A steady clock that tests move by hand or through :meth:`sleep`."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)


def _nak() -> OSError:
    return OSError(errno.EREMOTEIO, "Remote I/O error")


@dataclass
class Faults:
    unplugged: bool = False
    nak_next: int = 0
    bad_crc_next: int = 0
    bad_crc_word: int = 0  # which word of the reply gets a spoiled CRC


class SimDevice:
    """One device on the simulated bus."""

    def __init__(self, address: int, clock: Clock = time.monotonic) -> None:
        self.address = address
        self.clock = clock
        self.faults = Faults()
        self.commands: list[int] = []  # command codes / registers written, in order

    def unplug(self) -> None:
        self.faults.unplugged = True

    def plug(self) -> None:
        """Plugged in again: it lost power, so it starts from its reset state."""
        self.faults.unplugged = False
        self.power_on()

    def power_on(self) -> None:
        pass

    def check(self) -> None:
        if self.faults.unplugged:
            raise OSError(errno.ENXIO, "No such device or address")
        if self.faults.nak_next > 0:
            self.faults.nak_next -= 1
            raise _nak()

    def on_write(self, data: bytes) -> None:
        raise NotImplementedError

    def on_read(self, length: int) -> bytes:
        raise NotImplementedError


class SimulatedI2cBus:
    """An :class:`~vatio.drivers.i2c.transport.I2cTransport` with simulated devices on it."""

    def __init__(self) -> None:
        self.devices: dict[int, SimDevice] = {}
        self.transactions = 0
        self.closed = False
        self.opened = 0

    def add(self, device: D) -> D:
        self.devices[device.address] = device
        return device

    def opener(self, device: str) -> SimulatedI2cBus:
        """For ``I2cBus(opener=…)``: "opens" this bus whatever the device path."""
        self.opened += 1
        self.closed = False
        return self

    def _device(self, address: int) -> SimDevice:
        self.transactions += 1
        if self.closed:
            raise OSError(errno.EBADF, "Bad file descriptor")
        dev = self.devices.get(address)
        if dev is None:
            raise OSError(errno.ENXIO, "No such device or address")
        dev.check()
        return dev

    def write(self, address: int, data: bytes) -> None:
        self._device(address).on_write(data)

    def read(self, address: int, length: int) -> bytes:
        return self._device(address).on_read(length)

    def write_read(self, address: int, data: bytes, length: int) -> bytes:
        dev = self._device(address)
        dev.on_write(data)
        return dev.on_read(length)

    def close(self) -> None:
        self.closed = True


# ---------------------------------------------------------------------------------- BME280

DATASHEET_CALIBRATION = bme280.Calibration(
    T1=27504, T2=26435, T3=-1000,
    P1=36477, P2=-10685, P3=3024, P4=2855, P5=140, P6=-7, P7=15500, P8=-14600, P9=6000,
    H1=75, H2=362, H3=0, H4=333, H5=0, H6=30,
)  # fmt: skip


def _t_double(adc_t: int, c: bme280.Calibration) -> tuple[float, int]:
    var1 = (adc_t / 16384.0 - c.T1 / 1024.0) * c.T2
    var2 = (adc_t / 131072.0 - c.T1 / 8192.0) ** 2 * c.T3
    return (var1 + var2) / 5120.0, int(var1 + var2)


def _p_double(adc_p: int, t_fine: int, c: bme280.Calibration) -> float:
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * c.P6 / 32768.0
    var2 = var2 + var1 * c.P5 * 2.0
    var2 = var2 / 4.0 + c.P4 * 65536.0
    var1 = (c.P3 * var1 * var1 / 524288.0 + c.P2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * c.P1
    if var1 == 0:
        return 0.0
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = c.P9 * p * p / 2147483648.0
    var2 = p * c.P8 / 32768.0
    return p + (var1 + var2 + c.P7) / 16.0


def _h_double(adc_h: int, t_fine: int, c: bme280.Calibration) -> float:
    v = t_fine - 76800.0
    v = (adc_h - (c.H4 * 64.0 + c.H5 / 16384.0 * v)) * (
        c.H2 / 65536.0 * (1.0 + c.H6 / 67108864.0 * v * (1.0 + c.H3 / 67108864.0 * v))
    )
    v = v * (1.0 - c.H1 * v / 524288.0)
    return min(max(v, 0.0), 100.0)


def _bisect(f: Callable[[int], float], target: float, hi: int, rising: bool) -> int:
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (f(mid) < target) == rising:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda a: abs(f(a) - target))


def raw_for(
    temperature_c: float, pressure_hpa: float, humidity_pct: float, c: bme280.Calibration
) -> bme280.RawSample:
    """ADC values that the datasheet's floating-point formulas turn into these values."""
    adc_t = _bisect(lambda a: _t_double(a, c)[0], temperature_c, 0xFFFFF, rising=True)
    t_fine = _t_double(adc_t, c)[1]
    adc_p = _bisect(lambda a: _p_double(a, t_fine, c), pressure_hpa * 100, 0xFFFFF, False)
    adc_h = _bisect(lambda a: _h_double(a, t_fine, c), humidity_pct, 0xFFFF, rising=True)
    return bme280.RawSample(adc_p, adc_t, adc_h)


def compensate_double(raw: bme280.RawSample, c: bme280.Calibration) -> tuple[float, float, float]:
    """(°C, hPa, %RH) by the datasheet's floating-point formulas (§8.1)."""
    t, t_fine = _t_double(raw.adc_t, c)
    return t, _p_double(raw.adc_p, t_fine, c) / 100, _h_double(raw.adc_h, t_fine, c)


class Bme280Sim(SimDevice):
    RESET_DATA = bytes([0x80, 0, 0, 0x80, 0, 0, 0x80, 0])

    def __init__(
        self,
        address: int = 0x76,
        calibration: bme280.Calibration = DATASHEET_CALIBRATION,
        clock: Clock = time.monotonic,
        chip_id: int = bme280.CHIP_ID,
    ) -> None:
        super().__init__(address, clock)
        self.calibration = calibration
        self.chip_id = chip_id
        self.temperature_c = 21.5
        self.pressure_hpa = 780.2  # Mexico City, ~2240 m
        self.humidity_pct = 45.0
        self.measurements = 0
        self.pointers: list[int] = []  # registers a read started from, in order
        self.power_on()

    def power_on(self) -> None:
        self.regs = bytearray(256)
        self.regs[bme280.CHIP_ID_REG] = self.chip_id
        tp, h = self.calibration.to_registers()
        self.regs[bme280.CALIB_TP : bme280.CALIB_TP + 26] = tp
        self.regs[bme280.CALIB_H : bme280.CALIB_H + 7] = h
        self.regs[bme280.DATA : bme280.DATA + 8] = self.RESET_DATA
        self.pointer = 0
        self._done_at: float | None = None

    def _latch(self) -> None:
        raw = raw_for(self.temperature_c, self.pressure_hpa, self.humidity_pct, self.calibration)
        if not self.regs[bme280.CTRL_HUM] & 0x07:
            raw = bme280.RawSample(raw.adc_p, raw.adc_t, bme280.SKIPPED_H)
        self.regs[bme280.DATA : bme280.DATA + 8] = raw.to_registers()
        self.measurements += 1

    def _update(self) -> None:
        now = self.clock()
        mode = self.regs[bme280.CTRL_MEAS] & 0x03
        if self._done_at is not None and now >= self._done_at:
            self._done_at = None
            self._latch()
            if mode == bme280.MODE_FORCED:  # back to sleep after one measurement
                self.regs[bme280.CTRL_MEAS] &= ~0x03
        elif mode == bme280.MODE_NORMAL and self._done_at is None:
            self._latch()
        self.regs[bme280.STATUS] = 0x08 if self._done_at is not None else 0x00

    def on_write(self, data: bytes) -> None:
        if len(data) == 1:
            self.pointer = data[0]
            self.pointers.append(data[0])
            return
        if len(data) % 2:
            raise _nak()
        for reg, value in zip(data[::2], data[1::2], strict=True):
            self.commands.append(reg)
            if reg in (bme280.CTRL_HUM, bme280.CONFIG):
                self.regs[reg] = value
            elif reg == bme280.CTRL_MEAS:
                self.regs[reg] = value
                if value & 0x03:  # forced or normal: a measurement starts
                    osrs = [(value >> 5) & 7, (value >> 2) & 7, self.regs[bme280.CTRL_HUM] & 7]
                    factors = [0 if o == 0 else 1 << (o - 1) for o in osrs]
                    self._done_at = self.clock() + bme280.measurement_time_s(*factors)
            elif reg == 0xE0 and value == 0xB6:  # soft reset
                self.power_on()

    def on_read(self, length: int) -> bytes:
        self._update()
        start = self.pointer
        self.pointer = (start + length) & 0xFF
        return bytes(self.regs[(start + i) & 0xFF] for i in range(length))


# ------------------------------------------------------------------------------ Sensirion


class SensirionSim(SimDevice):
    """Commands in, CRC-8 words out; a read before the reply is ready is NAKed."""

    command_bytes = 2

    def __init__(self, address: int, clock: Clock = time.monotonic) -> None:
        super().__init__(address, clock)
        self._reply: tuple[float, list[int]] | None = None  # (ready at, words)
        self.power_on()

    def reply_after(self, seconds: float, words: list[int]) -> None:
        self._reply = (self.clock() + seconds, words)

    def on_write(self, data: bytes) -> None:
        n = self.command_bytes
        if len(data) < n or (len(data) - n) % 3:
            raise _nak()
        args = []
        for i in range(n, len(data), 3):
            if crc8(data[i : i + 2]) != data[i + 2]:
                raise _nak()  # a wrong CRC on an argument: the sensor refuses the command
            args.append(int.from_bytes(data[i : i + 2], "big"))
        code = int.from_bytes(data[:n], "big")
        self.commands.append(code)
        self._reply = None
        self.command(code, args)

    def command(self, code: int, args: list[int]) -> None:
        raise NotImplementedError

    def on_read(self, length: int) -> bytes:
        if self._reply is None or self.clock() < self._reply[0]:
            raise _nak()  # nothing to send, or still measuring
        out = bytearray(encode_words(self._reply[1]))
        self._reply = None
        if self.faults.bad_crc_next > 0:
            self.faults.bad_crc_next -= 1
            i = 3 * self.faults.bad_crc_word + 2
            if i < len(out):
                out[i] ^= 0x5A
        return bytes(out[:length])


def _t_word(temperature_c: float) -> int:
    return max(0, min(65535, round((temperature_c + 45) * 65535 / 175)))


def _rh_word(humidity_pct: float) -> int:
    return max(0, min(65535, round(humidity_pct * 65535 / 100)))


class Sht3xSim(SensirionSim):
    DURATION = 0.015  # high repeatability, maximum

    def __init__(self, address: int = 0x44, clock: Clock = time.monotonic) -> None:
        super().__init__(address, clock)
        self.temperature_c = 23.4
        self.humidity_pct = 51.2

    def command(self, code: int, args: list[int]) -> None:
        if code != 0x2400:
            raise _nak()  # only what the driver uses is simulated
        self.reply_after(self.DURATION, [_t_word(self.temperature_c), _rh_word(self.humidity_pct)])


class Sht4xSim(SensirionSim):
    command_bytes = 1
    DURATION = 0.0083

    def __init__(self, address: int = 0x44, clock: Clock = time.monotonic) -> None:
        super().__init__(address, clock)
        self.temperature_c = 19.8
        self.humidity_pct = 63.5

    def command(self, code: int, args: list[int]) -> None:
        if code != 0xFD:
            raise _nak()
        rh = max(0, min(65535, round((self.humidity_pct + 6) * 65535 / 125)))
        self.reply_after(self.DURATION, [_t_word(self.temperature_c), rh])


class _PeriodicSim(SensirionSim):
    period: float

    def power_on(self) -> None:
        self.started: float | None = None
        self.taken = 0  # measurements read so far since start
        self.busy_until = 0.0

    def available(self) -> int:
        """Measurements the sensor has completed since it started."""
        if self.started is None:
            return 0
        return int((self.clock() - self.started) / self.period)

    def new_data(self) -> bool:
        return self.available() > self.taken


class Scd4xSim(_PeriodicSim):
    period = 5.0

    def __init__(self, address: int = 0x62, clock: Clock = time.monotonic) -> None:
        super().__init__(address, clock)
        self.co2_ppm = 612
        self.temperature_c = 24.1
        self.humidity_pct = 40.3

    def command(self, code: int, args: list[int]) -> None:
        if self.clock() < self.busy_until:
            raise _nak()  # still stopping (500 ms)
        if code == 0x3F86:  # stop_periodic_measurement
            if self.started is None:
                raise _nak()
            self.started = None
            self.busy_until = self.clock() + 0.5
        elif code == 0x21B1:  # start_periodic_measurement: idle only
            if self.started is not None:
                raise _nak()
            self.started, self.taken = self.clock(), 0
        elif code == 0xE4B8:  # get_data_ready_status
            self.reply_after(0.001, [0x8006 if self.new_data() else 0x8000])
        elif code == 0xEC05:  # read_measurement: NAK when the buffer is empty
            if self.new_data():
                self.taken = self.available()
                self.reply_after(0.001, [
                    self.co2_ppm, _t_word(self.temperature_c), _rh_word(self.humidity_pct),
                ])  # fmt: skip
        else:
            raise _nak()


SPS30_DEFAULT_CLEANING_S = 604800


class Sps30Sim(_PeriodicSim):
    period = 1.0

    def __init__(self, address: int = 0x69, clock: Clock = time.monotonic) -> None:
        super().__init__(address, clock)
        self.mass = [8.1, 12.6, 14.9, 15.7]  # PM1.0, PM2.5, PM4.0, PM10 µg/m³
        self.number = [55.2, 64.9, 66.1, 66.4, 66.5]  # NC0.5 … NC10 #/cm³
        self.typical_size_um = 0.52
        self.cleaning_interval_s = SPS30_DEFAULT_CLEANING_S

    def command(self, code: int, args: list[int]) -> None:
        if code == 0x0010:  # start measurement, argument 0x0300: floats
            if args != [0x0300]:
                raise _nak()
            if self.started is None:
                self.started, self.taken = self.clock(), 0
        elif code == 0x0104:
            self.started = None
        elif code == 0x0202:  # data-ready flag
            self.reply_after(0.0, [0x0001 if self.new_data() else 0x0000])
        elif code == 0x0300:  # measured values, the last ones again if nothing is new
            if self.started is None:
                raise _nak()
            self.taken = self.available()
            floats = [*self.mass, *self.number, self.typical_size_um]
            words: list[int] = []
            for f in floats:
                words += struct.unpack(">HH", struct.pack(">f", f))
            self.reply_after(0.0, words)
        elif code == 0x8004:
            self.reply_after(
                0.0, [self.cleaning_interval_s >> 16, self.cleaning_interval_s & 0xFFFF]
            )
        else:
            raise _nak()


@dataclass
class CityKit:
    """A city air-quality kit on one simulated bus: the five sensors at their addresses."""

    bus: SimulatedI2cBus = field(default_factory=SimulatedI2cBus)

    def __post_init__(self) -> None:
        self.bme280 = self.bus.add(Bme280Sim())
        self.sht3x = self.bus.add(Sht3xSim(0x44))
        self.sht4x = self.bus.add(Sht4xSim(0x45))
        self.scd4x = self.bus.add(Scd4xSim())
        self.sps30 = self.bus.add(Sps30Sim())

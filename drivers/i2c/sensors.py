"""I2C air-quality and weather drivers: Bosch BME280, Sensirion SHT3x, SHT4x, SCD4x, SPS30.

Every device on an ``i2c`` bus shares the bus's :class:`~vatio.drivers.i2c.transport.I2cBus`
(one owner, one transaction at a time); each has its 7-bit ``address`` (the datasheet's
default unless configured). A sensor's measurement time is awaited between its own
transactions, not while holding the bus.

Sources (command codes, timings, conversions):
* Bosch Sensortec, "BME280 – Data sheet", BST-BME280-DS002: see
  :mod:`vatio.drivers.i2c.bme280`.
* Sensirion, "Datasheet SHT3x-DIS", version 7 (2019): single shot, clock stretching disabled,
  high repeatability 0x2400, max. 15 ms (Table 4); a read header during the measurement is
  NAKed; T = −45 + 175·S_T/(2¹⁶−1) °C, RH = 100·S_RH/(2¹⁶−1) % (§4.13).
* Sensirion, "Datasheet SHT4x", version 6 (2021+): 0xFD measures T and RH with high
  repeatability, max. 8.3 ms; RH = −6 + 125·S_RH/(2¹⁶−1), cropped to 0–100 % (§4.6).
* Sensirion, "Datasheet SCD4x", version 1.x: start_periodic_measurement 0x21B1 (a new value
  every 5 s), get_data_ready_status 0xE4B8 (1 ms; not ready when the low 11 bits of the word
  are 0), read_measurement 0xEC05 (1 ms; CO2 ppm, T = −45 + 175·w/(2¹⁶−1), RH = 100·w/(2¹⁶−1);
  read empties the buffer), stop_periodic_measurement 0x3F86 (the sensor takes 500 ms).
* Sensirion, "Datasheet SPS30", version 1.0 (2020), §6.3 (I2C): start measurement 0x0010
  with argument 0x0300 (big-endian IEEE 754 floats; 20 ms), stop 0x0104 (20 ms), read
  data-ready flag 0x0202, read measured values 0x0300 (10 floats: mass PM1.0/2.5/4.0/10
  µg/m³, number PM0.5/1.0/2.5/4.0/10 #/cm³, typical particle size µm; a new value every
  second), read/write auto-cleaning interval 0x8004 (seconds; 604800 = one week by default).
  The SPS30 wants SEL tied to GND for I2C and at most 100 kHz on the bus.

Sensirion data words each carry a CRC-8 (:mod:`vatio.drivers.i2c.sensirion`): a word that
fails its CRC makes its value null with quality ``bad_crc`` (the rest of the poll stands);
when every word fails, the poll fails. A NAK or a bus error fails the poll with a
:class:`~vatio.drivers.reading.DeviceError` naming the address, which the scheduler turns
into a degraded device while its neighbours keep their schedule.

**Periodic sensors** (SCD4x, SPS30) measure on their own clock. The driver starts
measurement on the first poll (and again after the sensor stopped delivering, as after it
lost power), and each poll reports the sensor's latest measurement: a new one when it is
ready, else the last one while it is younger than one and a half sensor periods. So an
interval shorter than the sensor's period (5 s for SCD4x) reports the same measurement
twice, and a longer one always gets a fresh one. ``close()`` stops the measurement.

The SPS30's fan cleans itself every ``auto-cleaning interval`` (a week by default, kept in the
sensor); the driver reads the interval once, logs it and leaves it as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from vatio.common import clock
from vatio.drivers.i2c import bme280, sensirion
from vatio.drivers.i2c.transport import BadCrc, I2cAddress, I2cBus, I2cNak
from vatio.drivers.reading import DeviceError, DeviceTimeout, PollResult
from vatio.drivers.uart.sps30 import QUANTITIES as SPS30_QUANTITIES  # same order on I2C

log = logging.getLogger(__name__)


class WrongDevice(DeviceError):
    code = "wrong_device"
    default_hint = "check the address and the driver: another chip answers there"


class _I2cSensor:
    """Shared plumbing: the bus, the address, words with CRC, closing."""

    bus_types: ClassVar[tuple[str, ...]] = ("i2c",)
    model: ClassVar[str]

    def __init__(self, name: str, bus: I2cBus, address: int) -> None:
        self.name = name
        self.bus = bus
        self.address = address
        # a sensor's own timing (measurement, execution times): tests run a simulated clock
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        bus.attach()

    @classmethod
    def create(cls, name: str, bus: I2cBus, options: Any) -> _I2cSensor:
        return cls(name, bus, options)  # subclasses take (name, bus, options)

    def describe(self) -> str:
        return f"{self.model} at 0x{self.address:02x} on {self.bus.describe()}"

    async def _write(self, data: bytes, what: str) -> None:
        await self.bus.transfer(self.address, data, what=what)

    async def _read(self, length: int, what: str) -> bytes:
        return await self.bus.transfer(self.address, read=length, what=what)

    async def _command_read(
        self, code: int, words: int, delay: float, what: str
    ) -> list[int | None]:
        """Send a 16-bit command, wait ``delay``, read ``words`` words (None: bad CRC)."""
        await self._write(sensirion.command(code), what)
        await self._sleep(delay)
        return sensirion.words_or_none(await self._read(3 * words, what))

    def _where(self, what: str) -> str:
        return f"{self.model} at 0x{self.address:02x} on {self.bus.describe()} ({what})"

    def _result(
        self,
        ts: float,
        values: dict[str, float | None],
        what: str,
        invalid: frozenset[str] = frozenset(),
    ) -> PollResult:
        """Values with None for words that failed their CRC (or, in ``invalid``, that the
        sensor sent as NaN or infinity); all failed their CRC: the poll fails."""
        quality = {
            q: "invalid" if q in invalid else "bad_crc" for q, v in values.items() if v is None
        }
        if values and not invalid and len(quality) == len(values):
            raise BadCrc(f"{self._where(what)}: CRC mismatch in every word of the reply")
        if quality:
            log.info("%s: no valid value for %s", self._where(what), ", ".join(quality))
        return PollResult(self.name, ts, values, quality)

    async def _stop(self) -> None:
        """What a sensor needs at shutdown (periodic sensors stop measuring)."""

    async def close(self) -> None:
        try:
            await self._stop()
        except DeviceError as exc:
            log.info("%s: stopping it failed: %s", self._where("close"), exc)
        finally:
            self.bus.detach()


def _t_sensirion(word: int | None) -> float | None:
    return None if word is None else round(-45 + 175 * word / 65535, 2)


def _rh_sensirion(word: int | None) -> float | None:
    return None if word is None else round(100 * word / 65535, 2)


# ---------------------------------------------------------------------------------- BME280


class Bme280Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: I2cAddress = 0x76  # SDO to GND; 0x77 with SDO to VDDIO
    # forced: one measurement per poll, asleep in between (Bosch's weather-monitoring
    # setting, §3.5.1); normal: the sensor measures every second on its own
    mode: Literal["forced", "normal"] = "forced"
    oversampling: Literal[1, 2, 4, 8, 16] = 1  # for T, P and H alike


class Bme280Driver(_I2cSensor):
    """Entry point ``bme280``."""

    Options: ClassVar[type[BaseModel]] = Bme280Options
    model = "Bosch BME280"
    STANDBY_1000MS = 0b101  # config.t_sb for normal mode

    def __init__(self, name: str, bus: I2cBus, options: Bme280Options) -> None:
        super().__init__(name, bus, options.address)
        self.options = options
        self.calibration: bme280.Calibration | None = None  # read once per connection
        self._osrs = bme280.OVERSAMPLING[options.oversampling]

    @property
    def quantities(self) -> list[str]:
        return ["temperature_c", "humidity_pct", "pressure_hpa"]

    def _ctrl_meas(self, mode: int) -> int:
        return self._osrs << 5 | self._osrs << 2 | mode

    async def _setup(self) -> bme280.Calibration:
        chip = (await self.bus.transfer(self.address, bytes([bme280.CHIP_ID_REG]), 1, "chip id"))[0]
        if chip != bme280.CHIP_ID:
            other = (
                "a BMP280, which has no humidity sensor"
                if chip == bme280.CHIP_ID_BMP280
                else ("not a BME280")
            )
            raise WrongDevice(f"{self._where('chip id')}: chip id 0x{chip:02x} is {other}")
        tp = await self.bus.transfer(self.address, bytes([bme280.CALIB_TP]), 26, "calibration")
        h = await self.bus.transfer(self.address, bytes([bme280.CALIB_H]), 7, "calibration")
        calibration = bme280.Calibration.parse(tp, h)
        if self.options.mode == "normal":
            # ctrl_hum counts only after a write to ctrl_meas, so it goes first (§5.4.3)
            await self._write(
                bytes([bme280.CTRL_HUM, self._osrs,
                       bme280.CONFIG, self.STANDBY_1000MS << 5,
                       bme280.CTRL_MEAS, self._ctrl_meas(bme280.MODE_NORMAL)]),
                "configure",
            )  # fmt: skip
            n = self.options.oversampling  # the first measurement, before the first read
            await self._sleep(bme280.measurement_time_s(n, n, n) + 0.002)
        return calibration

    async def poll(self) -> PollResult:
        ts = clock.now()
        try:
            if self.calibration is None:
                self.calibration = await self._setup()
            if self.options.mode == "forced":
                await self._measure_forced()
            data = await self.bus.transfer(self.address, bytes([bme280.DATA]), 8, "data")
        except DeviceError:
            # unplugged or swapped: read the calibration (and configure) again next time
            self.calibration = None
            raise
        sample = bme280.compensate(bme280.RawSample.parse(data), self.calibration)
        values: dict[str, float | None] = {
            "temperature_c": sample.temperature_c,
            "humidity_pct": sample.humidity_pct,
            "pressure_hpa": sample.pressure_hpa,
        }
        quality = {q: "not_measured" for q, v in values.items() if v is None}
        if quality:
            # the reset values: the sensor restarted (power) and is asleep: configure again
            self.calibration = None
            if len(quality) == len(values):
                raise DeviceError(
                    f"{self._where('data')}: no measurement in the data registers (the "
                    "sensor restarted?)", "it is configured again at the next poll",
                )  # fmt: skip
        return PollResult(self.name, ts, values, quality)

    async def _measure_forced(self) -> None:
        await self._write(
            bytes([bme280.CTRL_HUM, self._osrs,
                   bme280.CTRL_MEAS, self._ctrl_meas(bme280.MODE_FORCED)]),
            "start measurement",
        )  # fmt: skip
        n = self.options.oversampling
        await self._sleep(bme280.measurement_time_s(n, n, n))
        for _ in range(10):
            status = await self.bus.transfer(self.address, bytes([bme280.STATUS]), 1, "status")
            if not status[0] & 0x08:  # bit 3 "measuring"
                return
            await self._sleep(0.002)
        raise DeviceTimeout(f"{self._where('status')}: the measurement did not finish")


# ------------------------------------------------------------------------------ SHT3x, SHT4x


class Sht3xOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: I2cAddress = 0x44  # ADDR to GND; 0x45 with ADDR to VDD


class Sht4xOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: I2cAddress = 0x44  # SHT40-AD1B; 0x45 (BD1B) and 0x46 (CD1B) are other parts


class _ShtDriver(_I2cSensor):
    """Single shot: write the measure command, wait its maximum time, read 2 words."""

    request: ClassVar[bytes]
    duration: ClassVar[float]

    def __init__(self, name: str, bus: I2cBus, options: Sht3xOptions | Sht4xOptions) -> None:
        super().__init__(name, bus, options.address)

    @property
    def quantities(self) -> list[str]:
        return ["temperature_c", "humidity_pct"]

    @staticmethod
    def _humidity(word: int | None) -> float | None:
        return _rh_sensirion(word)

    async def poll(self) -> PollResult:
        ts = clock.now()
        await self._write(self.request, "measure")
        await self._sleep(self.duration)
        try:
            data = await self._read(6, "read measurement")
        except I2cNak:
            # still measuring (a slow part, a cold day): once more, a little later
            await self._sleep(self.duration / 2)
            data = await self._read(6, "read measurement")
        t_word, rh_word = sensirion.words_or_none(data)
        values = {"temperature_c": _t_sensirion(t_word), "humidity_pct": self._humidity(rh_word)}
        return self._result(ts, values, "read measurement")


class Sht3xDriver(_ShtDriver):
    """Entry point ``sht3x``."""

    Options: ClassVar[type[BaseModel]] = Sht3xOptions
    model = "Sensirion SHT3x"
    request = sensirion.command(0x2400)  # single shot, high repeatability, no stretching
    duration = 0.016  # max. 15 ms


class Sht4xDriver(_ShtDriver):
    """Entry point ``sht4x``."""

    Options: ClassVar[type[BaseModel]] = Sht4xOptions
    model = "Sensirion SHT4x"
    request = bytes([0xFD])  # measure T & RH, high repeatability
    duration = 0.009  # max. 8.3 ms

    @staticmethod
    def _humidity(word: int | None) -> float | None:
        if word is None:
            return None
        return round(min(max(-6 + 125 * word / 65535, 0.0), 100.0), 2)


# --------------------------------------------------------------------- periodic: SCD4x, SPS30


class _PeriodicSensor(_I2cSensor):
    """A sensor that measures on its own clock (see the module docstring)."""

    period: ClassVar[float]  # seconds between the sensor's measurements
    start_time: ClassVar[float]  # how long after start the first measurement may take

    def __init__(
        self,
        name: str,
        bus: I2cBus,
        address: int,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(name, bus, address)
        self._monotonic = monotonic  # tests run the sensor's clock faster
        self._sleep = sleep
        self._started: float | None = None
        self._last: tuple[float, dict[str, float | None], dict[str, str]] | None = None
        self.restarts = 0

    async def _start(self) -> None:
        raise NotImplementedError

    async def _ready(self) -> bool:
        raise NotImplementedError

    async def _read_values(self) -> tuple[dict[str, float | None], str, frozenset[str]]:
        """(values, what, invalid) — a None value failed its CRC, or is in ``invalid``."""
        raise NotImplementedError

    async def poll(self) -> PollResult:
        ts = clock.now()
        try:
            return await self._poll(ts)
        except DeviceError:
            # it may have lost power meanwhile: its last measurement no longer stands in
            self._last = None
            raise

    async def _poll(self, ts: float) -> PollResult:
        if self._started is None:
            await self._start()
            self._started = self._monotonic()
            self._last = None
            self.restarts += 1
        started = self._started
        while not await self._ready():
            now = self._monotonic()
            last_at = self._last[0] if self._last else started
            if self._last is not None and now - last_at < 1.5 * self.period:
                _, values, quality = self._last  # the sensor's latest measurement still
                return PollResult(self.name, ts, dict(values), dict(quality))
            due = last_at + (self.start_time if self._last is None else self.period)
            if now > due + self.period:
                self._started = None  # it stopped measuring (lost power?): start again
                raise DeviceTimeout(
                    f"{self._where('data ready')}: no new measurement for {now - last_at:.0f} s",
                    "measurement is started again at the next poll; check the power supply",
                )
            await self._sleep(max(due - now, 0.0) + 0.1 * self.period)
        values, what, invalid = await self._read_values()
        result = self._result(ts, values, what, invalid)
        self._last = (self._monotonic(), result.values, result.quality)
        return result


class Scd4xOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: I2cAddress = 0x62  # fixed in the part


class Scd4xDriver(_PeriodicSensor):
    """Entry point ``scd4x`` (SCD40, SCD41)."""

    Options: ClassVar[type[BaseModel]] = Scd4xOptions
    model = "Sensirion SCD4x"
    period = 5.0
    start_time = 5.0
    START, READY, READ, STOP = 0x21B1, 0xE4B8, 0xEC05, 0x3F86

    def __init__(self, name: str, bus: I2cBus, options: Scd4xOptions, **clock: Any) -> None:
        super().__init__(name, bus, options.address, **clock)

    @property
    def quantities(self) -> list[str]:
        return ["co2_ppm", "temperature_c", "humidity_pct"]

    async def _start(self) -> None:
        # A sensor left measuring (agent restarted) refuses start: stop it first. In idle
        # the stop may be refused instead, which is fine.
        with contextlib.suppress(I2cNak):
            await self._write(sensirion.command(self.STOP), "stop_periodic_measurement")
        await self._sleep(0.5)
        await self._write(sensirion.command(self.START), "start_periodic_measurement")

    async def _ready(self) -> bool:
        (word,) = await self._command_read(self.READY, 1, 0.001, "get_data_ready_status")
        if word is None:
            raise BadCrc(f"{self._where('get_data_ready_status')}: CRC mismatch")
        return bool(word & 0x07FF)

    async def _read_values(self) -> tuple[dict[str, float | None], str, frozenset[str]]:
        co2, t, rh = await self._command_read(self.READ, 3, 0.001, "read_measurement")
        values = {
            "co2_ppm": None if co2 is None else float(co2),
            "temperature_c": _t_sensirion(t),
            "humidity_pct": _rh_sensirion(rh),
        }
        return values, "read_measurement", frozenset()

    async def _stop(self) -> None:
        if self._started is not None:
            self._started = None
            await self._write(sensirion.command(self.STOP), "stop_periodic_measurement")


class Sps30Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: I2cAddress = 0x69  # fixed in the part


class Sps30Driver(_PeriodicSensor):
    """Entry point ``sps30_i2c`` (the SPS30 on its I2C interface)."""

    Options: ClassVar[type[BaseModel]] = Sps30Options
    model = "Sensirion SPS30"
    period = 1.0
    start_time = 1.0
    START, STOP, READY, READ, CLEANING = 0x0010, 0x0104, 0x0202, 0x0300, 0x8004
    FLOAT_FORMAT = 0x0300  # big-endian IEEE 754 floats

    def __init__(self, name: str, bus: I2cBus, options: Sps30Options, **clock: Any) -> None:
        super().__init__(name, bus, options.address, **clock)
        self.auto_cleaning_interval_s: int | None = None

    @property
    def quantities(self) -> list[str]:
        return list(SPS30_QUANTITIES)

    async def _start(self) -> None:
        if self.auto_cleaning_interval_s is None:
            high, low = await self._command_read(
                self.CLEANING, 2, 0.005, "read auto-cleaning interval"
            )
            if high is not None and low is not None:
                self.auto_cleaning_interval_s = high << 16 | low
                log.info(
                    "%s: fan auto-cleaning every %.1f days (kept as the sensor has it)",
                    self._where("start"), self.auto_cleaning_interval_s / 86400,
                )  # fmt: skip
        await self._write(sensirion.command(self.START, self.FLOAT_FORMAT), "start measurement")
        await self._sleep(0.02)

    async def _ready(self) -> bool:
        (word,) = await self._command_read(self.READY, 1, 0.005, "read data-ready flag")
        if word is None:
            raise BadCrc(f"{self._where('read data-ready flag')}: CRC mismatch")
        return word & 0xFF == 1

    async def _read_values(self) -> tuple[dict[str, float | None], str, frozenset[str]]:
        words = await self._command_read(self.READ, 20, 0.005, "read measured values")
        values: dict[str, float | None] = {}
        invalid = set()
        for i, name in enumerate(SPS30_QUANTITIES):
            high, low = words[2 * i], words[2 * i + 1]
            if high is None or low is None:
                values[name] = None
                continue
            v = sensirion.float_from_words(high, low)
            values[name] = round(v, 3) if math.isfinite(v) else None
            if values[name] is None:
                invalid.add(name)
        return values, "read measured values", frozenset(invalid)

    async def _stop(self) -> None:
        if self._started is not None:
            self._started = None
            await self._write(sensirion.command(self.STOP), "stop measurement")

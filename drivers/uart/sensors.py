"""UART air-quality drivers: Nova SDS011, Plantower PMS5003/PMS7003/PMSA003, Winsen MH-Z19B
(the Sensirion SPS30 speaks SHDLC: :mod:`vatio.drivers.uart.sps30_uart`).

Each sensor sits alone on a ``serial`` bus. Two ways to read one:

* **query** (SDS011 ``mode: query``, Plantower ``mode: passive``, MH-Z19B always): each poll sends
  the read command and waits for the answering frame;
* **stream** (SDS011 ``mode: active``, Plantower ``mode: active``): the sensor sends a frame every
  second or so (a steady PMS7003 every 2.3 s); a poll reports the mean of the frames that
  arrived since the previous poll.

The SDS011's laser wears out (~8000 h): ``duty_cycle: true`` wakes it for each poll, waits
``warmup`` (≥ 15 s per the maker; 30 s by default), reads, and puts it back to sleep, so the
poll interval should be minutes. Checksums are always verified; bad frames and noise are
skipped and counted (:mod:`vatio.drivers.uart.frames`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from statistics import fmean
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from vatio.common import clock
from vatio.common.links import SerialLine
from vatio.drivers.reading import PollResult
from vatio.drivers.uart import mhz19, pms5003, sds011
from vatio.drivers.uart.frames import FrameScanner
from vatio.drivers.uart.link import UartLink


def _seconds(value: object) -> object:
    """Accept 30, "30s", "500ms", "2m" (the same spelling as poll intervals)."""
    if isinstance(value, str):
        v = value.strip()
        for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
            if v.endswith(suffix) and v[: -len(suffix)].replace(".", "", 1).isdigit():
                return float(v[: -len(suffix)]) * factor
    return value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0, le=600)]


class _UartSensor:
    """Shared plumbing: the port, the scanner, query and stream polls."""

    bus_types: ClassVar[tuple[str, ...]] = ("serial",)
    model: ClassVar[str]
    reply_timeout: float = 2.0

    def __init__(self, name: str, line: SerialLine, scanner: FrameScanner) -> None:
        self.name = name
        self.line = line
        self.link = UartLink(name, line, scanner)
        self._last_poll = time.monotonic()

    def describe(self) -> str:
        return f"{self.model} on {self.line.describe()}"

    @classmethod
    def create(cls, name: str, bus: SerialLine, options: Any) -> _UartSensor:
        return cls(name, bus, options)  # subclasses take (name, line, options)

    async def _query(self, request: bytes, accept: Callable[[bytes], bool]) -> bytes:
        since = time.monotonic()
        self.link.write(request)
        return await self.link.wait_frame(accept, self.reply_timeout, since)

    async def _stream(self, accept: Callable[[bytes], bool]) -> list[bytes]:
        """Frames since the last poll, or the next one if none came (a sensor sends ~1/s)."""
        since, self._last_poll = self._last_poll, time.monotonic()
        frames = [f for f in self.link.take(since) if accept(f)]
        if not frames:
            frames = [await self.link.wait_frame(accept, 2.5, since)]
        return frames

    async def close(self) -> None:
        await self.link.close()


class Sds011Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["query", "active"] = "query"
    duty_cycle: bool = False  # sleep between polls (query mode)
    warmup: Seconds = 30.0


class Sds011Driver(_UartSensor):
    """Entry point ``sds011``."""

    Options: ClassVar[type[BaseModel]] = Sds011Options
    model = "Nova SDS011"

    def __init__(self, name: str, line: SerialLine, options: Sds011Options) -> None:
        scanner = FrameScanner(bytes([sds011.HEAD]), sds011.frame_length, sds011.frame_valid)
        super().__init__(name, line, scanner)
        self.options = options

    @property
    def quantities(self) -> list[str]:
        return ["pm2_5_ugm3", "pm10_ugm3"]

    @staticmethod
    def _is_data(frame: bytes) -> bool:
        return frame[1] == sds011.DATA

    async def poll(self) -> PollResult:
        ts = clock.now()
        if await self.link.ensure_open():
            # (re)opened: put the sensor in the configured mode; in active mode it may not
            # answer commands reliably (domain.md §5.1), so do not wait for the reply
            if self.options.duty_cycle:
                self.link.write(sds011.WAKE)
            self.link.write(
                sds011.SET_QUERY_MODE if self.options.mode == "query" else sds011.SET_ACTIVE_MODE
            )
        if self.options.mode == "active":
            readings = [sds011.parse_data(f) for f in await self._stream(self._is_data)]
        else:
            if self.options.duty_cycle:
                self.link.write(sds011.WAKE)
                await asyncio.sleep(self.options.warmup)
            readings = [sds011.parse_data(await self._query(sds011.QUERY, self._is_data))]
            if self.options.duty_cycle:
                self.link.write(sds011.SLEEP)
        return PollResult(
            self.name,
            ts,
            {
                "pm2_5_ugm3": round(fmean(r.pm2_5 for r in readings), 2),
                "pm10_ugm3": round(fmean(r.pm10 for r in readings), 2),
            },
        )


class Pms5003Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["active", "passive"] = "active"
    # atmospheric: for ambient air (what AQI wants); cf1: "standard particle" (factory conditions)
    values: Literal["atmospheric", "cf1"] = "atmospheric"


PlantowerOptions = Pms5003Options

_CF1 = ("pm1_0_cf1_ugm3", "pm2_5_cf1_ugm3", "pm10_cf1_ugm3")
_COUNTS = tuple(f"particles_gt{s}um_per_dl" for s in ("0_3", "0_5", "1_0", "2_5", "5_0", "10"))


class _PlantowerDriver(_UartSensor):
    """The PMS5003 protocol family: one frame layout, one command set (pms5003.py).

    ``pm*_ugm3`` follow the ``values`` option (atmospheric by default); the CF=1 values are
    always published as ``pm*_cf1_ugm3`` too (the US EPA humidity correction for Plantower
    sensors starts from CF=1 PM2.5), and the six particle counts as ``particles_gt*_per_dl``.
    """

    Options: ClassVar[type[BaseModel]] = Pms5003Options
    # word 13's low byte is an error code (PMS7003, PMSA003); "reserved" on the PMS5003
    reports_error_code: ClassVar[bool] = False

    def __init__(self, name: str, line: SerialLine, options: Pms5003Options) -> None:
        scanner = FrameScanner(pms5003.HEADER, pms5003.frame_length, pms5003.frame_valid)
        super().__init__(name, line, scanner)
        self.options = options

    @property
    def quantities(self) -> list[str]:
        return ["pm1_0_ugm3", "pm2_5_ugm3", "pm10_ugm3", *_CF1, *_COUNTS]

    async def poll(self) -> PollResult:
        ts = clock.now()
        if await self.link.ensure_open():
            self.link.write(pms5003.WAKE)
            self.link.write(
                pms5003.SET_PASSIVE if self.options.mode == "passive" else pms5003.SET_ACTIVE
            )
        if self.options.mode == "passive":
            frames = [await self._query(pms5003.READ, lambda f: True)]
        else:
            frames = await self._stream(lambda f: True)
        readings = [pms5003.parse(f) for f in frames]
        cf1 = [(r.pm1_0_cf1, r.pm2_5_cf1, r.pm10_cf1) for r in readings]
        atm = [(r.pm1_0, r.pm2_5, r.pm10) for r in readings]
        reported = cf1 if self.options.values == "cf1" else atm
        values: dict[str, float | None] = {}
        for i, q in enumerate(("pm1_0_ugm3", "pm2_5_ugm3", "pm10_ugm3")):
            values[q] = round(fmean(v[i] for v in reported), 2)
        for i, q in enumerate(_CF1):
            values[q] = round(fmean(v[i] for v in cf1), 2)
        for i, q in enumerate(_COUNTS):
            values[q] = round(fmean(r.counts[i] for r in readings), 1)
        degraded = None
        errors = sorted({r.error_code for r in readings if r.error_code})
        if self.reports_error_code and errors:
            codes = ", ".join(f"0x{c:02X}" for c in errors)
            degraded = (
                f"the {self.model} reports error code {codes} (byte {pms5003.ERROR_OFFSET} of "
                "its frame; Plantower does not document the codes): check the fan and that the "
                "air inlet is not blocked, then power-cycle the sensor"
            )
        return PollResult(self.name, ts, values, degraded=degraded)


class Pms5003Driver(_PlantowerDriver):
    """Entry point ``pms5003``."""

    model = "Plantower PMS5003"


class Pms7003Driver(_PlantowerDriver):
    """Entry point ``pms7003``: the PMS5003 frame; byte 29 is an error code."""

    model = "Plantower PMS7003"
    reports_error_code = True


class Pmsa003Driver(_PlantowerDriver):
    """Entry point ``pmsa003``: the same frame and commands as the PMS7003."""

    model = "Plantower PMSA003"
    reports_error_code = True


class Mhz19Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Mhz19Driver(_UartSensor):
    """Entry point ``mhz19b``."""

    Options: ClassVar[type[BaseModel]] = Mhz19Options
    model = "Winsen MH-Z19B"

    def __init__(self, name: str, line: SerialLine, options: Mhz19Options | None = None) -> None:
        super().__init__(
            name, line, FrameScanner(mhz19.HEADER, mhz19.frame_length, mhz19.frame_valid)
        )

    @property
    def quantities(self) -> list[str]:
        return ["co2_ppm"]

    async def poll(self) -> PollResult:
        ts = clock.now()
        await self.link.ensure_open()
        frame = await self._query(mhz19.READ_CO2, lambda f: True)
        return PollResult(self.name, ts, {"co2_ppm": float(mhz19.parse_co2(frame))})

"""The Sensirion SPS30 on a ``serial`` bus (SHDLC, 115200 8N1): entry point ``sps30_uart``.

A config names it ``driver: sps30`` on a ``serial`` bus (or ``driver: sps30_uart``): the
``sps30`` name belongs to the I2C driver, and :func:`vatio.drivers.plugin.load_plugin_for`
picks ``<name>_uart`` for a serial bus when the plain name does not serve that bus.

What a poll does (timing and commands: :mod:`vatio.drivers.uart.sps30`):

* after the port was (re)opened: read the product type and serial number (a wrong product
  type means another device answers), start measurement in float format ("command not
  allowed in current state" there means it was already measuring: fine), write the
  configured auto-cleaning interval if any, read it back and log it, and start a fan
  cleaning if ``fan_cleaning_on_start``;
* then ``read measured values``. The sensor has a new measurement once per second; an empty
  reply means "no new values yet", so the driver asks again for up to 1.2 s, then reports
  every quantity as null with quality ``no_new_data`` (a poll interval under 1 s does that);
* a reply whose state byte has bit 7 set ("error flag in the device status register"): the
  values are published, the device status register is read, and the device is *degraded*
  with its bits in words (fan failure, laser failure, fan speed out of range);
* a reply with an error code (bits 0–6): the poll fails with the code in words; 0x43 ("not
  allowed in current state": the sensor was reset or power-cycled and is idle) makes the next
  poll start the measurement again;
* frames with a bad checksum, bad stuffing, a wrong length byte or longer than SHDLC allows
  are skipped by the scanner; a poll that gets no valid reply names the last rejected
  frame's fault and its byte offset.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from vatio.common import clock
from vatio.common.links import SerialLine
from vatio.drivers.reading import DeviceError, DeviceTimeout, GarbledReply, PollResult
from vatio.drivers.uart import shdlc, sps30
from vatio.drivers.uart.frames import FrameScanner
from vatio.drivers.uart.link import UartLink

log = logging.getLogger(__name__)

BAUDRATE = 115200


class Sps30Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # hours between automatic fan cleanings; None leaves the sensor's own (168 h by default);
    # 0 switches automatic cleaning off (not recommended by Sensirion)
    auto_cleaning_interval_h: float | None = Field(None, ge=0, le=24 * 365)
    fan_cleaning_on_start: bool = False

    @model_validator(mode="after")
    def _line_speed(self, info: ValidationInfo) -> Sps30Options:
        context = info.context or {}
        baudrate = context.get("baudrate")
        if baudrate is not None and baudrate != BAUDRATE:
            raise ValueError(
                f"the SPS30 talks at {BAUDRATE} baud (8N1), but bus '{context.get('bus')}' is "
                f"set to {baudrate}: set baudrate: {BAUDRATE} on the bus"
            )
        return self


class Sps30Refused(DeviceError):
    """The SPS30 answered with an error code in its state byte."""

    code = "refused"
    default_hint = "see the SPS30 datasheet §5.2 for the error code"


class Sps30UartDriver:
    """Entry point ``sps30_uart``."""

    bus_types: ClassVar[tuple[str, ...]] = ("serial",)
    Options: ClassVar[type[BaseModel]] = Sps30Options
    model = "Sensirion SPS30 (UART)"
    reply_timeout = 1.0  # the sensor answers within 20 ms (Sensirion's drivers wait that)
    no_data_wait = 1.2  # > the 1 s measurement interval
    no_data_step = 0.25

    def __init__(self, name: str, line: SerialLine, options: Sps30Options | None = None) -> None:
        self.name = name
        self.line = line
        self.options = options or Sps30Options()
        self.receiver = shdlc.MisoReceiver()
        self.link = UartLink(
            name,
            line,
            FrameScanner(self.receiver.header, self.receiver.length, self.receiver.valid),
        )
        self._ready = False
        self.serial_number = ""
        self.auto_cleaning_interval_s: int | None = None

    @classmethod
    def create(cls, name: str, bus: SerialLine, options: Any) -> Sps30UartDriver:
        return cls(name, bus, options)

    @property
    def quantities(self) -> list[str]:
        return list(sps30.QUANTITIES)

    def describe(self) -> str:
        text = f"{self.model} on {self.line.describe()}"
        if self.line.baudrate != BAUDRATE:
            text += f" (the SPS30 talks at {BAUDRATE} baud: set baudrate: {BAUDRATE} on the bus)"
        return text

    def _timeout_hint(self) -> str:
        hint = "check the wiring (sensor TX to adapter RX), the 5 V supply and that SEL is open"
        if self.line.baudrate != BAUDRATE:
            hint = f"set baudrate: {BAUDRATE} on the bus (the SPS30's fixed speed), then " + hint
        return hint

    async def _exchange(self, request: bytes, command: int, what: str) -> shdlc.MisoFrame:
        """Send one command and return its reply (state byte not checked here)."""
        since = time.monotonic()
        rejected = self.receiver.rejected
        self.link.write(request)

        def answers(frame: bytes) -> bool:
            return shdlc.decode_miso(frame).command == command

        try:
            frame = await self.link.wait_frame(answers, self.reply_timeout, since)
        except DeviceTimeout:
            if self.receiver.rejected > rejected and self.receiver.last_error is not None:
                raise GarbledReply(
                    f"no valid reply from the SPS30 to '{what}' on {self.line.port}; the last "
                    f"frame was rejected: {self.receiver.last_error}",
                    self._timeout_hint(),
                ) from None
            raise DeviceTimeout(
                f"the SPS30 on {self.line.port} did not answer '{what}' within "
                f"{self.reply_timeout:g} s",
                self._timeout_hint(),
            ) from None
        return shdlc.decode_miso(frame)

    async def _checked(
        self, request: bytes, command: int, what: str, allowed: tuple[int, ...] = ()
    ) -> shdlc.MisoFrame:
        reply = await self._exchange(request, command, what)
        if reply.error_code and reply.error_code not in allowed:
            raise Sps30Refused(f"the SPS30 refused '{what}': {reply.describe_state()}")
        return reply

    async def _setup(self) -> None:
        info = await self._checked(
            sps30.device_information(sps30.INFO_PRODUCT_TYPE),
            sps30.DEVICE_INFORMATION,
            "device information (product type)",
        )
        product = sps30.parse_string(info.data)
        if product != sps30.PRODUCT_TYPE:
            raise DeviceError(
                f"the device on {self.line.port} reports product type '{product}', an SPS30 "
                f"reports '{sps30.PRODUCT_TYPE}'",
                "check that the port is the SPS30's (ls -l /dev/serial/by-id/)",
            )
        serial = await self._checked(
            sps30.device_information(sps30.INFO_SERIAL_NUMBER),
            sps30.DEVICE_INFORMATION,
            "device information (serial number)",
        )
        self.serial_number = sps30.parse_string(serial.data)
        # 0x43 here: already measuring (the agent restarted, the sensor did not)
        await self._checked(
            sps30.start_measurement(), sps30.START_MEASUREMENT, "start measurement", allowed=(0x43,)
        )
        hours = self.options.auto_cleaning_interval_h
        if hours is not None:
            await self._checked(
                sps30.write_auto_cleaning_interval(round(hours * 3600)),
                sps30.AUTO_CLEANING_INTERVAL,
                "write auto-cleaning interval",
            )
        reply = await self._checked(
            sps30.read_auto_cleaning_interval(),
            sps30.AUTO_CLEANING_INTERVAL,
            "read auto-cleaning interval",
        )
        self.auto_cleaning_interval_s = sps30.parse_interval(reply.data)
        if self.options.fan_cleaning_on_start:
            await self._checked(
                sps30.start_fan_cleaning(), sps30.START_FAN_CLEANING, "start fan cleaning"
            )
        log.info(
            "sensor '%s': SPS30 serial %s measuring; fan cleaning every %.0f h",
            self.name,
            self.serial_number,
            self.auto_cleaning_interval_s / 3600,
        )
        self._ready = True

    async def poll(self) -> PollResult:
        ts = clock.now()
        if await self.link.ensure_open():
            self._ready = False
        if not self._ready:
            await self._setup()
        deadline = time.monotonic() + self.no_data_wait
        while True:
            reply = await self._exchange(
                sps30.read_measured_values(), sps30.READ_MEASURED_VALUES, "read measured values"
            )
            if reply.error_code:
                if reply.error_code == 0x43:
                    self._ready = False  # idle after a reset: start measuring again next poll
                raise Sps30Refused(
                    f"the SPS30 refused 'read measured values': {reply.describe_state()}",
                    "the driver starts the measurement again at the next poll; if this "
                    "repeats, power-cycle the sensor",
                )
            try:
                measurement = sps30.parse_measured_values(reply.data)
            except shdlc.ShdlcError as exc:
                raise GarbledReply(f"the SPS30's measured values are unusable: {exc}") from None
            if measurement is not None or time.monotonic() + self.no_data_step > deadline:
                break
            await asyncio.sleep(self.no_data_step)
        if measurement is None:
            return PollResult(
                self.name,
                ts,
                dict.fromkeys(sps30.QUANTITIES),
                dict.fromkeys(sps30.QUANTITIES, "no_new_data"),
            )
        values: dict[str, float | None] = {}
        quality: dict[str, str] = {}
        for q, v in measurement.values.items():
            if math.isfinite(v):
                values[q] = round(v, 3)
            else:
                values[q], quality[q] = None, "invalid"
        degraded = await self._status_reason() if reply.status_flag else None
        return PollResult(self.name, ts, values, quality, degraded=degraded)

    async def _status_reason(self) -> str:
        """Why the state byte's bit 7 is set, from the device status register."""
        try:
            reply = await self._checked(
                sps30.read_status_register(),
                sps30.READ_STATUS_REGISTER,
                "read device status register",
            )
            register = sps30.parse_status_register(reply.data)
        except (DeviceError, shdlc.ShdlcError) as exc:
            return f"the SPS30 flags a device error, and its status register cannot be read: {exc}"
        words = sps30.describe_status(register) or f"unknown bits 0x{register:08X}"
        return f"the SPS30 reports: {words} (device status register 0x{register:08X})"

    async def close(self) -> None:
        await self.link.close()

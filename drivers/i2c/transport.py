"""An I2C bus as the drivers see it: a byte transport, and the one owner that serialises it.

The seam is :class:`I2cTransport`: write bytes to a 7-bit address, read ``n`` bytes from it,
or write then read with a repeated start. Two implementations exist: :class:`Smbus2Transport`
on a kernel adapter (``/dev/i2c-1``) through smbus2's ``i2c_rdwr`` (plain I2C messages, not
SMBus block transfers, which cap at 32 bytes and add a length byte the Sensirion parts do not
speak), and ``vatio.simulators.i2c_sensors.SimulatedI2cBus``, which answers with the sensors'
real bytes for tests. The calls block (an ioctl), so :class:`I2cBus` runs them on a worker
thread, one at a time behind an asyncio lock: every device on a bus shares one
:class:`I2cBus`, and a sensor's measurement time is awaited *between* its transactions, so
a neighbour can use the bus meanwhile.

How a failure reaches the scheduler: the kernel reports a NAK as ``OSError`` with ``ENXIO``
or ``EREMOTEIO`` (which one depends on the adapter driver), an unplugged sensor is a NAK too,
and a missing adapter fails ``open`` with ``ENOENT``. Each becomes a
:class:`~vatio.drivers.reading.DeviceError` naming the adapter, the address and the likely
fix; a failed open is retried with a growing pause, so a bus that appears later (I2C enabled,
module loaded) comes back by itself. smbus2 is imported only when a bus is opened.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable
from typing import Annotated, Protocol

from pydantic import BeforeValidator, Field

from vatio.common.links import I2cLine
from vatio.drivers.reading import BusUnavailable, DeviceError

log = logging.getLogger(__name__)

NAK_ERRNOS = (errno.ENXIO, errno.EREMOTEIO)


class I2cTransport(Protocol):
    """Blocking byte access to the devices on one I2C bus."""

    def write(self, address: int, data: bytes) -> None: ...

    def read(self, address: int, length: int) -> bytes: ...

    def write_read(self, address: int, data: bytes, length: int) -> bytes:
        """Write ``data``, then (repeated start) read ``length`` bytes: a register read."""
        ...

    def close(self) -> None: ...


class Smbus2Transport:
    """:class:`I2cTransport` on a Linux i2c-dev adapter, through smbus2."""

    def __init__(self, device: str) -> None:
        from smbus2 import SMBus  # only here: an agent without an I2C bus never loads it

        self.device = device
        self._bus = SMBus(device)

    def write(self, address: int, data: bytes) -> None:
        from smbus2 import i2c_msg

        self._bus.i2c_rdwr(i2c_msg.write(address, data))

    def read(self, address: int, length: int) -> bytes:
        from smbus2 import i2c_msg

        msg = i2c_msg.read(address, length)
        self._bus.i2c_rdwr(msg)
        return bytes(msg)

    def write_read(self, address: int, data: bytes, length: int) -> bytes:
        from smbus2 import i2c_msg

        msg = i2c_msg.read(address, length)
        self._bus.i2c_rdwr(i2c_msg.write(address, data), msg)
        return bytes(msg)

    def close(self) -> None:
        self._bus.close()


TransportOpener = Callable[[str], I2cTransport]


class I2cNak(DeviceError):
    """No acknowledge from the address: the sensor is unplugged, on another address, or
    busy (a Sensirion sensor NAKs a read while it is still measuring)."""

    code = "nak"
    default_hint = (
        "check that the sensor is plugged in and powered, its address (i2cdetect -y 1 lists "
        "the answering ones) and the SDA/SCL wiring"
    )


class I2cBusError(DeviceError):
    """The adapter reported another error (timeout, arbitration lost, I/O error)."""

    code = "bus_error"
    default_hint = (
        "check the wiring and pull-ups (long cables need a lower bus speed), and that no "
        "other program drives the bus"
    )


class BadCrc(DeviceError):
    """A Sensirion data word whose CRC-8 does not match: the bytes were spoiled on the way."""

    code = "bad_crc"
    default_hint = "noise on the bus: shorten the cable, check the pull-ups and the ground wire"


def _address(value: object) -> object:
    """Accept 0x76 (YAML reads hex as an int) and the string "0x76"; say what is wrong."""
    if isinstance(value, str):
        try:
            value = int(value.strip(), 0)
        except ValueError:
            raise ValueError(
                f"'{value}' is not an I2C address: write it like 0x44 (i2cdetect -y 1 shows "
                "the addresses that answer)"
            ) from None
    if isinstance(value, int) and not isinstance(value, bool) and not 0x03 <= value <= 0x77:
        raise ValueError(
            f"0x{value:02x} ({value}) is not a 7-bit I2C device address: use 0x03–0x77, as "
            "i2cdetect -y 1 shows it (an 8-bit address from a datasheet is twice the 7-bit one)"
        )
    return value


# 0x00–0x02 and 0x78–0x7F are reserved by the I2C specification (general call, 10-bit …)
I2cAddress = Annotated[int, BeforeValidator(_address), Field(ge=0x03, le=0x77)]


class I2cBus:
    """The one owner of an I2C bus: opens it on first use, serialises every transaction,
    and turns the kernel's errors into :class:`DeviceError` s that name the place."""

    BACKOFF_MAX = 30.0

    def __init__(self, name: str, line: I2cLine, opener: TransportOpener | None = None) -> None:
        self.name = name
        self.line = line
        self._opener: TransportOpener = opener or Smbus2Transport
        self._transport: I2cTransport | None = None
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self._backoff = 0.0
        self._users = 0
        self.requests = 0  # transactions attempted
        self.failures = 0

    def describe(self) -> str:
        return self.line.describe()

    def attach(self) -> None:
        """A driver starts using the bus (it calls :meth:`detach` when it closes)."""
        self._users += 1

    def detach(self) -> None:
        self._users -= 1
        if self._users <= 0:
            self.close()

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            try:
                transport.close()
            except OSError as exc:
                log.warning("I2C bus %s: closing failed: %s", self.line.device, exc)

    def _open(self) -> I2cTransport:
        if self._transport is not None:
            return self._transport
        now = time.monotonic()
        if now < self._retry_at:
            raise BusUnavailable(
                f"I2C bus {self.line.device} is unavailable; next try in "
                f"{self._retry_at - now:.0f} s",
                self._open_hint(None),
            )
        try:
            self._transport = self._opener(self.line.device)
        except OSError as exc:
            self._backoff = min(max(self._backoff * 2, 1.0), self.BACKOFF_MAX)
            self._retry_at = time.monotonic() + self._backoff
            raise BusUnavailable(
                f"cannot open I2C bus {self.line.device}: {exc.strerror or exc}",
                self._open_hint(exc.errno),
            ) from None
        self._backoff = 0.0
        return self._transport

    def _open_hint(self, code: int | None) -> str:
        if code == errno.EACCES:
            return "add the agent's user to the i2c group (sudo usermod -aG i2c USER)"
        return (
            f"check that {self.line.device} exists: enable I2C (sudo raspi-config nonint "
            "do_i2c 0, or dtparam=i2c_arm=on in config.txt) and reboot"
        )

    async def transfer(
        self, address: int, write: bytes | None = None, read: int = 0, what: str = ""
    ) -> bytes:
        """One transaction: write ``write`` (if any), then read ``read`` bytes (if any).
        ``what`` names it in errors ("read_measurement")."""
        async with self._lock:
            transport = self._open()
            self.requests += 1
            try:
                if write is not None and read:
                    return await asyncio.to_thread(transport.write_read, address, write, read)
                if read:
                    return await asyncio.to_thread(transport.read, address, read)
                await asyncio.to_thread(transport.write, address, write or b"")
                return b""
            except OSError as exc:
                self.failures += 1
                raise self._explain(exc, address, what) from None

    def _explain(self, exc: OSError, address: int, what: str) -> DeviceError:
        where = f"address 0x{address:02x} on {self.line.device}" + (f" ({what})" if what else "")
        if exc.errno in NAK_ERRNOS:
            return I2cNak(f"no acknowledge from {where}")
        if exc.errno in (errno.ENODEV, errno.EBADF):
            # the adapter itself went away (USB adapter unplugged): reopen next time
            self.close()
            return BusUnavailable(f"I2C bus {self.line.device} went away ({exc.strerror})")
        return I2cBusError(f"I2C error at {where}: {exc.strerror or exc}")

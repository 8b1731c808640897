"""What a driver hands to the agent: the readings of one poll of one device.

DESIGN.md draws a stream of ``Reading(device, quantity, value, ts, quality)``; one poll is a
batch of them. The batch is kept as one object with a values mapping, because at 500 meters
× 40 quantities a per-value object would cost more CPU than the Modbus reads themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class PollResult:
    """Readings of one poll: ``values[q]`` is None when ``quality[q]`` says why."""

    device: str
    ts: float  # wall-clock seconds (UTC epoch) when the poll started
    values: dict[str, float | None]
    quality: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # set when the whole poll failed (device silent, bus down)
    # set when the poll read values but the device keeps refusing others (a driver's word
    # for "answers, but part of it is never read"): the device is degraded, not online
    degraded: str | None = None
    # steady time (vatio.common.clock.monotonic) when the poll started, set by the scheduler: it
    # ties ``ts`` to a clock that never steps, for readings taken before the clock was trusted
    mono: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class DeviceError(Exception):
    """A device or its bus failed a poll. ``code`` is short and stable (used as quality)."""

    code = "error"
    default_hint = "check wiring, unit id and that the device is powered"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint or self.default_hint


class DeviceTimeout(DeviceError):
    code = "timeout"
    default_hint = (
        "check the wiring (A/B), the unit id, the baud rate and parity, and that the device "
        "is powered"
    )


class DeviceExceptionReply(DeviceError):
    """The device answered with a Modbus exception (illegal address, busy …)."""

    code = "exception"
    default_hint = "check that the profile matches the device model"

    def __init__(self, message: str, exception_code: int, hint: str = "") -> None:
        super().__init__(message, hint)
        self.exception_code = exception_code


class BusUnavailable(DeviceError):
    """The transport itself is down: connection refused, serial port missing."""

    code = "unavailable"
    default_hint = "check the connection to the bus"


class BadReply(DeviceTimeout):
    """An answer came, but not a valid one to the request: wrong function code, unit id,
    byte count or length, bytes after the frame. No value of it is ever decoded.

    A subclass of :class:`DeviceTimeout` because, for the poll, it is the same thing: this
    request got no usable answer (a driver that keeps a partial poll on a timeout keeps it
    here too).
    """

    code = "bad_reply"
    default_hint = (
        "the reply does not match the request: check the unit id, that the profile matches "
        "the device, and that no other device or master answers on this line or gateway"
    )


class GarbledReply(BadReply):
    """Bytes arrived but never formed a valid frame (broken CRC, noise, cut short): on a
    serial line the usual cause is a baud rate or parity that differs from the device's."""

    code = "garbled"
    default_hint = (
        "check baud rate and parity (and stop bits) against the device's settings, then the "
        "wiring (A/B swapped, termination, shield)"
    )

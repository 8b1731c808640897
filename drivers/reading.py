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
    # steady time (drivers.clock.monotonic) when the poll started, set by the scheduler: it
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

"""Where a bus is: a TCP endpoint, a serial line or an I2C adapter. Plain settings, nothing
opened yet — except :func:`explain_serial_error`, which opens a port that failed to say why."""

from __future__ import annotations

import errno
import gc
import termios
from dataclasses import dataclass

import serial


@dataclass(frozen=True)
class TcpEndpoint:
    host: str
    port: int
    max_connections: int = 1
    rtu_framing: bool = False  # RTU frames (with CRC) over TCP, as cheap gateways speak

    def describe(self) -> str:
        return f"{self.host}:{self.port}" + (" (RTU over TCP)" if self.rtu_framing else "")


@dataclass(frozen=True)
class SerialLine:
    port: str
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    def describe(self) -> str:
        return f"{self.port} {self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"

    @property
    def bits_per_char(self) -> int:
        """Start bit + data + parity + stop bits."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits


@dataclass(frozen=True)
class I2cLine:
    """An I2C adapter of the kernel (``/dev/i2c-1`` on a Raspberry Pi's GPIO header)."""

    device: str

    def describe(self) -> str:
        return self.device


def explain_serial_error(line: SerialLine, error: str = "") -> tuple[str, str]:
    """Why ``line`` cannot be opened, naming the port and the setting: (message, hint).

    Called only after an open failed (pymodbus hides the reason, and ``termios.error`` is
    not even an OSError). It opens the port at plain 9600 8N1, then applies each configured
    setting in turn, so the one the port refuses is named, e.g. "serial port /dev/ttyUSB0
    refuses parity E". ``error`` is the failure's text: callers pass text, not the exception,
    because pymodbus's half-opened port (still open and locked) lives in that exception's
    traceback; it is closed when the traceback is collected, here, before probing.
    """
    gc.collect()
    port = line.port
    try:
        probe = serial.Serial(port, exclusive=True)
    except (OSError, termios.error, ValueError) as exc:
        code = getattr(exc, "errno", None)
        if code == errno.ENOENT:
            return (
                f"serial port {port} does not exist",
                "check that the port exists (ls /dev/serial/by-id/) and that the adapter is "
                "plugged in",
            )
        if code == errno.EACCES:
            return (
                f"no permission to open serial port {port}",
                "add the agent's user to the dialout group (sudo usermod -aG dialout USER)",
            )
        return (
            f"cannot open serial port {port}: {error or exc}",
            "check the port name, that the adapter is plugged in and that no other program "
            "holds the port",
        )
    try:
        for setting, value in (
            ("baudrate", line.baudrate),
            ("bytesize", line.bytesize),
            ("parity", line.parity),
            ("stopbits", line.stopbits),
        ):
            try:
                setattr(probe, setting, value)
            except (OSError, termios.error, ValueError) as exc:
                return (
                    f"serial port {port} refuses {setting} {value} ({exc})",
                    f"set {setting} in the bus's config to one this adapter supports and the "
                    "devices use (baudrate 1200–115200, parity N/E/O, stopbits 1/2)",
                )
    finally:
        probe.close()
    return (
        f"cannot open serial port {port} ({line.describe()})" + (f": {error}" if error else ""),
        "check that no other program holds the port and that the adapter works",
    )

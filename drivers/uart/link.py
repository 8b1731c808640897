"""One UART sensor's serial port: opened on demand, read in the background, reopened after
errors, with every frame checked by a :class:`~vatio.drivers.uart.frames.FrameScanner`.

A sensor unplugged mid-run shows up as a read error or as silence: the next poll fails with a
clear message (the scheduler marks the device degraded), and a later poll reopens the port,
so the sensor comes back by itself when it is plugged in again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import termios
import time
from collections import deque

import serial
import serial_asyncio_fast

from vatio.common.links import SerialLine, explain_serial_error
from vatio.drivers.reading import BusUnavailable, DeviceTimeout
from vatio.drivers.uart.frames import FrameScanner

log = logging.getLogger(__name__)


class UartLink:
    BACKOFF_MAX = 30.0

    def __init__(self, device: str, line: SerialLine, scanner: FrameScanner) -> None:
        self.device = device
        self.line = line
        self.scanner = scanner
        self.frames: deque[tuple[float, bytes]] = deque(maxlen=256)  # (monotonic time, frame)
        self._arrived = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._backoff = 0.0
        self._reported_bad = 0
        self.opened = 0  # how many times the port was (re)opened

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def ensure_open(self) -> bool:
        """Open the port if needed; True when it was (re)opened now."""
        if self._writer is not None:
            return False
        now = time.monotonic()
        if now < self._retry_at:
            raise BusUnavailable(
                f"serial port {self.line.port} is unavailable; next try in "
                f"{self._retry_at - now:.0f} s",
                "check that the sensor is plugged in and no other program uses the port",
            )
        error = ""
        try:
            reader, writer = await serial_asyncio_fast.open_serial_connection(
                url=self.line.port,
                baudrate=self.line.baudrate,
                parity=self.line.parity,
                stopbits=self.line.stopbits,
                bytesize=self.line.bytesize,
            )
        except (OSError, serial.SerialException, termios.error, ValueError) as exc:
            # termios.error (a port refusing a setting) is not an OSError: caught by name.
            # Text only, explained outside this block, once the exception (and the
            # half-opened port in its traceback) is gone: see explain_serial_error.
            error = str(exc) or type(exc).__name__
        if error:
            self._backoff = min(max(self._backoff * 2, 1.0), self.BACKOFF_MAX)
            self._retry_at = time.monotonic() + self._backoff
            reason, hint = explain_serial_error(self.line, error)
            raise BusUnavailable(reason, hint)
        self._backoff = 0.0
        self._writer = writer
        self.opened += 1
        self._reader_task = asyncio.create_task(self._read_loop(reader), name=f"uart:{self.device}")
        return True

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while chunk := await reader.read(512):
                now = time.monotonic()
                for frame in self.scanner.feed(chunk):
                    self.frames.append((now, frame))
                    self._arrived.set()
                self._report_noise()
        except (OSError, serial.SerialException) as exc:
            log.warning("sensor '%s': serial port %s failed: %s", self.device, self.line.port, exc)
        finally:
            await self._drop()

    def _report_noise(self) -> None:
        bad = self.scanner.stats.bad_frames
        if bad >= self._reported_bad + 10:
            self._reported_bad = bad
            log.warning(
                "sensor '%s' on %s: %d bad frames and %d noise bytes so far (check wiring, "
                "baud rate %d and parity)", self.device, self.line.port, bad,
                self.scanner.stats.noise_bytes, self.line.baudrate,
            )  # fmt: skip

    async def _drop(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def write(self, data: bytes) -> None:
        if self._writer is None:
            raise BusUnavailable(f"serial port {self.line.port} is closed")
        self._writer.write(data)

    def take(self, since: float) -> list[bytes]:
        """Frames that arrived after monotonic time ``since``."""
        return [f for t, f in self.frames if t > since]

    async def wait_frame(self, accept: object, timeout: float, since: float) -> bytes:
        """The first frame after ``since`` for which ``accept(frame)`` is true."""
        deadline = time.monotonic() + timeout
        check = accept if callable(accept) else (lambda f: True)
        while True:
            for t, f in self.frames:
                if t > since and check(f):
                    return f
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._writer is None:
                raise DeviceTimeout(
                    f"no valid frame from the sensor on {self.line.port} within {timeout:g} s",
                    "check the wiring (sensor TX to adapter RX), power and baud rate",
                )
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        await self._drop()

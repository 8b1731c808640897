"""Modbus transports: one object per bus, owning its pymodbus client(s) and its timing.

A bus is what one request at a time travels on: a serial line (RS-485), or a TCP endpoint
(a meter or an RS-485 gateway). The transport

* keeps one pymodbus async client per connection (pymodbus allows one request in flight per
  client, stack-notes §2.2) and lends them to devices, ``max_connections`` at most;
* on a serial line, keeps the inter-frame silence: t3.5 at the line's baud rate, or the
  device's own minimum (Eastron wants 60 ms), whichever is longer. The event loop's timers
  wake up to ~1 ms late (epoll counts in milliseconds), which at 38400 baud is a tenth of a
  transaction: the wait sleeps on the loop until :data:`SPIN_S` before the end and spins
  the rest (:func:`wait_until`), a bounded CPU cost measured by bench/rtu (issue 18);
* reconnects with exponential backoff instead of pymodbus's own reconnect task, so a dead
  gateway costs one failed connect per backoff step, not one per read;
* checks every reply against its request (:mod:`vatio.drivers.modbus.replycheck`): a wrong one is a
  :class:`~vatio.drivers.reading.BadReply`, bytes that never form a frame a
  :class:`~vatio.drivers.reading.GarbledReply`, and nothing of either is decoded;
* turns pymodbus results into :mod:`vatio.drivers.reading` errors with the device named; a port
  that cannot be opened or refuses a setting is a located
  :class:`~vatio.drivers.reading.BusUnavailable`, never an exception out of the bus.
"""

from __future__ import annotations

import asyncio
import logging
import termios
import time
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from vatio.common.links import SerialLine, TcpEndpoint, explain_serial_error
from vatio.drivers.modbus.profile import RegisterType
from vatio.drivers.modbus.replycheck import ReplyGuard, ReplyRejected
from vatio.drivers.reading import (
    BadReply,
    BusUnavailable,
    DeviceExceptionReply,
    DeviceTimeout,
    GarbledReply,
)

log = logging.getLogger(__name__)

# pymodbus logs every timeout at ERROR, with hex dumps of the last frames (stack-notes §2.5.6).
# The agent reports failures itself, once per state change, so keep pymodbus quiet.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


EXCEPTION_HINTS = {
    1: "the device does not support this read: check register_type in the profile",
    2: "the device has no such registers: check that the profile matches the model",
    4: "no device answers to this unit id here (or it failed): check the unit id",
    10: "the gateway has no path to this unit: check the gateway's serial settings",
    11: "the gateway got no answer from this unit: check wiring, unit id and baud rate",
}


def char_time(baudrate: int, bits_per_char: int = 11) -> float:
    """Seconds one character takes on the wire (11 bits: start, 8 data, parity or 2nd stop)."""
    return bits_per_char / baudrate


def t35(baudrate: int) -> float:
    """Modbus RTU inter-frame silence; fixed 1.75 ms above 19200 baud (Modbus serial v1.02)."""
    return 0.00175 if baudrate > 19200 else 3.5 * char_time(baudrate)


def read_wire_time(count: int, baudrate: int, bits_per_char: int = 11) -> float:
    """Bus time of an RTU read of ``count`` registers: request, t3.5, reply, t3.5.

    ``bits_per_char`` is 11 for the Modbus serial character (8 data bits with parity or a
    second stop bit); an 8N1 line really sends 10, so 11 errs on the safe side.
    """
    request_bytes = 8
    reply_bytes = 5 + 2 * count
    return (request_bytes + reply_bytes) * char_time(baudrate, bits_per_char) + 2 * t35(baudrate)


Client = AsyncModbusTcpClient | AsyncModbusSerialClient


@dataclass
class _Connection:
    """One pymodbus client and its reconnect backoff."""

    client: Client
    guard: ReplyGuard = field(default_factory=lambda: ReplyGuard(rtu=False))
    backoff: float = 0.0  # seconds to wait after the last failed connect
    retry_at: float = 0.0  # monotonic time of the next connect attempt


# the last stretch of a silence that is spun instead of slept: epoll's millisecond rounding
# plus a wake-up, so the loop's timer rarely ends after the silence does
SPIN_S = 0.0012


async def wait_until(deadline: float, spin: float = SPIN_S) -> None:
    """Return at ``deadline`` (time.monotonic()), not up to a millisecond after it: sleep on
    the event loop until ``spin`` before it, then spin (at most ``spin`` plus the loop's
    lateness, which a timer that wakes late leaves nothing of). ``spin=0``: sleep only."""
    coarse = deadline - time.monotonic() - spin
    if coarse > 0:
        await asyncio.sleep(coarse)
    while time.monotonic() < deadline:
        pass


class ModbusTransport:
    """Requests to the devices of one bus, with the bus's concurrency and timing rules."""

    spin = SPIN_S  # bench/rtu sets 0 to measure the loop's own timers

    BACKOFF_START = 0.5
    BACKOFF_MAX = 30.0

    def __init__(
        self,
        name: str,
        link: TcpEndpoint | SerialLine,
        *,
        timeout: float,
        retries: int,
        keep_open_on_silence: bool = False,
    ) -> None:
        """``keep_open_on_silence``: never drop a TCP link because units stay silent
        (pymodbus closes it after ``retries + 3`` silences in a row; a scan of empty unit
        ids would otherwise reconnect every few probes)."""
        self.keep_open_on_silence = keep_open_on_silence
        self.name = name
        self.link = link
        self.timeout = timeout
        self.retries = retries
        self.is_serial = isinstance(link, SerialLine)
        # clients are made on first use: pymodbus needs a running event loop to build one
        self._size = 1 if isinstance(link, SerialLine) else link.max_connections
        self._connections: list[_Connection] = []
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self._frame_gap = t35(link.baudrate) if isinstance(link, SerialLine) else 0.0
        self._quiet_until = 0.0  # monotonic time before which the serial line must stay silent
        self._last_end = 0.0
        self._late_guard = 0.0  # extra silence after a timeout (see read)
        self.requests = 0  # transactions attempted, for `check` and the benchmarks

    def describe(self) -> str:
        return self.link.describe()

    def _make_connection(self) -> _Connection:
        guard = ReplyGuard(
            rtu=self.is_serial or (isinstance(self.link, TcpEndpoint) and self.link.rtu_framing),
            on_receive=self._on_receive if self.is_serial else None,
        )
        client = self._make_client(guard)
        guard.attach(client)
        if self.keep_open_on_silence:
            client.set_max_no_responses(1 << 30)
        return _Connection(client, guard)

    def _ensure_connections(self) -> None:
        if not self._connections:
            self._connections = [self._make_connection() for _ in range(self._size)]
            for c in self._connections:
                self._idle.put_nowait(c)

    async def connect(self) -> None:
        """Open the bus now (else the first read does); raises :class:`BusUnavailable`."""
        self._ensure_connections()
        conn = await self._idle.get()
        try:
            await self._ensure_connected(conn)
        finally:
            self._idle.put_nowait(conn)

    def _make_client(self, guard: ReplyGuard) -> Client:
        # reconnect_delay=0 turns pymodbus's background reconnect off: _ensure_connected owns it
        if isinstance(self.link, SerialLine):
            return AsyncModbusSerialClient(
                self.link.port,
                baudrate=self.link.baudrate,
                parity=self.link.parity,
                stopbits=self.link.stopbits,
                bytesize=self.link.bytesize,
                timeout=self.timeout,
                retries=self.retries,
                reconnect_delay=0,
                trace_packet=guard,
            )
        return AsyncModbusTcpClient(
            self.link.host,
            port=self.link.port,
            framer=FramerType.RTU if self.link.rtu_framing else FramerType.SOCKET,
            timeout=self.timeout,
            retries=self.retries,
            reconnect_delay=0,
            trace_packet=guard,
        )

    def _on_receive(self) -> None:
        # the line is silent from the moment the reply's last byte arrived, not from when
        # pymodbus finished decoding it: count t3.5 from here
        self._last_end = time.monotonic()

    async def _ensure_connected(self, conn: _Connection) -> None:
        if conn.client.connected:
            return
        now = time.monotonic()
        if now < conn.retry_at:
            raise BusUnavailable(
                f"bus '{self.name}' ({self.describe()}) is down; next reconnect in "
                f"{conn.retry_at - now:.0f} s"
            )
        error = ""
        try:
            ok = await asyncio.wait_for(conn.client.connect(), self.timeout + 1.0)
        except (TimeoutError, OSError, ModbusException, termios.error, ValueError) as exc:
            # termios.error is not an OSError: a port that refuses a setting (a pty and
            # parity E) raises it straight out of pymodbus's connect
            ok, error = False, str(exc)  # text only: see explain_serial_error
        if ok:
            conn.backoff = conn.retry_at = 0.0
            return
        conn.backoff = min(max(conn.backoff * 2, self.BACKOFF_START), self.BACKOFF_MAX)
        conn.retry_at = time.monotonic() + conn.backoff
        if isinstance(self.link, SerialLine):
            # pymodbus swallows the reason of a failed open: find it, and which setting
            reason, hint = explain_serial_error(self.link, error)
            raise BusUnavailable(
                f"cannot connect to bus '{self.name}' ({self.describe()}): {reason}", hint
            )
        hint = "check the address, port and network, and that the device accepts Modbus/TCP"
        raise BusUnavailable(f"cannot connect to bus '{self.name}' ({self.describe()})", hint)

    async def read(
        self,
        register_type: RegisterType,
        start: int,
        count: int,
        unit: int,
        min_gap: float = 0.0,
        timeout: float | None = None,
    ) -> list[int]:
        """Read ``count`` registers from ``unit``; raises a :class:`DeviceError` subclass.

        ``timeout`` replaces the bus's own for this read (``vatio scan`` sizes it per read).
        """
        self._ensure_connections()
        conn = await self._idle.get()
        client = conn.client
        guard = conn.guard
        wait_s = self.timeout if timeout is None else timeout
        what = f"{register_type.value} registers {start}..{start + count - 1}"
        try:
            await self._ensure_connected(conn)
            # pymodbus reads its per-request timeout from here on every attempt
            client.ctx.comm_params.timeout_connect = wait_s
            if self.is_serial:
                # silence after the last frame: the line's t3.5, the last device's own minimum
                # (in _quiet_until) and this device's minimum, whichever ends last
                await wait_until(max(self._quiet_until, self._last_end + min_gap), self.spin)
            self.requests += 1
            started = time.monotonic()
            try:
                if register_type is RegisterType.INPUT:
                    rr = await client.read_input_registers(start, count=count, device_id=unit)
                else:
                    rr = await client.read_holding_registers(start, count=count, device_id=unit)
            except ReplyRejected as exc:
                if exc.garbled:
                    raise GarbledReply(f"replies are garbled reading {what}: {exc}") from None
                raise BadReply(f"bad reply reading {what}: {exc}") from None
            except ConnectionException as exc:
                raise BusUnavailable(f"bus '{self.name}' ({self.describe()}) lost: {exc}") from None
            except ModbusIOException:
                if self.is_serial:
                    # a late reply may still be on its way: keep the line quiet a little
                    # longer, so it lands (and is discarded) before the next request instead
                    # of being taken for the next device's answer
                    self._late_guard = 0.5 * wait_s
                retries = f" after {self.retries} retries" if self.retries else ""
                problem = guard.silence_problem()
                if problem and guard.rtu:
                    raise GarbledReply(
                        f"replies are garbled: {guard.received} bytes arrived reading {what} "
                        f"but no valid frame ({problem}){retries}"
                    ) from None
                if problem:
                    raise BadReply(f"bad reply reading {what}: {problem}{retries}") from None
                raise DeviceTimeout(f"no answer within {wait_s:g} s{retries}") from None
            except ModbusException as exc:
                raise DeviceTimeout(f"bad or no answer: {exc}") from None
            finally:
                if self.is_serial:
                    # a reply received sets _last_end in _on_receive; silence or an error
                    # counts from now
                    if self._last_end < started:
                        self._last_end = time.monotonic()
                    gap = max(self._frame_gap, min_gap, self._late_guard)
                    self._quiet_until = self._last_end + gap
                    self._late_guard = 0.0
            if rr.isError():
                code = int(getattr(rr, "exception_code", 0))
                name = EXCEPTION_NAMES.get(code, "unknown exception")
                raise DeviceExceptionReply(
                    f"Modbus exception {code} ({name}) reading {register_type.value} "
                    f"registers {start}..{start + count - 1}",
                    code,
                    EXCEPTION_HINTS.get(code, ""),
                )
            # the guard already held the bytes to the request; the decoded reply is checked
            # again because a wrong value published is worse than a poll lost
            fc = 4 if register_type is RegisterType.INPUT else 3
            registers = list(rr.registers)
            if rr.function_code != fc or len(registers) != count or (unit and rr.dev_id != unit):
                raise BadReply(
                    f"bad reply reading {what}: function code {rr.function_code}, unit "
                    f"{rr.dev_id}, {len(registers)} registers"
                )
            if self.is_serial:
                # an RTU frame ends with t3.5 of silence: bytes right after it mean the
                # "frame" was part of something longer (noise, another device talking)
                await wait_until(self._last_end + self._frame_gap, self.spin)
                if guard.stray:
                    raise GarbledReply(
                        f"replies are garbled reading {what}: {guard.stray} bytes right after "
                        "the reply frame"
                    )
            return registers
        finally:
            self._idle.put_nowait(conn)

    def close(self) -> None:
        for c in self._connections:
            c.client.close()

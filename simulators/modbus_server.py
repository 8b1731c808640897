"""Simulated Modbus meters: pymodbus servers that serve any profile with a live load curve.

Each :class:`SimulatedMeter` is one unit id whose registers follow the profile's map and data
types (so the agent decodes real bytes), with values from :mod:`vatio.simulators.load_curve`. The
register image is refreshed at most every ``refresh`` seconds, on read, from the meter's clock;
tests pass a fixed clock to know exactly what was served (``meter.served``).

Registers between mapped values read as 0 unless the profile says ``max_gap: 0`` or the
meter is ``strict`` (a device that rejects holes, as some firmwares and libmodbus servers with
a sparse map do): then any request that touches a hole answers exception 2 "illegal data
address". ``lacks`` names profile values the meter does not have (refused the same way). A profile's
``identify`` registers (a model code) are served too, in blocks of their own, with the low
end of their signature range: a real SDM120 holds 0x0020 at 0xFC02.
Each meter counts its requests and the exception replies it sent (``exception_replies``).

Servers: :class:`ModbusTcpSimulator` (Modbus/TCP, or RTU frames over TCP as cheap gateways
speak) and :class:`ModbusSerialSimulator` (RTU on a serial port, e.g. one end of a
:class:`~vatio.simulators.serial_pair.SerialPair`). Both inject :class:`Faults` per meter, by
probability, on the real bytes: exception replies, silence, CRC errors, truncated frames,
dropped TCP connections and slow replies. ``baud_faithful`` makes a serial simulator hold
each reply for the frames' time on the wire, counted from the request's arrival and less
pymodbus's own time to encode the reply, since a pty ignores the baud rate (exception
replies too: such a meter serves the whole address space to pymodbus and refuses the holes
itself, after the delay); ``silent_absent`` keeps it silent for unit ids it does not serve,
as a real line is.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from vatio.common import clock as simulated_or_wall
from vatio.common.links import SerialLine
from vatio.drivers.modbus.profile import MODBUS_MAX_READ_REGISTERS, Point, Profile, RegisterType
from vatio.drivers.modbus.register_codec import encode
from vatio.drivers.modbus.transport import read_wire_time, t35
from vatio.simulators.air_day import AirDay
from vatio.simulators.load_curve import DailyProfile, FactoryLoad, MeterState

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

_FC_TYPE = {3: RegisterType.HOLDING, 4: RegisterType.INPUT}


async def _sleep_precisely(delay: float) -> None:
    """Sleep ``delay`` seconds to within ~0.1 ms: asyncio timers wake up to 1 ms late (epoll
    counts in milliseconds), which would make a baud-faithful meter slower than its wire.
    The last 1.5 ms are spun; acceptable in a simulator, never done in the agent."""
    if delay <= 0:
        return
    deadline = time.monotonic() + delay
    if delay > 0.0015:
        await asyncio.sleep(delay - 0.0015)
    while time.monotonic() < deadline:
        pass


@dataclass
class Faults:
    """Per-meter fault probabilities (0–1), drawn for each request."""

    exception: float = 0.0  # answer "device busy" (exception 6)
    timeout: float = 0.0  # answer nothing
    crc: float = 0.0  # corrupt the reply's last byte (its CRC on RTU)
    truncate: float = 0.0  # send half the reply
    drop: float = 0.0  # close the TCP connection instead of answering
    slow: float = 0.0  # answer after slow_s seconds
    slow_s: float = 0.5

    def draw(self, rng: random.Random) -> str | None:
        """The fault for one request, or None."""
        x = rng.random()
        for name in ("exception", "timeout", "crc", "truncate", "drop", "slow"):
            p = getattr(self, name)
            if x < p:
                return name
            x -= p
        return None


def _addresses(blocks: list[SimData]) -> frozenset[int]:
    return frozenset(a for b in blocks for a in range(b.address, b.address + b.count))


def _clusters(points: list[Point]) -> list[tuple[int, int]]:
    """(start, end) of the runs of values no read can span: a hole wider than the most
    registers one request may read (125) separates two runs."""
    spans = sorted((p.address, p.end) for p in points)
    runs = [list(spans[0])]
    for start, end in spans[1:]:
        if start - runs[-1][1] > MODBUS_MAX_READ_REGISTERS:
            runs.append([start, end])
        else:
            runs[-1][1] = max(runs[-1][1], end)
    return [(start, end) for start, end in runs]


def _blocks(
    profile: Profile,
    register_type: RegisterType,
    strict: bool = False,
    lacks: frozenset[str] = frozenset(),
) -> list[SimData]:
    points = [
        p for p in profile.points if p.register_type is register_type and p.quantity not in lacks
    ]
    if not points:
        # pymodbus wants every block non-empty; one register nobody reads
        return [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]
    if strict or lacks or profile.limits.max_gap == 0:
        # one block per value: pymodbus answers exception 2 to a request touching a hole
        return [
            SimData(p.address, count=p.width, values=0, datatype=DataType.REGISTERS)
            for p in sorted(points, key=lambda p: p.address)
        ]
    runs = _clusters(points)
    if len(runs) > 1:
        # a map spread over the address space (DTSU666 at 0x1000 and 0x2000, PAC3200 at 1 and
        # 801) is served in one block per run, not one block of thousands of registers
        return [
            SimData(start, count=min(end + 1, 0x10000) - start, values=0,
                    datatype=DataType.REGISTERS)
            for start, end in runs
        ]  # fmt: skip
    start = min(p.address for p in points) & ~1
    end = min(max(p.end for p in points) + 1, 0x10000)
    return [SimData(start, count=end - start, values=0, datatype=DataType.REGISTERS)]


def _identify_blocks(profile: Profile, register_type: RegisterType) -> list[SimData]:
    return [
        SimData(p.address, count=p.width, values=0, datatype=DataType.REGISTERS)
        for p in profile.identify
        if p.register_type is register_type
    ]


def _with_identify(blocks: list[SimData], extra: list[SimData]) -> list[SimData]:
    """``blocks`` plus the identify blocks that do not overlap them (pymodbus refuses
    overlapping blocks; a model code inside the mapped block is served there)."""
    out = list(blocks)
    for block in extra:
        lo, hi = block.address, block.address + block.count
        if all(hi <= b.address or b.address + b.count <= lo for b in out):
            out.append(block)
    return sorted(out, key=lambda b: b.address)


class SimulatedMeter:
    """One simulated unit id serving ``profile`` with a factory load curve."""

    def __init__(
        self,
        unit: int,
        profile: Profile,
        seed: int = 0,
        rated_kw: float | None = None,
        clock: Callable[[], float] = simulated_or_wall.now,
        refresh: float = 0.2,
        faults: Faults | None = None,
        load: FactoryLoad | DailyProfile | AirDay | None = None,
        strict: bool = False,
        lacks: tuple[str, ...] = (),
    ) -> None:
        self.unit = unit
        self.strict = strict
        self.lacks = frozenset(lacks)
        self.requests = 0  # requests this unit received (incoming frames)
        self.exception_replies = 0  # of which answered with a Modbus exception
        self.profile = profile
        self.clock = clock
        self.refresh = refresh
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self.pending_fault: str | None = None  # for the server's outgoing-frame hook
        self.reply_delay: Callable[[int], float] = lambda count: 0.0  # set by the server
        self.late_exceptions = False  # exception replies wait for reply_delay too (server)
        # A baud-faithful reply leaves when a real meter's would: reply_delay after the request
        # came in, less what pymodbus takes to encode and write it (learnt from past replies).
        self.arrived_at = 0.0
        self._released_at = 0.0
        self._answer_cost = 0.0
        self._valid: dict[RegisterType, frozenset[int]] | None = None
        self.fault_counts: dict[str, int] = {}
        if rated_kw is None:
            # a three-phase feeder vs a single-phase circuit (~40 A at 127 V)
            three_phase = any(p.quantity == "voltage_l2_v" for p in profile.points)
            rated_kw = 60.0 if three_phase else 5.0
        self.state = MeterState(load or FactoryLoad(seed, rated_kw), clock())
        self.served: dict[str, float] = {}
        self._refreshed_at = -1.0
        self._stale: set[RegisterType] = set()

    def values_at(self, t: float) -> dict[str, float]:
        """The quantities of this profile at ``t`` (advances the counters)."""
        every = self.state.advance(t)
        return {p.quantity: every.get(p.quantity, 0.0) for p in self.profile.points}

    def sim_device(self) -> SimDevice:
        blocks = (
            [SimData(0, count=1, values=False, datatype=DataType.BITS)],  # coils (unused)
            [SimData(0, count=1, values=False, datatype=DataType.BITS)],  # discrete inputs
            _with_identify(
                _blocks(self.profile, RegisterType.HOLDING, self.strict, self.lacks),
                _identify_blocks(self.profile, RegisterType.HOLDING),
            ),
            _with_identify(
                _blocks(self.profile, RegisterType.INPUT, self.strict, self.lacks),
                _identify_blocks(self.profile, RegisterType.INPUT),
            ),
        )

        if self.late_exceptions:
            # pymodbus refuses a read that touches a hole before the action runs, so at once;
            # a meter that takes its time on the wire must take it for that reply too: serve
            # the whole address space and refuse the holes in the action, after the delay
            self._valid = {
                RegisterType.HOLDING: _addresses(blocks[2]),
                RegisterType.INPUT: _addresses(blocks[3]),
            }
            whole = [SimData(0, count=0x10000, values=0, datatype=DataType.REGISTERS)]
            blocks = (blocks[0], blocks[1], whole, whole)
        return SimDevice(self.unit, simdata=blocks, action=self._on_access)

    async def _hold(self, delay: float) -> None:
        now = time.monotonic()
        since = self.arrived_at if 0.0 < now - self.arrived_at < delay else now
        await _sleep_precisely(since + delay - self._answer_cost - now)
        self._released_at = time.monotonic()

    def replied(self) -> None:
        """The reply's bytes reach the transport now (the server's outgoing-frame hook)."""
        if self._released_at:
            cost = min(time.monotonic() - self._released_at, 0.002)
            self._answer_cost = 0.8 * self._answer_cost + 0.2 * cost
            self._released_at = 0.0

    async def _on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        register_type = _FC_TYPE.get(function_code)
        if register_type is None or set_values is not None:
            return None
        valid = self._valid.get(register_type) if self._valid is not None else None
        if valid is not None and not valid.issuperset(range(address, address + count)):
            await self._hold(self.reply_delay(0))  # an exception reply: 5 bytes
            return ExcCodes.ILLEGAL_ADDRESS
        fault = self.faults.draw(self.rng)
        if fault is not None:
            self.fault_counts[fault] = self.fault_counts.get(fault, 0) + 1
        delay = self.reply_delay(count) + (self.faults.slow_s if fault == "slow" else 0.0)
        if delay:
            await self._hold(delay)
        if fault == "exception":
            return ExcCodes.DEVICE_BUSY
        self.pending_fault = fault  # applied to the reply's bytes by the server hook
        now = self.clock()
        if now - self._refreshed_at >= self.refresh or self._refreshed_at < 0:
            self.served = self.values_at(now)
            self._refreshed_at = now
            self._stale = {RegisterType.INPUT, RegisterType.HOLDING}
        if register_type in self._stale:
            self._stale.discard(register_type)
            for p in self.profile.points:
                if p.register_type is register_type and p.quantity not in self.lacks:
                    words = encode(
                        self.served[p.quantity],
                        p.data_type,
                        p.word_order,
                        p.byte_order,
                        p.scale,
                        p.offset,
                    )
                    offset = p.address - start_address
                    registers[offset : offset + p.width] = words
        expected = {q: lo for q, lo, _ in self.profile.signature}
        for p in self.profile.identify:
            offset = p.address - start_address
            if p.register_type is register_type and 0 <= offset <= len(registers) - p.width:
                words = encode(expected[p.quantity], p.data_type, p.word_order, p.byte_order,
                               p.scale, p.offset)  # fmt: skip
                registers[offset : offset + p.width] = words
        return None


def _corrupt(data: bytes, fault: str | None) -> bytes | None:
    """The reply's bytes after ``fault``; None means: close the connection."""
    if fault == "timeout":
        return b""
    if fault == "crc":
        return data[:-1] + bytes([data[-1] ^ 0xFF])
    if fault == "truncate":
        return data[: max(1, len(data) // 2)]
    if fault == "drop":
        return None
    return data


class _FaultHook:
    """pymodbus ``trace_packet`` hook: applies a meter's pending fault to its reply."""

    def __init__(self, meters: list[SimulatedMeter], unit_offset: int) -> None:
        self.by_unit = {m.unit: m for m in meters}
        self.unit_offset = unit_offset  # where the unit id sits in a frame (RTU 0, MBAP 6)
        self.server: Any = None
        self.silent_absent = False  # swallow replies for unit ids no meter has

    def __call__(self, sending: bool, data: bytes) -> bytes:
        if len(data) <= self.unit_offset + 1:
            return data
        meter = self.by_unit.get(data[self.unit_offset])
        if meter is None:
            return b"" if sending and self.silent_absent else data
        if not sending:
            meter.requests += 1
            meter.arrived_at = time.monotonic()
            return data
        if isinstance(meter, SimulatedMeter):  # SunSpec units answer at once
            meter.replied()
        if data[self.unit_offset + 1] & 0x80:  # function code | 0x80: an exception reply
            meter.exception_replies += 1
        if meter.pending_fault is None:
            return data
        fault, meter.pending_fault = meter.pending_fault, None
        out = _corrupt(data, fault)
        if out is None:
            for conn in list(getattr(self.server, "active_connections", {}).values()):
                asyncio.get_running_loop().call_soon(conn.close)
            return b""
        return out


class ModbusTcpSimulator:
    """A Modbus/TCP server (a meter, or a gateway with several unit ids) on ``host:port``.

    ``rtu_framing=True`` speaks RTU frames over TCP instead, as cheap RS-485 gateways do.
    """

    def __init__(
        self,
        meters: list[SimulatedMeter],
        host: str = "127.0.0.1",
        port: int = 0,
        rtu_framing: bool = False,
    ) -> None:
        self.meters = meters
        self.host = host
        self.port = port
        self.rtu_framing = rtu_framing
        self._server: ModbusTcpServer | None = None

    async def start(self) -> int:
        """Start serving; returns the bound port (useful with ``port=0``)."""
        hook = _FaultHook(self.meters, 0 if self.rtu_framing else 6)
        self._server = ModbusTcpServer(
            [m.sim_device() for m in self.meters],
            address=(self.host, self.port),
            framer=FramerType.RTU if self.rtu_framing else FramerType.SOCKET,
            trace_packet=hook,
        )
        hook.server = self._server
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError:  # pymodbus's word for "could not listen"
            raise OSError(f"cannot listen on {self.host}:{self.port}") from None
        self.port = self._server.transport.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None


class ModbusSerialSimulator:
    """Modbus RTU meters on a serial port (one bus, several unit ids)."""

    def __init__(
        self,
        meters: list[SimulatedMeter],
        port: str,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        baud_faithful: bool = False,
        silent_absent: bool = False,
    ) -> None:
        self.meters = meters
        self.port = port
        # pymodbus answers a unit id it does not serve with an exception (4 or 11); on a real
        # RS-485 line nobody answers: silent_absent=True
        self.silent_absent = silent_absent
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self._server: ModbusSerialServer | None = None
        if baud_faithful:
            for m in meters:
                m.reply_delay = self.wire_time
                m.late_exceptions = True

    def wire_time(self, count: int) -> float:
        """How long the reply to a read is held back: the request's and the reply's characters
        at this line's speed, and the t3.5 between them. (The t3.5 after the reply is the
        master's to keep.) A pty delivers bytes at once, so this is what makes bus time real."""
        line = SerialLine(self.port, self.baudrate, self.parity, self.stopbits)
        return read_wire_time(count, self.baudrate, line.bits_per_char) - t35(self.baudrate)

    async def start(self) -> None:
        hook = _FaultHook(self.meters, 0)
        hook.silent_absent = self.silent_absent
        self._server = ModbusSerialServer(
            [m.sim_device() for m in self.meters],
            framer=FramerType.RTU,
            port=self.port,
            baudrate=self.baudrate,
            parity=self.parity,
            stopbits=self.stopbits,
            trace_packet=hook,
        )
        hook.server = self._server
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError:
            raise OSError(f"cannot open serial port {self.port}") from None

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

"""Simulated Modbus meters: pymodbus servers that serve any profile with a live load curve.

Each :class:`SimulatedMeter` is one unit id whose registers follow the profile's map and data
types (so the agent decodes real bytes), with values from :mod:`simulators.load_curve`. The
register image is refreshed at most every ``refresh`` seconds, on read, from the meter's clock;
tests pass a fixed clock to know exactly what was served (``meter.served``).

Registers between mapped values read as 0 unless the profile says ``max_gap: 0`` (a device
that rejects holes): then holes answer "illegal data address", as such a device would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus.profile import Profile, RegisterType
from drivers.modbus.register_codec import encode
from simulators.load_curve import FactoryLoad, MeterState

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

_FC_TYPE = {3: RegisterType.HOLDING, 4: RegisterType.INPUT}


def _blocks(profile: Profile, register_type: RegisterType) -> list[SimData]:
    points = [p for p in profile.points if p.register_type is register_type]
    if not points:
        # pymodbus wants every block non-empty; one register nobody reads
        return [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]
    if profile.limits.max_gap == 0:
        return [
            SimData(p.address, count=p.width, values=0, datatype=DataType.REGISTERS)
            for p in sorted(points, key=lambda p: p.address)
        ]
    start = min(p.address for p in points) & ~1
    end = min(max(p.end for p in points) + 1, 0x10000)
    return [SimData(start, count=end - start, values=0, datatype=DataType.REGISTERS)]


class SimulatedMeter:
    """One simulated unit id serving ``profile`` with a factory load curve."""

    def __init__(
        self,
        unit: int,
        profile: Profile,
        seed: int = 0,
        rated_kw: float | None = None,
        clock: Callable[[], float] = time.time,
        refresh: float = 0.2,
    ) -> None:
        self.unit = unit
        self.profile = profile
        self.clock = clock
        self.refresh = refresh
        if rated_kw is None:
            # a three-phase feeder vs a single-phase circuit (~40 A at 127 V)
            three_phase = any(p.quantity == "voltage_l2_v" for p in profile.points)
            rated_kw = 60.0 if three_phase else 5.0
        self.state = MeterState(FactoryLoad(seed, rated_kw), clock())
        self.served: dict[str, float] = {}
        self.reads = 0
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
            _blocks(self.profile, RegisterType.HOLDING),
            _blocks(self.profile, RegisterType.INPUT),
        )
        return SimDevice(self.unit, simdata=blocks, action=self._on_access)

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
        self.reads += 1
        now = self.clock()
        if now - self._refreshed_at >= self.refresh or self._refreshed_at < 0:
            self.served = self.values_at(now)
            self._refreshed_at = now
            self._stale = {RegisterType.INPUT, RegisterType.HOLDING}
        if register_type in self._stale:
            self._stale.discard(register_type)
            for p in self.profile.points:
                if p.register_type is register_type:
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
        return None


class ModbusTcpSimulator:
    """A Modbus/TCP server (a meter, or a gateway with several unit ids) on ``host:port``."""

    def __init__(
        self, meters: list[SimulatedMeter], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.meters = meters
        self.host = host
        self.port = port
        self._server: ModbusTcpServer | None = None

    async def start(self) -> int:
        """Start serving; returns the bound port (useful with ``port=0``)."""
        self._server = ModbusTcpServer(
            [m.sim_device() for m in self.meters], address=(self.host, self.port)
        )
        await self._server.serve_forever(background=True)
        self.port = self._server.transport.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

"""What a configured bus is, without running anything: its link (TCP endpoint, serial line,
I2C bus), its timeout and retries and the share of the line its schedule needs, and the
object its drivers receive. `vatio check` and `vatio read` need these and nothing else of
:mod:`vatio.agent.runtime`, whose imports (metrics engine, MQTT, HTTP status) they would pay
for on every start (issue 18: a technician runs them many times a day).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from vatio.agent.config import (
    BusConfig,
    I2cBusConfig,
    LoadedConfig,
    RtuBusConfig,
    RtuTcpBusConfig,
    SerialBusConfig,
    TcpBusConfig,
)
from vatio.common.links import I2cLine, SerialLine, TcpEndpoint
from vatio.drivers.i2c.transport import I2cBus, TransportOpener
from vatio.drivers.modbus.planner import plan_reads
from vatio.drivers.modbus.transport import ModbusTransport, read_wire_time


def vatio_version() -> str:
    try:
        return version("vatio")
    except PackageNotFoundError:
        return "dev"


@dataclass(frozen=True)
class BusTiming:
    timeout: float
    retries: int
    load: float  # share of the bus time the schedule needs (serial only; 0 for TCP)


def bus_timing(name: str, loaded: LoadedConfig) -> BusTiming:
    bus = loaded.config.buses[name]
    devices = {n: d for n, d in loaded.devices.items() if d.bus == name}
    shortest = min((d.interval for d in devices.values()), default=10.0)
    # half the interval: a dead device then costs at most half a tick, while a busy RS-485
    # gateway (an 80-register read takes ~200 ms at 9600 baud) still has time to answer
    timeout = min(max(0.5 * shortest, 0.3), 3.0)
    load = 0.0
    baudrate = getattr(bus, "baudrate", None)
    if isinstance(bus, RtuBusConfig | RtuTcpBusConfig) and baudrate:
        longest = 0.0
        profiles = loaded.profiles
        for n, d in devices.items():
            if n not in profiles:
                continue
            gap = profiles[n].limits.min_gap_ms / 1000
            plan = plan_reads(profiles[n].points, profiles[n].limits)
            wire = [read_wire_time(r.count, baudrate) + gap for r in plan]
            longest = max([longest, *wire])
            load += sum(wire) / d.interval
        timeout = max(timeout, 1.5 * longest + 0.1)
    configured_timeout = getattr(bus, "timeout", None)
    configured_retries = getattr(bus, "retries", None)
    return BusTiming(
        timeout=configured_timeout if configured_timeout is not None else round(timeout, 3),
        retries=configured_retries
        if configured_retries is not None
        else (0 if shortest <= 10 else 1),
        load=load,
    )


def bus_link(bus: BusConfig) -> TcpEndpoint | SerialLine | I2cLine:
    if isinstance(bus, I2cBusConfig):
        return I2cLine(bus.device)
    if isinstance(bus, TcpBusConfig):
        return TcpEndpoint(bus.host, bus.port, bus.max_connections)
    if isinstance(bus, RtuTcpBusConfig):
        return TcpEndpoint(bus.host, bus.port, 1, rtu_framing=True)
    return SerialLine(bus.port, bus.baudrate, bus.parity, bus.stopbits, bus.bytesize)


def build_bus(
    name: str, loaded: LoadedConfig, i2c_opener: TransportOpener | None = None
) -> ModbusTransport | SerialLine | I2cBus:
    """What the drivers of a bus receive: a Modbus transport, a serial line to open, or
    the one owner of an I2C bus (``i2c_opener``: tests put a simulated bus behind it)."""
    bus = loaded.config.buses[name]
    link = bus_link(bus)
    if isinstance(link, I2cLine):
        return I2cBus(name, link, i2c_opener)
    if isinstance(bus, SerialBusConfig):
        assert isinstance(link, SerialLine)
        return link
    timing = bus_timing(name, loaded)
    return ModbusTransport(name, link, timeout=timing.timeout, retries=timing.retries)

"""``vatio simulate -c FILE``: impersonate the devices a config describes, on this machine.

* a Modbus/TCP (or RTU-over-TCP) bus becomes a pymodbus server on its host:port (loopback
  only), serving each device at its unit id with its profile and a factory load curve;
* a ``modbus-rtu`` bus becomes a virtual serial cable (socat) whose agent end is created at
  the configured ``port`` path, with the RTU meters on the other end (``--baud-faithful``
  makes them answer at the real speed of the configured baud rate);
* a ``serial`` bus gets the byte-exact simulator of its UART sensor (SDS011, PMS5003, PMS7003,
  PMSA003, MH-Z19B, SPS30);
* a ``driver: sunspec`` device becomes a SunSpec unit (simulators/sunspec_server.py) on its
  bus: an inverter, or a grid meter when its name says "meter"/"medidor" (``--sunspec
  DEVICE=KIND`` chooses: inverter, inverter-float, meter, meter-float, bad-end, bad-repeat,
  bad-length). All SunSpec units of a config share one site: the meter sees the house's
  load minus the inverter's PV. ``VATIO_SIMULATED_TIME`` runs their day fast.

Then ``vatio run -c FILE`` polls them as it would poll real devices.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import socket
import sys
import zlib
from pathlib import Path
from typing import Any

from vatio.agent.cli import load_or_report
from vatio.agent.config import LoadedConfig, RtuBusConfig, RtuTcpBusConfig, TcpBusConfig
from vatio.common import clock as simulated_or_wall
from vatio.simulators.modbus_server import ModbusSerialSimulator, ModbusTcpSimulator, SimulatedMeter
from vatio.simulators.pv_day import PvPlant, SiteState
from vatio.simulators.serial_pair import SerialPair
from vatio.simulators.sunspec_server import KINDS, SunSpecUnit
from vatio.simulators.uart_sensors import (
    Mhz19Sim,
    Pms5003Sim,
    Pms7003Sim,
    Pmsa003Sim,
    Sds011Sim,
    Sps30Sim,
)


def device_seed(name: str) -> int:
    """A stable seed per device name, so each simulated meter has its own curve."""
    return zlib.crc32(name.encode())


def is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


class SerialBusSimulation:
    """A pty pair whose agent end is the config's port, and the device(s) on the other end."""

    def __init__(self, pair: SerialPair, device: Any, what: list[str]) -> None:
        self.pair = pair
        self.device = device
        self.what = what

    async def start(self) -> None:
        self.pair.start()
        try:
            await self.device.start()
        except BaseException:
            self.pair.stop()
            raise

    async def stop(self) -> None:
        await self.device.stop()
        self.pair.stop()


class TcpBusSimulation:
    def __init__(self, server: ModbusTcpSimulator, what: list[str]) -> None:
        self.server = server
        self.what = what

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()


UART_SIMULATORS = {
    "sds011": Sds011Sim,
    "pms5003": Pms5003Sim,
    "pms7003": Pms7003Sim,
    "pmsa003": Pmsa003Sim,
    "mhz19b": Mhz19Sim,
    "sps30": Sps30Sim,  # on a serial bus: the sps30_uart driver
    "sps30_uart": Sps30Sim,
}


def sunspec_kind(name: str, chosen: dict[str, str]) -> str:
    """What a ``driver: sunspec`` device is simulated as (see the module docstring)."""
    if name in chosen:
        return chosen[name]
    return "meter" if any(w in name.lower() for w in ("meter", "medidor")) else "inverter"


def parse_sunspec_choices(specs: list[str]) -> dict[str, str]:
    """``DEVICE=KIND`` pairs of ``--sunspec``; raises ValueError saying which is wrong."""
    chosen = {}
    for spec in specs:
        device, _, kind = spec.partition("=")
        if kind not in KINDS:
            raise ValueError(f"--sunspec {spec}: write DEVICE=KIND, KIND one of {', '.join(KINDS)}")
        chosen[device] = kind
    return chosen


def build_simulators(
    loaded: LoadedConfig, baud_faithful: bool = False, sunspec: dict[str, str] | None = None
) -> tuple[list[TcpBusSimulation | SerialBusSimulation], list[str]]:
    """A simulation per bus of the config; returns them and the buses it cannot simulate."""
    sims: list[TcpBusSimulation | SerialBusSimulation] = []
    problems = []
    sunspec = sunspec or {}
    unknown = set(sunspec) - {n for n, e in loaded.entries.items() if e.config.driver == "sunspec"}
    problems += [f"--sunspec {n}: no enabled 'driver: sunspec' device of that name"
                 for n in sorted(unknown)]  # fmt: skip
    site: SiteState | None = None  # one site for every SunSpec unit: inverter and meter
    for bus_name, bus in loaded.config.buses.items():
        members = {n: e for n, e in loaded.entries.items() if e.config.bus == bus_name}
        if not members:
            continue
        meters = [
            SimulatedMeter(loaded.units[n], loaded.profiles[n], seed=device_seed(n))
            for n in members
            if n in loaded.profiles
        ]
        what = [f"{m.profile.manufacturer} {m.profile.model} unit {m.unit}" for m in meters]
        for n, e in members.items():
            if e.config.driver != "sunspec":
                continue
            site = site or SiteState(PvPlant(device_seed(n)), simulated_or_wall.now())
            kind = sunspec_kind(n, sunspec)
            meters.append(SunSpecUnit(e.options.unit, kind, site))  # duck-types a meter
            what.append(f"SunSpec {kind} '{n}' unit {e.options.unit}")
        if isinstance(bus, TcpBusConfig | RtuTcpBusConfig):
            if not is_loopback(bus.host):
                problems.append(
                    f"bus '{bus_name}': host {bus.host} is not a loopback address; the "
                    "simulator serves only on this machine: set host: 127.0.0.1 in a copy of "
                    "the config"
                )
                continue
            server = ModbusTcpSimulator(
                meters, bus.host, bus.port, rtu_framing=isinstance(bus, RtuTcpBusConfig)
            )
            sims.append(TcpBusSimulation(server, [f"{w} on {bus.host}:{bus.port}" for w in what]))
            continue
        if Path(bus.port).exists() and not Path(bus.port).is_symlink():
            problems.append(
                f"bus '{bus_name}': {bus.port} exists (a real port?); the simulator will not "
                "replace it: use a free path such as /tmp/vatio-rs485 in a copy of the config"
            )
            continue
        pair = SerialPair.at(bus.port)
        device: Any
        if isinstance(bus, RtuBusConfig):
            device = ModbusSerialSimulator(
                meters, pair.a, bus.baudrate, bus.parity, bus.stopbits, baud_faithful
            )
        else:  # a UART sensor: one device per serial bus
            name, entry = next(iter(members.items()))
            sim_class = UART_SIMULATORS.get(entry.config.driver)
            if sim_class is None:
                problems.append(
                    f"bus '{bus_name}': no simulator for driver '{entry.config.driver}'"
                )
                continue
            device = sim_class(pair.a, seed=device_seed(name))
            what = [f"{sim_class.__name__.removesuffix('Sim')} '{name}'"]
        sims.append(SerialBusSimulation(pair, device, [f"{w} on {bus.port}" for w in what]))
    return sims, problems


async def _simulate(
    loaded: LoadedConfig,
    duration: float | None,
    baud_faithful: bool,
    sunspec: dict[str, str] | None = None,
) -> int:
    sims, problems = build_simulators(loaded, baud_faithful, sunspec)
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    if not sims:
        print("error: nothing to simulate in this config", file=sys.stderr)
        return 1
    started = []
    try:
        for sim in sims:
            try:
                await sim.start()
            except (OSError, TimeoutError, FileNotFoundError) as exc:
                print(
                    f"error: cannot start the simulator of {sim.what[0]}: {exc}; is another "
                    "program (or simulator) using that port?",
                    file=sys.stderr,
                )
                return 1
            started.append(sim)
            for line in sim.what:
                print(f"simulating {line}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("press Ctrl-C to stop" if duration is None else f"running for {duration:g} s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        for sim in started:
            await sim.stop()
    return 0


def simulate_command(sub: Any) -> None:
    """Register ``vatio simulate`` (entry point ``vatio.commands``)."""
    p = sub.add_parser("simulate", help="simulate the devices of a config (no hardware)")
    p.add_argument("-c", "--config", required=True, help="config file (YAML)")
    p.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    p.add_argument(
        "--baud-faithful",
        action="store_true",
        help="RS-485 meters answer at the configured baud rate's real speed",
    )
    p.add_argument(
        "--sunspec",
        action="append",
        default=[],
        metavar="DEVICE=KIND",
        help=f"simulate a 'driver: sunspec' device as KIND ({', '.join(KINDS)})",
    )

    def run(args: argparse.Namespace) -> int:
        try:
            chosen = parse_sunspec_choices(args.sunspec)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        loaded = load_or_report(args.config)
        if loaded is None:
            return 1
        return asyncio.run(_simulate(loaded, args.duration, args.baud_faithful, chosen))

    p.set_defaults(func=run)

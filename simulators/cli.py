"""``vatio simulate -c FILE``: impersonate the devices a config describes, on this machine.

Every Modbus/TCP bus of the config becomes a pymodbus server on its host:port, serving each
of the bus's devices at its unit id with its profile and a factory load curve. Then
``vatio run -c FILE`` polls them as it would poll real meters.
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
from typing import Any

from agent.cli import load_or_report
from agent.config import LoadedConfig, TcpBusConfig
from simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter


def device_seed(name: str) -> int:
    """A stable seed per device name, so each simulated meter has its own curve."""
    return zlib.crc32(name.encode())


def is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def build_simulators(loaded: LoadedConfig) -> tuple[list[ModbusTcpSimulator], list[str]]:
    """One TCP simulator per TCP bus; returns them and the problems (buses not simulated)."""
    sims, problems = [], []
    cfg = loaded.config
    for bus_name, bus in cfg.buses.items():
        members = {n: d for n, d in loaded.devices.items() if d.bus == bus_name}
        if not members:
            continue
        if not isinstance(bus, TcpBusConfig):
            problems.append(
                f"bus '{bus_name}' ({bus.type}) is not simulated: serial simulation over a "
                "pty pair is not available yet; use a modbus-tcp bus on 127.0.0.1"
            )
            continue
        if not is_loopback(bus.host):
            problems.append(
                f"bus '{bus_name}': host {bus.host} is not a loopback address; the simulator "
                "serves only on this machine: set host: 127.0.0.1 in a copy of the config"
            )
            continue
        meters = [
            SimulatedMeter(loaded.units[n], loaded.profiles[n], seed=device_seed(n))
            for n in members
            if n in loaded.profiles
        ]
        sims.append(ModbusTcpSimulator(meters, bus.host, bus.port))
    return sims, problems


async def _simulate(loaded: LoadedConfig, duration: float | None) -> int:
    sims, problems = build_simulators(loaded)
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
            except OSError as exc:
                print(
                    f"error: cannot listen on {sim.host}:{sim.port} ({exc.strerror}): is "
                    "another program (or simulator) using that port?",
                    file=sys.stderr,
                )
                return 1
            started.append(sim)
            for m in sim.meters:
                print(
                    f"simulating {m.profile.manufacturer} {m.profile.model} unit {m.unit} "
                    f"on {sim.host}:{sim.port}"
                )
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

    def run(args: argparse.Namespace) -> int:
        loaded = load_or_report(args.config)
        if loaded is None:
            return 1
        return asyncio.run(_simulate(loaded, args.duration))

    p.set_defaults(func=run)

"""The ``vatio`` command line: run, check, and the subcommands plugged in by other packages.

Commands that are not part of the runtime (``simulate``, ``demo``) register through the
``vatio.commands`` entry-point group, so the agent never imports the simulators. A user
mistake prints a located message and exits 1; it never shows a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from agent.config import ConfigError, LoadedConfig, RtuBusConfig, load_config
from agent.runtime import Agent, StateDirError, bus_timing, vatio_version

log = logging.getLogger("vatio")

Command = Callable[[argparse.Namespace], int]


def setup_logging(verbose: bool = False) -> None:
    # under systemd the journal adds timestamps; elsewhere a terminal wants them
    fmt = "%(levelname)s %(name)s: %(message)s"
    if "JOURNAL_STREAM" not in os.environ:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=fmt)


def load_or_report(path: str) -> LoadedConfig | None:
    """Load a config, or print its problems to stderr and return None."""
    try:
        return load_config(path)
    except ConfigError as exc:
        n = len(exc.problems)
        print(f"error: {n} problem{'s' if n != 1 else ''} in {path}:", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    from agent.runtime import build_transport  # local: only `check` prints plans
    from drivers.modbus.device import ModbusDevice

    cfg = loaded.config
    warnings = []
    print(f"ok: {args.config}")
    print(f"site {cfg.site}, agent {cfg.agent_id}, state in {cfg.state_dir}")
    used = {d.bus for d in loaded.devices.values()}
    print(f"buses ({len(cfg.buses)}):")
    transports = {}
    for name, bus in cfg.buses.items():
        if name not in used:
            warnings.append(f"bus '{name}' has no enabled device")
            continue
        timing = bus_timing(name, loaded)
        transports[name] = build_transport(name, loaded)
        line = (
            f"  {name}: {bus.type} {transports[name].describe()}, timeout {timing.timeout:g} s, "
            f"retries {timing.retries}"
        )
        if isinstance(bus, RtuBusConfig):
            line += f", schedule needs {timing.load:.0%} of the line"
            if timing.load > 1.0:
                warnings.append(
                    f"bus '{name}': the schedule needs {timing.load:.0%} of the line's time at "
                    f"{bus.baudrate} baud; polls will be missed. Lengthen the intervals, raise "
                    "the baud rate or move devices to another bus"
                )
        print(line)
    print(f"devices ({len(loaded.devices)} enabled):")
    for name, dev in loaded.devices.items():
        driver = ModbusDevice(name, dev.unit, loaded.profiles[name], transports[dev.bus])
        print(f"  {name}: every {dev.interval:g} s, {driver.describe()}")
    mqtt = cfg.outputs.mqtt
    print(f"outputs: {'mqtt ' + mqtt.url if mqtt else 'none'}")
    if mqtt is None:
        warnings.append("no output configured: readings will only be logged")
    for t in transports.values():
        t.close()
    for w in warnings:
        print(f"warning: {w}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    setup_logging(args.verbose)
    try:
        return asyncio.run(_run(loaded))
    except StateDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _run(loaded: LoadedConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agent = Agent(loaded)
    # `kill -USR1 <pid>` logs the counters without stopping (benchmarks, field checks)
    loop.add_signal_handler(
        signal.SIGUSR1,
        lambda: log.info("stats: %s", " ".join(f"{k}={v}" for k, v in agent.stats().items())),
    )
    log.info(
        "vatio %s: site %s, %d device(s) on %d bus(es)",
        vatio_version(),
        loaded.config.site,
        len(loaded.devices),
        len(agent.scheduler.workers),
    )
    await agent.run(stop)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vatio", description="Vatio edge agent: meters and sensors to MQTT."
    )
    parser.add_argument("--version", action="version", version=f"vatio {vatio_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent (what the service runs)")
    p.add_argument("-c", "--config", required=True, help="config file (YAML)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="validate a config and show each device's poll plan")
    p.add_argument("-c", "--config", required=True, help="config file (YAML)")
    p.set_defaults(func=cmd_check)

    for ep in entry_points(group="vatio.commands"):
        try:
            register = ep.load()
        except ImportError as exc:
            # e.g. `demo` without the demo extra: say how to get it instead of failing
            missing = exc.name or "a module"
            q = sub.add_parser(ep.name, help=f"(unavailable: {missing} is not installed)")
            q.set_defaults(func=_unavailable(ep.name, missing))
            continue
        register(sub)
    return parser


def _unavailable(name: str, missing: str) -> Command:
    def run(_: argparse.Namespace) -> int:
        print(
            f"error: `vatio {name}` needs {missing}; install it with: pip install 'vatio[demo]'",
            file=sys.stderr,
        )
        return 1

    return run


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

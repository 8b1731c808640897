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
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from vatio.agent import sdnotify
from vatio.agent.buses import bus_link, bus_timing, vatio_version
from vatio.agent.config import (
    ConfigError,
    DeviceEntry,
    I2cBusConfig,
    LoadedConfig,
    SerialBusConfig,
    load_config,
)
from vatio.agent.httpstatus import PortTaken
from vatio.agent.influx import WriteError
from vatio.agent.logs import LogFormat, secrets_of, setup_logging
from vatio.agent.spool import SpoolError
from vatio.agent.starter import VersionAction, add_init_parser
from vatio.common import clock
from vatio.common.i18n import tr

if TYPE_CHECKING:  # the runtime (metrics, MQTT, HTTP) is imported by `run` only: issue 18
    from vatio.agent.remote.service import RemoteService
    from vatio.agent.runtime import Agent, Handover

log = logging.getLogger("vatio")

Command = Callable[[argparse.Namespace], int]


def load_or_report(path: str) -> LoadedConfig | None:
    """Load a config, or print its problems to stderr and return None."""
    try:
        return load_config(path)
    except ConfigError as exc:
        report_problems(path, exc)
        return None


def report_problems(path: str, exc: ConfigError) -> None:
    n = len(exc.problems)
    head = "error: 1 problem in {path}:" if n == 1 else "error: {n} problems in {path}:"
    print(tr(head, n=n, path=path), file=sys.stderr)
    for p in exc.problems:
        print(f"  {p}", file=sys.stderr)


def describe_device(name: str, entry: DeviceEntry, state_dir: Path | None = None) -> str:
    """What `check` says of a device, without opening its bus: with ``state_dir``, the read
    plan the agent learned from the device (indented lines after the first)."""
    profile = getattr(entry.options, "profile", None)
    if profile is not None:
        from vatio.drivers.modbus.replan import ReadPlan

        plan = ReadPlan(name, profile, entry.options.unit)
        if state_dir is not None:
            from vatio.drivers.plugin import state_file

            plan.use_store(state_file(state_dir, name, writable=False))
        head = (
            f"{profile.manufacturer} {profile.model} unit {entry.options.unit} on "
            f"'{entry.config.bus}': {len(profile.points)} values in {len(plan.requests)} "
            "request(s) per poll"
        )
        return "\n".join([head, *(f"      {line}" for line in plan.lines())])
    address = getattr(entry.options, "address", None)
    at = f" at 0x{address:02x}" if isinstance(address, int) else ""
    return f"driver {entry.config.driver}{at} on '{entry.config.bus}'"


def cmd_check(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    cfg = loaded.config
    warnings = []
    exposed = exposed_secrets(args.config, loaded)
    if exposed:
        warnings.append(exposed)
    print(tr("ok: {path}", path=args.config))
    print(
        tr(
            "site {site}, agent {agent}, state in {state}",
            site=cfg.site,
            agent=cfg.agent_id,
            state=cfg.state_dir,
        )
    )
    used = {d.bus for d in loaded.devices.values()}
    print(tr("buses ({n}):", n=len(cfg.buses)))
    for name, bus in cfg.buses.items():
        if name not in used:
            warnings.append(tr("bus '{bus}' has no enabled device", bus=name))
            continue
        line = f"  {name}: {bus.type} {bus_link(bus).describe()}"
        if not isinstance(bus, SerialBusConfig | I2cBusConfig):
            timing = bus_timing(name, loaded)
            line += f", timeout {timing.timeout:g} s, retries {timing.retries}"
            if timing.load:
                line += f", schedule needs {timing.load:.1%} of the line"
            if timing.load > 1.0:
                warnings.append(
                    tr(
                        "bus '{bus}': the schedule needs {load} of the line's time at {baud} "
                        "baud; polls will be missed. Lengthen the intervals, raise the baud "
                        "rate or move devices to another bus",
                        bus=name,
                        load=f"{timing.load:.0%}",
                        baud=getattr(bus, "baudrate", "?"),
                    )
                )
        print(line)
    print(tr("devices ({n} enabled):", n=len(loaded.devices)))
    for name, entry in loaded.entries.items():
        every = tr("every {interval} s", interval=f"{entry.config.interval:g}")
        described = describe_device(name, entry, Path(cfg.state_dir))
        print(f"  {name}: {every}, {described}")
    warnings += site_warnings(loaded)
    mqtt = cfg.outputs.mqtt
    print(tr("outputs: {outputs}", outputs="mqtt " + mqtt.url if mqtt else tr("none")))
    if mqtt is None:
        warnings.append(tr("no output configured: readings will only be logged"))
    remote = cfg.remote
    if remote.enabled:
        pushes = (
            tr("pushed configs may change {sections}", sections=", ".join(remote.sections))
            if remote.config_push
            else tr("no pushed configs")
        )
        print(tr("remote management: on, {pushes}", pushes=pushes))
    for w in warnings:
        print(tr("warning: {text}", text=w))
    return 0


def site_warnings(loaded: LoadedConfig, now: float | None = None) -> list[str]:
    """Roles and bill: print them, and warn where the balance or the bill will be incomplete
    (a grid meter without an export counter; no prices for the current month)."""
    from vatio.agent.config import published
    from vatio.agent.metrics.prices import load_prices
    from vatio.common import clock

    cfg = loaded.config
    warnings: list[str] = []
    roles = {n: e.config.role for n, e in loaded.entries.items() if e.config.role != "load"}
    if roles:
        print(tr("site balance: {roles}", roles=", ".join(f"{n} ({r})" for n, r in roles.items())))
    for name, role in roles.items():
        quantities = published(loaded.entries[name])
        if role == "grid" and quantities is not None and "energy_export_kwh" not in quantities:
            has_generation = "generation" in roles.values()
            warnings.append(
                tr(
                    "grid meter '{device}' has no export counter (energy_export_kwh): "
                    "{consequence}",
                    device=name,
                    consequence=tr(
                        "exports, consumption and self-consumption will be null (flagged "
                        "no_export_register); use a profile that maps the export register"
                    )
                    if has_generation
                    else tr("if the site ever exports, the balance will not show it"),
                )
            )
    bill = cfg.bill
    if bill is not None:
        import datetime as dt
        from zoneinfo import ZoneInfo

        table = load_prices(bill.prices)  # checked when the config loaded
        today = dt.datetime.fromtimestamp(
            clock.now() if now is None else now, ZoneInfo(cfg.metrics.timezone)
        )
        month = today.strftime("%Y-%m")
        row = table.row(bill.division, month)
        print(
            tr(
                "bill: {tariff}, division {division}, prices {file}, net metering {scheme}",
                tariff=bill.tariff,
                division=bill.division,
                file=table.file,
                scheme=bill.net_metering,
            )
        )
        if row is None:
            warnings.append(
                tr(
                    "no {tariff} prices for {month} in division {division} ({file}): the bill "
                    "will show energy and demand without amounts; add the month's row",
                    tariff=bill.tariff,
                    month=month,
                    division=bill.division,
                    file=table.file,
                )
            )
        elif row.example:
            warnings.append(
                tr(
                    "the {month} prices for {division} are examples, not CFE's: copy the "
                    "month's figures from CFE's GDMTH page into bill.prices",
                    month=month,
                    division=bill.division,
                )
            )
    return warnings


def exposed_secrets(path: str, loaded: LoadedConfig) -> str | None:
    """A warning when the config file itself holds a password or token and every user of the
    machine can read it (a secret taken from the environment, ``${VAR}``, is not in it)."""
    try:
        mode = os.stat(path).st_mode
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return None
    if not mode & stat.S_IROTH:
        return None
    if not any(secret in text for secret in secrets_of(loaded.config)):
        return None
    return tr(
        "{path} can be read by every user of this machine and holds a password or token; make "
        "it private: chmod 640 {path}",
        path=path,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from vatio.agent.runtime import StateDirError

    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    setup_logging(args.verbose, args.log_format, secrets_of(loaded.config))
    exposed = exposed_secrets(args.config, loaded)
    if exposed:
        log.warning("%s", exposed)
    try:
        return asyncio.run(_run(args.config, loaded))
    except (StateDirError, SpoolError, WriteError, PortTaken) as exc:
        print(tr("error: {text}", text=exc), file=sys.stderr)
        return 1


async def _run(path: str, loaded: LoadedConfig) -> int:
    """Run agents until SIGTERM/SIGINT. SIGHUP re-reads the config: a valid one replaces the
    running agent (whose buffered messages are committed to the spool the next one reads);
    an invalid one is reported and the agent goes on as it was."""
    from vatio.agent.runtime import Agent

    loop = asyncio.get_running_loop()
    previous: LoadedConfig | None = None
    terminate = asyncio.Event()  # one for the whole process: a SIGTERM mid-hand-over counts
    handover: Handover | None = None
    remote, remote_task = _start_remote(path, loaded)
    while not terminate.is_set():
        stop = asyncio.Event()
        agent = Agent(loaded, handover)
        handover = None  # this agent owns it now
        pending: list[LoadedConfig] = []
        if remote is not None:  # it pushes configs through the same hand-over as SIGHUP
            remote.attach(agent, loaded, stop, pending)
        else:
            agent.config_info = _config_info(path)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _terminate, terminate, stop)
        # `kill -USR1 <pid>` logs the counters without stopping (benchmarks, field checks)
        loop.add_signal_handler(signal.SIGUSR1, _log_stats, agent)
        loop.add_signal_handler(signal.SIGHUP, _request_reload, path, loaded, agent, stop, pending)
        log.info(
            "vatio %s: site %s, %d device(s) on %d bus(es)",
            vatio_version(),
            loaded.config.site,
            len(loaded.devices),
            len(agent.scheduler.workers),
        )
        try:
            await agent.run(stop)
        except PortTaken as exc:
            if previous is None:
                raise
            log.error("reload failed: %s; going back to the previous config", exc)
            loaded, previous = previous, None
            continue
        if not pending:
            break
        handover = agent.handover  # held in memory while the disk refused: not lost
        previous, loaded = loaded, pending[0]  # the new agent says READY=1 once it polls
    if remote is not None and remote_task is not None:
        remote_task.cancel()
        await remote.close()
    return 0


def _start_remote(
    path: str, loaded: LoadedConfig
) -> tuple[RemoteService | None, asyncio.Task[None] | None]:
    """Remote management (agent/remote/), when the local config enables it."""
    if not loaded.config.remote.enabled or loaded.config.outputs.mqtt is None:
        if loaded.config.remote.enabled:
            log.warning("remote.enabled needs outputs.mqtt: remote management is off")
        return None, None
    from vatio.agent.remote.service import RemoteService

    remote = RemoteService(path, loaded)
    return remote, asyncio.create_task(remote.run(), name="remote")


def _config_info(path: str) -> dict[str, str] | None:
    from vatio.agent.remote.store import ConfigStore, origin_fields

    try:
        return origin_fields(ConfigStore(path).origin())
    except OSError:
        return None


def _terminate(terminate: asyncio.Event, stop: asyncio.Event) -> None:
    terminate.set()
    stop.set()


def _log_stats(agent: Agent) -> None:
    log.info("stats: %s", " ".join(f"{k}={v}" for k, v in agent.stats().items()))


def _request_reload(
    path: str, running: LoadedConfig, agent: Agent, stop: asyncio.Event, pending: list[LoadedConfig]
) -> None:
    if pending:
        return  # a reload is already under way
    sdnotify.notify("RELOADING=1")
    try:
        new = load_config(path)
    except ConfigError as exc:
        log.error(
            "reload refused, the agent goes on with its running config: %d problem(s) "
            "in %s: %s",
            len(exc.problems), path, "; ".join(map(str, exc.problems)),
        )  # fmt: skip
        sdnotify.notify("READY=1\nSTATUS=reload refused: the config has problems")
        return
    from vatio.agent.runtime import reload_blockers

    blockers = reload_blockers(running, new)
    if blockers:
        log.error(
            "reload refused: %s; messages not yet delivered are kept there. Restart the service "
            "to move them (systemctl restart vatio-agent)",
            "; ".join(blockers),
        )
        sdnotify.notify("READY=1\nSTATUS=reload refused")
        return
    log.info("reloading %s: handing over to the new config", path)
    pending.append(new)
    agent.reloading = True
    stop.set()


def cmd_ingest(args: argparse.Namespace) -> int:
    from vatio.agent.ingest.bridge import IngestBridge
    from vatio.agent.ingest.config import load_ingest_config

    try:
        cfg = load_ingest_config(args.config)
    except ConfigError as exc:
        report_problems(args.config, exc)
        return 1
    if args.client_id:
        cfg.mqtt.client_id = args.client_id
    setup_logging(args.verbose, args.log_format, secrets_of(cfg))

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await IngestBridge(cfg).run(stop)
        return 0

    try:
        return asyncio.run(run())
    except (WriteError, PortTaken) as exc:
        print(tr("error: {text}", text=exc), file=sys.stderr)
        return 1


def cmd_read(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    names = args.devices or list(loaded.entries)
    unknown = [n for n in names if n not in loaded.entries]
    if unknown:
        text = tr(
            "no enabled device named {names} in {path} (devices: {devices})",
            names=", ".join(unknown),
            path=args.config,
            devices=", ".join(loaded.entries),
        )
        print(tr("error: {text}", text=text), file=sys.stderr)
        return 1
    from vatio.agent.read import read_command

    try:
        return asyncio.run(read_command(loaded, names, args.json, args.watch))
    except KeyboardInterrupt:
        return 0


def cmd_history(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    from vatio.agent.history import history_command

    kind = "month" if args.months else "day"
    if args.bills:
        from vatio.agent.history import bills_command
        from vatio.common import clock

        return bills_command(loaded, args.json, clock.now())
    if args.balance:
        from vatio.agent.history import balance_command

        return balance_command(Path(loaded.config.state_dir), kind, args.json)
    return history_command(loaded.config.state_dir, kind, args.device, args.json)


def cmd_scan(args: argparse.Namespace) -> int:
    from vatio.agent.scan import make_client, report, scan
    from vatio.drivers.reading import DeviceError

    target: str = args.target
    serial_port = target if target.startswith(("/", "COM")) else None
    host, _, port = target.partition(":")
    try:
        low, _, high = args.units.partition("-")
        units = range(int(low), int(high or low) + 1)
    except ValueError:
        text = tr("--units {units}: write a range such as 1-247 or 5", units=args.units)
        print(tr("error: {text}", text=text), file=sys.stderr)
        return 1
    if serial_port:
        bus_yaml = (
            f"{{type: modbus-rtu, port: {serial_port}, baudrate: {args.baudrate or 9600}, "
            f"parity: {args.parity}}}"
        )
    else:
        kind = "modbus-rtu-tcp" if args.rtu_over_tcp else "modbus-tcp"
        bus_yaml = f"{{type: {kind}, host: {host}, port: {port or 502}}}"

    async def run() -> int:
        client = make_client(
            host=None if serial_port else host,
            tcp_port=int(port or 502),
            serial_port=serial_port,
            baudrate=args.baudrate,
            parity=args.parity,
            rtu_over_tcp=args.rtu_over_tcp,
            timeout=args.timeout,
        )
        try:
            await client.open()
        except DeviceError as exc:  # the port or address, and which setting, with the fix
            client.close()
            print(tr("error: {text}", text=f"{exc}: {exc.hint}"), file=sys.stderr)
            return 1
        try:
            found = await scan(client, units, progress=not args.quiet)
        finally:
            client.close()
        print(report(found, "scanned", bus_yaml, client.garbled, client.bad))
        return 0 if found or not client.garbled else 1

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return 130


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; commands from other packages (``vatio.commands``) are added unless
    ``argv`` names a built-in one: loading them costs ~0.1 s (importlib.metadata and the
    simulators) that `vatio check` and `vatio read`, run many times a day, need not pay."""
    parser = argparse.ArgumentParser(
        prog="vatio", description="Vatio edge agent: meters and sensors to MQTT."
    )
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent (what the service runs)")
    p.add_argument("-c", "--config", required=True, help="config file (YAML)")
    _logging_options(p)
    p.set_defaults(func=cmd_run)

    add_init_parser(sub)

    p = sub.add_parser("check", help="validate a config and show each device's poll plan")
    p.add_argument("-c", "--config", required=True, help="config file (YAML)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("read", help="poll devices once and print their values")
    p.add_argument("-c", "--config", required=True, help="config file (YAML)")
    p.add_argument("devices", nargs="*", metavar="DEVICE", help="device names (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--watch", action="store_true", help="poll every second until Ctrl-C")
    p.set_defaults(func=cmd_read)

    p = sub.add_parser("history", help="energy, peaks and emissions of past days or months")
    p.add_argument("-c", "--config", required=True, help="config file (YAML)")
    p.add_argument("device", nargs="?", help="one device (default: all)")
    p.add_argument("--months", action="store_true", help="closed months instead of days")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--bills", action="store_true", help="the CFE bill of each billing period, line by line"
    )
    p.add_argument(
        "--balance", action="store_true", help="the site balance: import, export, generation"
    )
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("ingest", help="the ingest bridge: MQTT → InfluxDB / VictoriaMetrics")
    p.add_argument("-c", "--config", required=True, help="ingest config file (YAML)")
    p.add_argument("--client-id", help="this bridge's MQTT client id (unique and stable)")
    _logging_options(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("scan", help="find Modbus devices on a serial port or TCP gateway")
    p.add_argument("target", help="serial port (/dev/ttyUSB0) or HOST[:PORT] of a gateway")
    p.add_argument(
        "--baudrate",
        type=int,
        help="the line's baud rate (default 9600 on a serial port; for a gateway, its "
        "RS-485 side: each read then waits for its time on the wire)",
    )
    p.add_argument("--parity", choices=["N", "E", "O"], default="N")
    p.add_argument("--rtu-over-tcp", action="store_true", help="the gateway speaks RTU over TCP")
    p.add_argument("--units", default="1-247", help="unit ids to probe (default 1-247)")
    p.add_argument(
        "--timeout",
        type=float,
        default=0.2,
        help="seconds a device may take to answer, on top of each read's time on the wire",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_scan)

    # a technician runs check and read many times a day: when the command is one of the
    # above, the MQTT clients of remote and fleet-status and the plugins are not imported
    words = [a for a in argv or () if not a.startswith("-")]
    if argv is not None and words and words[0] in sub.choices:
        return parser
    from vatio.agent.remote.client import register as register_remote

    register_remote(sub)
    from vatio.agent.fleetstatus import add_fleet_status_parser

    add_fleet_status_parser(sub)
    from importlib.metadata import entry_points

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


def _logging_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument(
        "--log-format",
        choices=get_args(LogFormat),
        default="auto",
        help="auto: journal under systemd, text on a terminal; json for log shippers",
    )


def _unavailable(name: str, missing: str) -> Command:
    def run(_: argparse.Namespace) -> int:
        print(
            f"error: `vatio {name}` needs {missing}; install it with: pip install 'vatio[demo]'",
            file=sys.stderr,
        )
        return 1

    return run


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    func: Command = args.func
    try:
        simulated = clock.use_environment()  # VATIO_SIMULATED_TIME: replays and tests
    except ValueError as exc:
        print(tr("error: {text}", text=exc), file=sys.stderr)
        return 2
    if simulated is not None:
        print(f"note: simulated time, {simulated.speed:g}× real time", file=sys.stderr)
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `vatio check … | head`: the reader left; end quietly, as CLIs do (Python docs'
        # recipe: point stdout at devnull so the interpreter's final flush cannot fail)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

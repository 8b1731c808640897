"""``vatio demo``: the whole path on one machine, with nothing but Python.

It starts simulated meters (pymodbus servers on 127.0.0.1 speaking real Modbus/TCP), a street
air-quality sensor (a PMS5003 simulator speaking its real frames on a pseudo-terminal Python
opens itself, :class:`~vatio.simulators.serial_pair.PtyPair`), an MQTT broker (amqtt in this
process, or ``--mqtt URL`` for an external one), and the agent. A live screen shows what
arrives *at the broker*: every figure on it made the full trip sensor → agent → MQTT.

Besides the raw readings it shows what the metrics are for: the GDMTH tariff period now,
15-minute demand against a limit (the ``general`` meter has one, set a little above its load
at start, and a large machine starts on it 30 s into the demo, then every 30 minutes, for 10
minutes: the projected demand alarm fires within the first minutes), energy, an example cost
and emissions today, and the street's PM2.5, NowCast, US AQI and Mexico's IAS. NowCast and
the IAS need 12 complete hours, which a demo started seconds ago does not have: the sensor's
past 24 hours are pre-loaded into the agent's metrics state from the same simulated curve.
Ctrl-C stops it; ``--duration`` stops it by itself. ``VATIO_SIMULATED_TIME`` (common/clock.py)
makes it run faster: ``VATIO_SIMULATED_TIME=$(date -Iseconds),30 vatio demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import signal
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import aiomqtt
import yaml

from vatio.agent.config import MetricsConfig, parse_config_text
from vatio.agent.metrics.air import LEVEL_NAMES, AirQualityMetrics
from vatio.agent.metrics.engine import MetricsStore
from vatio.agent.metrics.tariff import period_at
from vatio.agent.runtime import Agent
from vatio.common import clock
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.brokers import InProcessBroker, free_port
from vatio.simulators.cli import device_seed
from vatio.simulators.configs import loopback_config
from vatio.simulators.load_curve import FactoryLoad, shift_factor
from vatio.simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter
from vatio.simulators.serial_pair import PtyPair
from vatio.simulators.uart_sensors import Pms5003Sim, city_pm25

SITE = "demo"
AGENT_ID = "gw-demo"

# (device, bus, unit, profile, interval): a switchboard gateway with three meters, and a
# compressor meter with its own Ethernet port
DEMO_DEVICES = [
    ("general", "tablero", 1, "eastron_sdm630", "1s"),
    ("linea-1", "tablero", 2, "eastron_sdm630", "1s"),
    ("oficinas", "tablero", 3, "eastron_sdm120", "2s"),
    ("compresor", "compresores", 1, "eastron_sdm630", "1s"),
]
AIR_DEVICE = "aire-calle"  # a PMS5003 on a street pole, on its own UART
AIR_INTERVAL = "5s"
LIMITED = "general"  # the meter with a demand limit and a machine that pushes it
BILL_DIVISION = "valle-de-mexico-centro"  # the shipped (example) price table has it
METRICS_INTERVAL = "5s"  # metrics messages this often (the agent's default is 60 s)
# cost today per meter is energy × this EXAMPLE price, not a CFE tariff; the site's running
# GDMTH bill (agent/metrics/bill.py, on `general` as the grid meter) is shown below the meters
EXAMPLE_PRICE_MXN_PER_KWH = 2.50


def demand_setup(now: float, rated_kw: float = 60.0) -> tuple[float, float]:
    """(limit kW, machine kW) for the limited meter: its load now averages ~rated × shift
    (plus ~2 % from motor starts); the limit sits ~15 % + 8 kW above that, rounded up to 5 kW,
    and the machine, half the rated power, takes any block it runs in well above it."""
    base = rated_kw * shift_factor(now)
    return 5 * math.ceil((base * 1.15 + 8) / 5), 0.5 * rated_kw


def machine_starts(t0: float, kw: float) -> tuple[tuple[float, float, float], ...]:
    """The machine starts 30 s into the demo, then every 30 minutes, for 10 minutes."""
    return tuple((t0 + 30 + k * 1800, 600.0, kw) for k in range(48))


def seed_air_history(state_dir: Path, device: str, now: float, seed: int) -> None:
    """Write the street sensor's last 24 hours (one reading a minute from
    :func:`~vatio.simulators.uart_sensors.city_pm25`, as the PMS5003 simulator serves it) into
    the agent's metrics state, so NowCast and the IAS have their 12 hours at once."""
    cfg = MetricsConfig()
    air = AirQualityMetrics(cfg.ias_stage, cfg.ias_adjustment, co2_limit_ppm=cfg.co2_limit_ppm)
    t = (now // 3600 - 24) * 3600
    while t < now:
        pm25 = round(city_pm25(t, seed))
        air.observe({"pm2_5_ugm3": float(pm25), "pm10_ugm3": float(round(pm25 * 1.5))}, t)
        t += 60
    store = MetricsStore(state_dir / "metrics.sqlite")
    try:
        store.save({device: {"air": air.state()}})
    finally:
        store.close()


@dataclass
class DeviceView:
    values: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, str] = field(default_factory=dict)  # why a metric is null or flagged
    state: str = "?"
    seq: int = 0
    received_at: float = 0.0
    alarm: dict[str, Any] = field(default_factory=dict)  # the last projected-demand event


@dataclass
class Site:
    """What the screen needs besides the broker's messages."""

    timezone: str = "America/Mexico_City"
    region: str = "SIN"
    limits: dict[str, float] = field(default_factory=dict)  # device → demand limit kW
    air_port: str = ""


class LiveTable:
    """Subscribes to the site's topics and renders the latest values per device."""

    COLUMNS = (
        ("power kW", ("active_power_w",), 0.001, "{:>9.2f}"),
        ("V L1", ("voltage_l1_v", "voltage_v"), 1, "{:>7.1f}"),
        ("A L1", ("current_l1_a", "current_a"), 1, "{:>7.1f}"),
        ("PF", ("power_factor",), 1, "{:>6.3f}"),
        ("Hz", ("frequency_hz",), 1, "{:>6.2f}"),
        ("energy kWh", ("energy_import_kwh",), 1, "{:>12.3f}"),
    )

    def __init__(
        self, url_host: str, port: int, broker_label: str, out: TextIO, site: Site | None = None
    ) -> None:
        self.host = url_host
        self.port = port
        self.label = broker_label
        self.out = out
        self.site = site or Site()
        self.devices: dict[str, DeviceView] = {}
        self.events: deque[str] = deque(maxlen=3)
        self.agent_state = "?"
        self.messages = 0
        self.tty = out.isatty()

    async def listen(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier="vatio-demo-view") as c:
                    await c.subscribe(f"vatio/v1/{SITE}/+/+", qos=1)
                    async for msg in c.messages:
                        self._on_message(str(msg.topic), msg.payload)
            except aiomqtt.MqttError:
                await asyncio.sleep(1)

    def _on_message(self, topic: str, payload: Any) -> None:
        try:
            body = json.loads(payload)
        except (ValueError, TypeError):
            return
        self.messages += 1
        _, _, _, device, stream = topic.split("/")
        if device == AGENT_ID:
            if stream == "status":
                self.agent_state = body.get("state", "?")
            return
        view = self.devices.setdefault(device, DeviceView())
        if stream == "telemetry":
            view.values = body.get("values", {})
            view.seq = body.get("seq", 0)
            view.received_at = time.time()
        elif stream == "status":
            view.state = body.get("state", "?")
        elif stream == "metrics":
            view.metrics = body.get("values", {})
            view.quality = body.get("quality") or {}
        elif stream == "events":
            kind = body.get("event", "?")
            if kind.startswith("demand_projected_"):
                view.alarm = body
            stamp = _local(clock.now(), self.site.timezone).strftime("%H:%M:%S")
            line = f"  {stamp} {device} {kind}: {body.get('message', '')}"
            self.events.append(line[:109] + "…" if self.tty and len(line) > 110 else line)

    def render(self) -> str:
        now = time.time()
        head = (
            f"{'device':<11} {'state':<8}"
            + "".join(f" {c[0]:>{len(c[3].format(0.0))}}" for c in self.COLUMNS)
            + f" {'seq':>6} {'age':>6}"
        )
        lines = [
            f"Vatio demo · site {SITE} · broker {self.label} · "
            f"{_local(clock.now(), self.site.timezone):%H:%M:%S} · Ctrl-C to stop",
            "",
            head,
        ]
        # "_…": site-level messages (the bill and balance), not a meter
        electrical = [n for n in sorted(self.devices) if n != AIR_DEVICE and n[:1] != "_"]
        for name in electrical:
            v = self.devices[name]
            row = f"{name:<11} {v.state:<8}"
            for _, keys, factor, fmt in self.COLUMNS:
                value = next((v.values[k] for k in keys if v.values.get(k) is not None), None)
                width = len(fmt.format(0.0))
                row += " " + (fmt.format(value * factor) if value is not None else "—".rjust(width))
            age = f"{now - v.received_at:.1f}s" if v.received_at else "—"
            row += f" {v.seq:>6} {age:>6}"
            lines.append(row)
        lines += self._metrics(electrical)
        lines += self._air()
        if self.events:
            lines += ["eventos · events:", *self.events]
        # one 24-line terminal screen: no blank lines below the tariff line
        lines += [f"agent {AGENT_ID}: {self.agent_state} · {self.messages} messages received"]
        return "\n".join(lines)

    def _metrics(self, electrical: list[str]) -> list[str]:
        """Energy, example cost, emissions today and 15-minute demand, per meter."""
        now = clock.now()
        local = _local(now, self.site.timezone)
        period = period_at(local.replace(tzinfo=None), self.site.region)  # type: ignore[arg-type]
        lines = [
            "",
            f"tarifa GDMTH {self.site.region} · {local:%H:%M} · periodo ahora / period now: "
            f"{period}",
            f"{'métricas':<11} {'today kWh':>10} {'cost MXN*':>10} {'kgCO2e':>8}"
            f" {'block kW':>8} {'proj. kW':>9} {'limit kW':>9}  demand alarm",
        ]
        for name in electrical:
            m = self.devices[name].metrics
            kwh = m.get("energy_today_kwh")
            limit = self.site.limits.get(name)
            lines.append(
                f"{name:<11} {_num(kwh, 10, 3)} "
                f"{_num(None if kwh is None else kwh * EXAMPLE_PRICE_MXN_PER_KWH, 10, 2)} "
                f"{_num(m.get('emissions_today_kgco2e'), 8, 3)} "
                f"{_num(m.get('demand_current_kw'), 8, 1)} "
                f"{_num(m.get('demand_projected_kw'), 9, 1)} {_num(limit, 9, 0)}  "
                f"{self._alarm(self.devices[name], now)}"
            )
        lines.append(
            f"* costo de ejemplo / example cost: today kWh × {EXAMPLE_PRICE_MXN_PER_KWH:.2f} MXN,"
            " not a CFE price"
        )
        lines.append(self._bill())
        return lines

    def _bill(self) -> str:
        """The site's running GDMTH bill of the month (the `_site` metrics message)."""
        site = self.devices.get("_site")
        if site is None:
            return "recibo del mes / bill so far: waiting"
        total = site.metrics.get("bill_total_mxn")
        flag = site.quality.get("bill_total_mxn")
        if total is None:
            return f"recibo del mes / bill so far: — ({flag or 'not yet'})"
        note = " · precios de ejemplo / example prices" if flag == "example_prices" else ""
        return (
            f"recibo del mes / bill so far ({LIMITED}, GDMTH): {total:,.2f} MXN · proyectado / "
            f"projected {_num(site.metrics.get('bill_projected_total_mxn'), 0, 2)} MXN{note}"
        )

    @staticmethod
    def _alarm(view: DeviceView, now: float) -> str:
        a = view.alarm
        if not a:
            return ""
        end = dt.datetime.fromisoformat(a["block_end"].replace("Z", "+00:00")).timestamp()
        if a.get("event") == "demand_projected_high":
            if now >= end:
                return f"(last: {a['projected_kw']:.1f} kW projected, block ended)"
            return (  # raised at projected_kw; the time left counts down
                f"ALARMA · HIGH: {a['projected_kw']:.1f} > {a['limit_kw']:g} kW, "
                f"{(end - now) / 60:.1f} min left"
            )
        return f"ok: back to {a['projected_kw']:.1f} kW"

    def _air(self) -> list[str]:
        view = self.devices.get(AIR_DEVICE)
        if view is None:
            return [f"aire calle / street air ({AIR_DEVICE}, PMS5003): waiting"]
        m, v = view.metrics, view.values
        ias = m.get("ias_mx")
        ias_text = "—" if ias is None else f"{ias:.0f} {LEVEL_NAMES.get(int(ias), '?')}"
        return [
            f"aire calle / street air ({AIR_DEVICE}, PMS5003 on {self.site.air_port}, "
            f"{view.state}):",
            f"  PM2.5 {_num(v.get('pm2_5_ugm3'), 0, 0)} µg/m³ · NowCast "
            f"{_num(m.get('pm2_5_nowcast_ugm3'), 0, 1)} µg/m³ · AQI (US) "
            f"{_num(m.get('aqi_us'), 0, 0)} · Índice AIRE Y SALUD (IAS) {ias_text}",
        ]

    async def show(self, every: float) -> None:  # real seconds, whatever the clock
        while True:
            text = self.render()
            if self.tty:
                self.out.write("\x1b[H\x1b[2J" + text + "\n")  # redraw in place
            else:
                self.out.write(text + "\n\n")
            self.out.flush()
            await asyncio.sleep(every)


def _local(ts: float, timezone: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, ZoneInfo(timezone))


def _num(value: float | None, width: int, decimals: int) -> str:
    if value is None:
        return "—".rjust(width)
    return f"{value:>{width}.{decimals}f}"


async def run_demo(mqtt_url: str | None, duration: float | None, out: TextIO = sys.stdout) -> int:
    broker: InProcessBroker | None = None
    if mqtt_url is None:
        broker = InProcessBroker()
        await broker.start()
        mqtt_url, label = broker.url, f"{broker.url} (amqtt, in-process)"
    else:
        label = mqtt_url
    t0 = clock.now()
    limit, machine_kw = demand_setup(t0)
    sims: list[ModbusTcpSimulator] = []
    ports: dict[str, int] = {}
    for bus in dict.fromkeys(d[1] for d in DEMO_DEVICES):
        meters = [
            SimulatedMeter(
                unit,
                load_profile(profile),
                seed=device_seed(name),
                load=FactoryLoad(device_seed(name), 60.0, starts=machine_starts(t0, machine_kw))
                if name == LIMITED
                else None,
            )
            for name, b, unit, profile, _ in DEMO_DEVICES
            if b == bus
        ]
        sim = ModbusTcpSimulator(meters, "127.0.0.1", free_port())
        ports[bus] = await sim.start()
        sims.append(sim)
    pty = PtyPair().start()
    air_seed = device_seed(AIR_DEVICE)
    pms = Pms5003Sim(pty.path, seed=air_seed)
    await pms.start_fd(pty.fd)
    tasks: list[asyncio.Task[Any]] = []
    with tempfile.TemporaryDirectory(prefix="vatio-demo-") as state_dir:
        # amqtt speaks MQTT 3.1.1 only (stack-notes §3.4)
        options = "protocol: '3.1.1'" if broker is not None else ""
        text = loopback_config(SITE, AGENT_ID, state_dir, ports, DEMO_DEVICES, mqtt_url, options)
        doc = yaml.safe_load(text)
        doc["buses"]["calle"] = {"type": "serial", "port": pty.path}
        doc["devices"][AIR_DEVICE] = {"bus": "calle", "driver": "pms5003", "interval": AIR_INTERVAL}
        doc["devices"][LIMITED]["metrics"] = {"demand_limit_kw": limit}
        doc["devices"][LIMITED]["role"] = "grid"  # the CFE supply point: the bill reads it
        doc["bill"] = {"division": BILL_DIVISION}
        doc["metrics"] = {"interval": METRICS_INTERVAL}
        # the simulators and the agent share this machine's clock: whether NTP has set it
        # does not change what the demo shows (an unsynchronised clock would hold metrics)
        doc["time"] = {"require_sync": False}
        loaded = parse_config_text(yaml.safe_dump(doc, sort_keys=False), file="<demo>")
        seed_air_history(Path(state_dir), AIR_DEVICE, t0, air_seed)
        agent = Agent(loaded)
        cfg = loaded.config.outputs.mqtt
        assert cfg is not None
        site = Site(
            loaded.config.metrics.timezone,
            loaded.config.metrics.region,
            {LIMITED: limit},
            pty.path,
        )
        table = LiveTable(cfg.host, cfg.port, label, out, site)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        tasks = [
            asyncio.create_task(agent.run(stop)),
            asyncio.create_task(table.listen()),
            asyncio.create_task(table.show(1.0 if table.tty else 5.0)),
        ]
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
            stop.set()
            await tasks[0]
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            out.write(table.render() + "\n")
            for sim in sims:
                await sim.stop()
            await pms.stop()
            pty.stop()
            if broker is not None:
                await broker.stop()
    return 0


def demo_command(sub: Any) -> None:
    """Register ``vatio demo`` (entry point ``vatio.commands``)."""
    p = sub.add_parser("demo", help="simulated meters + broker + agent, with a live table")
    p.add_argument("--mqtt", metavar="URL", help="use this broker (mqtt://HOST:PORT)")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop by itself")

    def run(args: argparse.Namespace) -> int:
        if args.mqtt is not None and not args.mqtt.startswith(("mqtt://", "mqtts://")):
            print(f"error: --mqtt {args.mqtt}: write mqtt://HOST:PORT", file=sys.stderr)
            return 1
        return asyncio.run(run_demo(args.mqtt, args.duration))

    p.set_defaults(func=run)

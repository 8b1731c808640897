"""``vatio demo``: the whole path on one machine, with nothing but Python.

It starts simulated meters (pymodbus servers on 127.0.0.1 speaking real Modbus/TCP), an MQTT
broker (amqtt in this process, or ``--mqtt URL`` for an external one), and the agent. A live
table shows what arrives *at the broker*: every figure on screen made the full trip
meter → Modbus → agent → MQTT. Ctrl-C stops it; ``--duration`` stops it by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiomqtt

from vatio.agent.config import parse_config_text
from vatio.agent.runtime import Agent
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.brokers import InProcessBroker, free_port
from vatio.simulators.cli import device_seed
from vatio.simulators.configs import loopback_config
from vatio.simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter

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


@dataclass
class DeviceView:
    values: dict[str, Any] = field(default_factory=dict)
    state: str = "?"
    seq: int = 0
    received_at: float = 0.0


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

    def __init__(self, url_host: str, port: int, broker_label: str, out: TextIO) -> None:
        self.host = url_host
        self.port = port
        self.label = broker_label
        self.out = out
        self.devices: dict[str, DeviceView] = {}
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

    def render(self) -> str:
        now = time.time()
        head = (
            f"{'device':<11} {'state':<8}"
            + "".join(f" {c[0]:>{len(c[3].format(0.0))}}" for c in self.COLUMNS)
            + f" {'seq':>6} {'age':>6}"
        )
        lines = [
            f"Vatio demo · site {SITE} · broker {self.label} · "
            f"{time.strftime('%H:%M:%S')} · Ctrl-C to stop",
            "",
            head,
        ]
        for name in sorted(self.devices):
            v = self.devices[name]
            row = f"{name:<11} {v.state:<8}"
            for _, keys, factor, fmt in self.COLUMNS:
                value = next((v.values[k] for k in keys if v.values.get(k) is not None), None)
                width = len(fmt.format(0.0))
                row += " " + (fmt.format(value * factor) if value is not None else "—".rjust(width))
            age = f"{now - v.received_at:.1f}s" if v.received_at else "—"
            row += f" {v.seq:>6} {age:>6}"
            lines.append(row)
        lines += ["", f"agent {AGENT_ID}: {self.agent_state} · {self.messages} messages received"]
        return "\n".join(lines)

    async def show(self, every: float) -> None:
        while True:
            text = self.render()
            if self.tty:
                self.out.write("\x1b[H\x1b[2J" + text + "\n")  # redraw in place
            else:
                self.out.write(text + "\n\n")
            self.out.flush()
            await asyncio.sleep(every)


async def run_demo(mqtt_url: str | None, duration: float | None, out: TextIO = sys.stdout) -> int:
    broker: InProcessBroker | None = None
    if mqtt_url is None:
        broker = InProcessBroker()
        await broker.start()
        mqtt_url, label = broker.url, f"{broker.url} (amqtt, in-process)"
    else:
        label = mqtt_url
    sims: list[ModbusTcpSimulator] = []
    ports: dict[str, int] = {}
    for bus in dict.fromkeys(d[1] for d in DEMO_DEVICES):
        meters = [
            SimulatedMeter(unit, load_profile(profile), seed=device_seed(name))
            for name, b, unit, profile, _ in DEMO_DEVICES
            if b == bus
        ]
        sim = ModbusTcpSimulator(meters, "127.0.0.1", free_port())
        ports[bus] = await sim.start()
        sims.append(sim)
    tasks: list[asyncio.Task[Any]] = []
    with tempfile.TemporaryDirectory(prefix="vatio-demo-") as state_dir:
        # amqtt speaks MQTT 3.1.1 only (stack-notes §3.4)
        options = "protocol: '3.1.1'" if broker is not None else ""
        text = loopback_config(SITE, AGENT_ID, state_dir, ports, DEMO_DEVICES, mqtt_url, options)
        loaded = parse_config_text(text, file="<demo>")
        agent = Agent(loaded)
        cfg = loaded.config.outputs.mqtt
        assert cfg is not None
        table = LiveTable(cfg.host, cfg.port, label, out)
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

"""A fleet of agents on MQTT, without the agents: the telemetry of ``agents × devices`` meters
(default 1,000 × 10), as the contract says, for ingest tests and benchmarks.

Every agent has its own site (``site-0001``), as an ACL would have it; every device sends one
telemetry message per round, with ``seq`` = round + 1 and ``ts`` = ``start + round × interval``,
so what a database should hold afterwards is known exactly: ``agents × devices × rounds``
points, one per (site, device, ts). It is published over a few connections (not one per
agent: this simulates the traffic, not a thousand TCP sessions).

Faults, for the fleet features (issue 15): ``drop`` leaves out messages at known
(agent, device, seq), so the gaps a bridge reports can be checked exactly; :meth:`statuses`
gives every agent's and device's retained status, with ``offline`` agents (as their last will
says it) and ``degraded`` devices (with a reason), and a location and labels for each.

``vatio fleet --url mqtt://127.0.0.1:PORT --rounds 10`` publishes from the command line
(``--statuses`` adds the retained statuses, ``--offline N`` and ``--degraded N`` faults).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

WINDOW = 5000  # messages in flight per connection

QUANTITIES = (
    "voltage_l1_v",
    "current_l1_a",
    "active_power_w",
    "reactive_power_var",
    "power_factor",
    "frequency_hz",
    "energy_import_kwh",
    "energy_export_kwh",
)


@dataclass(frozen=True)
class Fleet:
    agents: int = 1000
    devices: int = 10
    start_ms: int = 1_795_000_000_000  # 2026-11-18T…: in the past, inside any retention
    interval_ms: int = 1000
    seed: int = 0
    drop: frozenset[tuple[int, int, int]] = frozenset()  # (agent, device, seq) not sent
    version: str = "0.0.0-fleet"
    # per agent and round, also a ``metrics`` message of an air sensor ``aire-01`` (IAS, AQI,
    # PM means) and of meter-01 (demand, energy today), and on round 0 a demand event: what
    # the fleet dashboard draws
    metrics: bool = False

    @property
    def per_round(self) -> int:
        return self.agents * self.devices

    def site(self, agent: int) -> str:
        return f"site-{agent:04d}"

    def message(self, agent: int, device: int, round_: int) -> tuple[str, bytes]:
        site, name = self.site(agent), f"meter-{device:02d}"
        ts_ms = self.start_ms + round_ * self.interval_ms
        phase = (agent * 31 + device * 7 + self.seed) % 360
        power = 5000.0 + 4000.0 * math.sin(math.radians(phase + round_))
        values = {
            "voltage_l1_v": round(230.0 + (phase % 7) * 0.3, 1),
            "current_l1_a": round(power / 230.0, 3),
            "active_power_w": round(power, 1),
            "reactive_power_var": round(power * 0.3, 1),
            "power_factor": 0.958,
            "frequency_hz": 60.0,
            "energy_import_kwh": round(1000.0 + round_ * power / 3.6e6, 4),
            "energy_export_kwh": 0.0,
        }
        body = {
            "ts": _rfc3339_ms(ts_ms),
            "seq": round_ + 1,
            "site": site,
            "device": name,
            "agent": f"gw-{agent:04d}",
            "values": values,
        }
        payload = json.dumps(body, separators=(",", ":")).encode()
        return f"vatio/v1/{site}/{name}/telemetry", payload

    def round(self, round_: int) -> Iterator[tuple[str, bytes]]:
        for agent in range(1, self.agents + 1):
            for device in range(1, self.devices + 1):
                if self.drop and (agent, device, round_ + 1) in self.drop:
                    continue
                yield self.message(agent, device, round_)
            if self.metrics:
                yield from self.metric_messages(agent, round_)

    def metric_messages(self, agent: int, round_: int) -> Iterator[tuple[str, bytes]]:
        site, gw = self.site(agent), self.agent_id(agent)
        ts = _rfc3339_ms(self.start_ms + round_ * self.interval_ms)
        pm = 10.0 + (agent * 13 % 90)
        level = 1 + min(4, int(pm // 20))
        air = {"ts": ts, "seq": round_ + 1, "site": site, "device": "aire-01", "agent": gw,
               "values": {"pm2_5_1h_ugm3": pm, "pm2_5_24h_ugm3": pm * 0.9,
                          "aqi_us": round(pm * 2.5, 1), "ias_mx": float(level)}}  # fmt: skip
        yield f"vatio/v1/{site}/aire-01/metrics", _json(air)
        meter = {"ts": ts, "seq": round_ + 1, "site": site, "device": "meter-01", "agent": gw,
                 "values": {"demand_15m_kw": 40.0 + agent % 30, "energy_today_kwh": 100.0
                            + round_ * 0.01}}  # fmt: skip
        yield f"vatio/v1/{site}/meter-01/metrics", _json(meter)
        if round_ == 0:
            event = {"ts": ts, "seq": 1, "site": site, "device": "meter-01", "agent": gw,
                     "event": "demand_projected_high",
                     "message": "block projected above the limit"}  # fmt: skip
            yield f"vatio/v1/{site}/meter-01/events", _json(event)

    def agent_id(self, agent: int) -> str:
        return f"gw-{agent:04d}"

    def location(self, agent: int, device: int = 0) -> dict[str, float]:
        """Spread over Mexico City's valley (19.2…19.6 N, 99.0…99.3 W), deterministic."""
        lat = 19.2 + ((agent * 7919 + device * 31) % 4000) / 10000
        lon = -99.3 + ((agent * 104729 + device * 17) % 3000) / 10000
        return {"lat": round(lat, 5), "lon": round(lon, 5)}

    def statuses(
        self,
        offline: frozenset[int] = frozenset(),
        degraded: frozenset[tuple[int, int]] = frozenset(),
        now_ms: int | None = None,
    ) -> Iterator[tuple[str, bytes, bool]]:
        """Every agent's and device's retained status: ``offline`` agents as their will has
        it (and their devices' last statuses), ``degraded`` (agent, device) with a reason."""
        ts = _rfc3339_ms(now_ms if now_ms is not None else int(time.time() * 1000))
        for agent in range(1, self.agents + 1):
            site, gw = self.site(agent), self.agent_id(agent)
            zone = ("centro", "norte", "sur", "oriente", "poniente")[agent % 5]
            labels = {"zone": zone}
            body: dict[str, object] = {"ts": ts, "seq": 1, "site": site, "device": gw,
                                       "agent": gw, "labels": labels,
                                       "location": self.location(agent)}  # fmt: skip
            if agent in offline:
                body["state"] = "offline"
            else:
                names = [f"meter-{d:02d}" for d in range(1, self.devices + 1)]
                body.update(state="online", version=self.version, since=1.0e9,
                            devices=names, backlog=agent % 3, spool_dropped=0)  # fmt: skip
            yield f"vatio/v1/{site}/{gw}/status", _json(body), True
            for device in range(1, self.devices + 1):
                name = f"meter-{device:02d}"
                bad = (agent, device) in degraded
                dev: dict[str, object] = {
                    "ts": ts, "seq": 1, "site": site, "device": name, "agent": gw,
                    "state": "degraded" if bad else "online",
                    "reason": "timeout: no answer from unit 1" if bad else "polling",
                    "labels": labels, "location": self.location(agent, device),
                }  # fmt: skip
                yield f"vatio/v1/{site}/{name}/status", _json(dev), True

    def messages(self, rounds: int, first_round: int = 0) -> Iterator[tuple[str, bytes]]:
        for r in range(first_round, first_round + rounds):
            yield from self.round(r)


def _json(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _rfc3339_ms(ms: int) -> str:
    seconds, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{milli:03d}Z"


def publish(
    url: str,
    messages: Iterable[tuple[str, bytes] | tuple[str, bytes, bool]],
    connections: int = 2,
    rate: float | None = None,
    client_prefix: str = "vatio-fleet",
    timeout: float = 600.0,
    login: tuple[str, str] | None = None,
) -> int:
    """Publish at QoS 1 over ``connections`` paho clients, at most ``rate`` messages per
    second; returns how many the broker acknowledged (all of them, or it raises). A third
    element True in a message retains it."""
    parts = urlsplit(url)
    clients = []
    for i in range(connections):
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{client_prefix}-{i}")
        if login is not None:
            c.username_pw_set(*login)
        c.reconnect_delay_set(0.2, 2.0)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        c.loop_start()
        clients.append(c)
    # at most WINDOW messages queued in paho per client: paho numbers messages 1..65535 and a
    # longer queue would reuse a number still waiting, silently replacing that message
    window = threading.Semaphore(WINDOW * connections)
    for c in clients:
        c.on_publish = lambda *a: window.release()
    sent = 0
    started = time.monotonic()
    try:
        for topic, payload, *retain in messages:
            if not window.acquire(timeout=timeout):
                raise TimeoutError(f"{url} acknowledged nothing for {timeout:g} s")
            info = clients[sent % connections].publish(
                topic, payload, qos=1, retain=bool(retain and retain[0])
            )
            # NO_CONN: the broker is restarting; paho keeps a QoS 1 message and sends it on
            # reconnecting, and its PUBACK is counted below like any other
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise ConnectionError(f"publish to {url} failed: {mqtt.error_string(info.rc)}")
            sent += 1
            if rate is not None and sent % 100 == 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        for _ in range(WINDOW * connections):  # every slot back: every message acknowledged
            if not window.acquire(timeout=timeout):
                raise TimeoutError(f"{url} did not acknowledge every message in {timeout:g} s")
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
    return sent


def fleet_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``vatio fleet`` (entry point ``vatio.commands``)."""
    p = sub.add_parser("fleet", help="publish the telemetry of a simulated fleet of agents")
    p.add_argument("--url", default="mqtt://127.0.0.1:1883", help="the broker")
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--devices", type=int, default=10, help="devices per agent")
    p.add_argument("--rounds", type=int, default=10, help="messages per device")
    p.add_argument("--rate", type=float, help="messages per second (default: as fast as it can)")
    p.add_argument("--statuses", action="store_true", help="also publish retained statuses")
    p.add_argument("--offline", type=int, default=0, help="this many agents offline (statuses)")
    p.add_argument("--degraded", type=int, default=0, help="this many devices degraded")
    p.add_argument("--username", help="MQTT login (with --password)")
    p.add_argument("--password", default="")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    fleet = Fleet(args.agents, args.devices)
    started = time.monotonic()
    messages: list[Iterable[tuple[str, bytes] | tuple[str, bytes, bool]]] = []
    if args.statuses:
        offline = frozenset(range(1, min(args.offline, args.agents) + 1))
        degraded = frozenset((1 + i % args.agents, 1) for i in range(args.degraded))
        messages.append(fleet.statuses(offline, degraded))
    messages.append(fleet.messages(args.rounds))
    login = (args.username, args.password) if args.username else None
    n = publish(args.url, itertools.chain.from_iterable(messages), rate=args.rate, login=login)
    took = time.monotonic() - started
    print(f"published {n} messages ({fleet.per_round} per round) in {took:.1f} s")
    return 0

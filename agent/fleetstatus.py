"""``vatio fleet-status``: the fleet's state from the broker's retained statuses (issue 15).

Reads ``vatio/v1/+/+/status`` (retained: the broker hands the newest of each at once), prints a
table — site, agent, state, version, since, devices online/degraded, backlog — or ``--json``,
and exits 1 when an agent is offline (0 when none is, 2 when the broker cannot be read), for
cron or a monitoring system. Named ``fleet-status`` because ``vatio fleet`` is the load
generator (simulators/fleet.py).

**Knowing when every retained message has come.** MQTT has no "end of retained messages".
Mosquitto sends a subscription's retained messages right after its SUBACK, in order on the
one TCP stream, so a *second* SUBSCRIBE (to a topic no one publishes) sent after the first one
is answered after all of them: its SUBACK marks the end. No quiet-period guess, no waiting
for a timeout on a large fleet. ``--timeout`` bounds the whole run. (Measured with Mosquitto
2.0, whose handling of SUBSCRIBE sends the SUBACK and then that subscription's retained
messages before it reads the next packet; MQTT itself does not promise this ordering across
subscriptions, so with another broker check the count against ``--json``.)

An agent's status has the agent in the device slot (``device == agent``); its devices'
statuses name it in ``agent``. An ``offline`` status is the agent's last will, built when it
connected, so its ``ts`` is not when it went offline: ``since`` is then unknown here (the
bridge's ``status`` history in InfluxDB has the time it arrived).
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

STATUS_FILTER = "vatio/v1/+/+/status"
MARKER_TOPIC = "vatio/v1/_fleet-status/_end/status"  # subscribed second; nothing is published


class ReadError(RuntimeError):
    """The broker could not be read (connection, login, timeout): the text says which."""


@dataclass
class AgentRow:
    site: str
    agent: str
    state: str
    version: str | None = None
    since: str | None = None  # RFC 3339, when the agent started (online statuses only)
    devices_online: int = 0
    devices_degraded: int = 0
    devices_offline: int = 0  # devices of an agent that is offline
    backlog: int | None = None
    degraded: dict[str, str] = field(default_factory=dict)  # device → reason
    labels: dict[str, str] = field(default_factory=dict)


def read_retained(
    url: str, login: tuple[str, str] | None = None, timeout: float = 10.0,
    ca_file: str | None = None,
) -> list[tuple[str, bytes]]:  # fmt: skip
    """Every retained status (topic, payload), read as described in the module docstring."""
    parts = urlsplit(url)
    got: list[tuple[str, bytes]] = []
    done = threading.Event()
    failed: list[str] = []
    marker: list[int] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"vatio-fleet-status-{os.getpid()}-{time.time_ns()}"
    )
    if login is not None:
        client.username_pw_set(*login)
    if parts.scheme in ("mqtts", "ssl"):
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            failed.append(f"the broker refused the connection: {rc}")
            done.set()
            return
        c.subscribe(STATUS_FILTER, qos=0)
        marker.append(c.subscribe(MARKER_TOPIC, qos=0)[1])

    def on_subscribe(c: Any, u: Any, mid: int, codes: Any, props: Any) -> None:
        if marker and mid == marker[0]:
            done.set()

    def on_message(c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            got.append((msg.topic, bytes(msg.payload)))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=30)
    except (OSError, ValueError) as exc:
        raise ReadError(f"cannot reach the broker at {url}: {exc}") from None
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise ReadError(f"no answer from the broker at {url} within {timeout:g} s")
        if failed:
            raise ReadError(failed[0] + " (check --username / --password)")
    finally:
        client.disconnect()
        client.loop_stop()
    return got


def _iso(epoch: object) -> str | None:
    if isinstance(epoch, int | float) and epoch > 0:
        when = datetime.fromtimestamp(epoch, UTC)
        return when.isoformat(timespec="seconds").replace("+00:00", "Z")
    return None


def summarise(messages: list[tuple[str, bytes]]) -> tuple[list[AgentRow], int]:
    """One row per agent, and how many statuses could not be read (skipped, never fatal)."""
    agents: dict[tuple[str, str], AgentRow] = {}
    devices: list[tuple[str, str, dict[str, Any]]] = []
    bad = 0
    for topic, payload in messages:
        parts = topic.split("/")
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            bad += 1
            continue
        if len(parts) != 5 or not isinstance(body, dict) or not isinstance(body.get("agent"), str):
            bad += 1
            continue
        site, device = parts[2], parts[3]
        state = str(body.get("state", "?"))
        if device == body["agent"]:
            online = state == "online"
            backlog = body.get("backlog")
            labels = body.get("labels")
            agents[(site, device)] = AgentRow(
                site, device, state,
                version=str(body["version"]) if online and "version" in body else None,
                since=_iso(body.get("since")) if online else None,
                backlog=backlog if type(backlog) is int else None,
                labels=labels if isinstance(labels, dict) else {},
            )  # fmt: skip
        else:
            devices.append((site, body["agent"], body))
    for site, agent, body in devices:
        row = agents.get((site, agent))
        if row is None:  # a device whose agent has no status: show the agent as unknown
            row = agents[(site, agent)] = AgentRow(site, agent, "unknown")
        if row.state == "offline":
            row.devices_offline += 1
        elif body.get("state") == "degraded":
            row.devices_degraded += 1
            row.degraded[str(body.get("device"))] = str(body.get("reason", ""))
        elif body.get("state") == "online":
            row.devices_online += 1
    return sorted(agents.values(), key=lambda r: (r.site, r.agent)), bad


def table(rows: list[AgentRow]) -> str:
    head = ("SITE", "AGENT", "STATE", "VERSION", "SINCE", "DEVICES ON/DEGR", "BACKLOG")
    body = [
        (
            r.site, r.agent, r.state.upper() if r.state != "online" else r.state,
            r.version or "-", r.since or "-",
            f"{r.devices_online}/{r.devices_degraded}"
            + (f" ({r.devices_offline} unseen)" if r.devices_offline else ""),
            "-" if r.backlog is None else str(r.backlog),
        )
        for r in rows
    ]  # fmt: skip
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in [head, *body]]  # fmt: skip
    offline = sum(r.state == "offline" for r in rows)
    degraded = sum(r.devices_degraded for r in rows)
    lines.append(f"{len(rows)} agents, {offline} offline, {degraded} devices degraded")
    return "\n".join(lines)


def cmd_fleet_status(args: argparse.Namespace) -> int:
    password = args.password if args.password is not None else os.environ.get("MQTT_PASSWORD")
    login = (args.username, password or "") if args.username else None
    try:
        messages = read_retained(args.url, login, args.timeout, args.ca_file)
    except ReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows, bad = summarise(messages)
    if args.site:
        rows = [r for r in rows if r.site in args.site]
    if args.json:
        print(json.dumps({"agents": [asdict(r) for r in rows], "unreadable": bad}, indent=1))
    else:
        print(table(rows))
        if bad:
            print(f"({bad} status message(s) could not be read)", file=sys.stderr)
    return 1 if any(r.state == "offline" for r in rows) else 0


def add_fleet_status_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fleet-status", help="every agent's state from the broker's retained statuses"
    )
    p.add_argument("--url", default="mqtt://127.0.0.1:1883", help="the broker (mqtts:// for TLS)")
    p.add_argument("--username", help="MQTT login (read access to vatio/v1/+/+/status)")
    p.add_argument("--password", help="default: $MQTT_PASSWORD")
    p.add_argument("--ca-file", help="CA certificate for mqtts://")
    p.add_argument("--site", action="append", help="only this site (repeatable)")
    p.add_argument("--json", action="store_true", help="JSON for scripts")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds before giving up (exit 2)")
    p.set_defaults(func=cmd_fleet_status)

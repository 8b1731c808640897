"""``vatio remote``: the operator's side of remote management, from any machine that reaches
the broker.

``vatio remote push FILE | read [DEVICE…] | scan BUS | logs | log-level LEVEL | ping``, each
with ``--site``, ``--agent``, ``--broker``, ``--username`` (the operator's login; the
password from ``--password`` or ``VATIO_REMOTE_PASSWORD``). It first looks at the agent's
retained status: an agent that is ``offline`` gets nothing (a clear message, exit 2). The
request goes out at QoS 1 with MQTT 5's Response Topic, Correlation Data and a Message
Expiry Interval (the broker drops it if it waited too long); a PUBACK that refuses it (the
ACL) is said at once (exit 3). Then it waits ``--timeout`` seconds for the one response.
Exit codes: 0 done/applied, 1 refused/rolled back/error, 2 offline or no answer, 3 the
broker refused the login or the command.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vatio.agent.config import MqttConnectionConfig
from vatio.agent.messages import topic as data_topic
from vatio.agent.remote import contract


class RemoteError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Operator:
    """One request, one response, over a short-lived MQTT connection."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.v5 = args.protocol == "5"
        try:
            self.cfg = MqttConnectionConfig(url=args.broker)
        except ValueError:
            raise RemoteError(f"--broker {args.broker}: write mqtt://HOST:PORT", 2) from None
        self.lock = threading.Lock()
        self.status: dict[str, Any] | None = None
        self.replies: list[dict[str, Any]] = []
        self.puback: Any = None
        self.connack = threading.Event()
        self.connack_code: Any = None
        self.subscribed = threading.Event()
        self.acked = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"vatio-remote-{args.username}-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5 if self.v5 else MQTTProtocolVersion.MQTTv311,
        )
        password = args.password or os.environ.get("VATIO_REMOTE_PASSWORD")
        self.client.username_pw_set(args.username, password)
        if self.cfg.uses_tls:
            ctx = ssl.create_default_context(cafile=args.ca_file)
            self.client.tls_set_context(ctx)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_publish = self._on_publish

    def _on_connect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        self.connack_code = code
        self.connack.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, code: Any, props: Any) -> None:
        self.puback = code
        self.acked.set()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if msg.topic.startswith(contract.ROOT):
                self.replies.append(body)
            else:
                self.status = body

    def call(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            self.client.connect(self.cfg.host, self.cfg.port, 30)
        except OSError as exc:
            raise RemoteError(f"cannot reach the broker at {self.cfg.where}: {exc}", 2) from None
        self.client.loop_start()
        try:
            return self._call(op, args)
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def _call(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        a = self.args
        if (
            not self.connack.wait(10)
            or getattr(self.connack_code, "is_failure", False)
            or (isinstance(self.connack_code, int) and self.connack_code != 0)
        ):
            raise RemoteError(
                f"the broker at {self.cfg.where} refused the login '{a.username}': "
                f"{self.connack_code}: check --username and the password",
                3,
            )
        request_id = uuid.uuid4().hex
        reply = contract.reply_topic(a.site, a.agent, a.username)
        if self.v5:
            reply += f"/{request_id}"
        self.client.subscribe([(reply, 1), (data_topic(a.site, a.agent, "status"), 1)])
        self.subscribed.wait(5)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and self.status is None:
            time.sleep(0.05)
        status = self.status
        if status is not None and status.get("state") == "offline":
            raise RemoteError(
                f"agent {a.site}/{a.agent} is offline (its status says so since "
                f"{status.get('ts')}): nothing was sent. Try again once it is back online",
                2,
            )
        props = None
        if self.v5:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = reply
            props.CorrelationData = request_id.encode()
            props.MessageExpiryInterval = int(a.expiry)
        payload = contract.request_payload(request_id, op, args, time.time())
        info = self.client.publish(
            contract.cmd_topic(a.site, a.agent, a.username), payload, qos=1, properties=props
        )
        if info.rc != 0 or not self.acked.wait(10):
            raise RemoteError(f"the broker at {self.cfg.where} did not take the command", 2)
        if getattr(self.puback, "is_failure", False):
            raise RemoteError(
                f"the broker refused the command ({self.puback}): login '{a.username}' may "
                f"not send commands to {a.site}/{a.agent} (the broker's ACL)",
                3,
            )
        deadline = time.monotonic() + a.timeout
        while time.monotonic() < deadline:
            with self.lock:
                for body in self.replies:
                    if body.get("id") == request_id:
                        return body
            time.sleep(0.05)
        seen = (
            f"its status says {status.get('state')} since {status.get('since') or status.get('ts')}"
            if status
            else "no status from it (wrong --site or --agent, or it never connected)"
        )
        raise RemoteError(
            f"no answer from agent {a.site}/{a.agent} within {a.timeout:g} s ({seen}); the "
            "command expires in the broker, or is refused as too old (remote.max_age)",
            2,
        )


def _show(op: str, body: dict[str, Any], as_json: bool) -> int:
    ok = bool(body.get("ok"))
    if as_json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 0 if ok else 1
    data = body.get("data") or {}
    result = body.get("result")
    head = f"{body.get('site')}/{body.get('agent')}: {op} {result}"
    if op == "push_config" and data.get("hash"):
        head += f" (config {data['hash']})"
    print(head)
    for r in body.get("reasons", []):
        print(f"  {r}")
    if op == "read":
        for device, v in data.items():
            print(f"{device}" + (f"  ERROR {v['error']}" if v.get("error") else ""))
            for q, value in (v.get("values") or {}).items():
                shown = f"{value:.6g}" if isinstance(value, int | float) else "—"
                print(f"  {q:<30} {shown:>14}")
    elif op == "scan" and "report" in data:
        print(data["report"])
    elif op == "logs":
        for line in data.get("lines", []):
            print(line)
    elif op in ("log_level", "ping") and data:
        print(json.dumps(data, ensure_ascii=False))
    return 0 if ok else 1


def cmd_remote(args: argparse.Namespace) -> int:
    op: str = args.op
    request: dict[str, Any] = {}
    if op == "push_config":
        try:
            request["config"] = Path(args.file).read_text(encoding="utf-8")
        except OSError as exc:
            print(f"error: {args.file}: {exc.strerror}", file=sys.stderr)
            return 1
    elif op == "read":
        request["devices"] = args.devices
    elif op == "scan":
        request.update(bus=args.bus, units=args.units, timeout=args.scan_timeout)
    elif op == "logs":
        request["lines"] = args.lines
    elif op == "log_level":
        request.update(level=args.level, duration=args.duration)
    try:
        body = Operator(args).call(op, request)
    except RemoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    return _show(op, body, args.json)


def register(sub: Any) -> None:
    """``vatio remote …`` in the agent's command line."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--site", required=True, help="the agent's site")
    common.add_argument("--agent", required=True, help="the agent's agent_id")
    common.add_argument(
        "--broker",
        default=os.environ.get("VATIO_REMOTE_BROKER", "mqtt://127.0.0.1:1883"),
        help="mqtt://HOST:PORT or mqtts://… (default: $VATIO_REMOTE_BROKER)",
    )
    common.add_argument(
        "--username",
        default=os.environ.get("VATIO_REMOTE_USERNAME", os.environ.get("USER", "operator")),
        help="your operator login on the broker (default: $VATIO_REMOTE_USERNAME)",
    )
    common.add_argument("--password", help="default: $VATIO_REMOTE_PASSWORD")
    common.add_argument("--ca-file", help="CA of the broker's certificate (mqtts://)")
    common.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (30)")
    common.add_argument(
        "--expiry", type=float, default=300.0, help="seconds the broker may hold it (300)"
    )
    common.add_argument("--json", action="store_true", help="print the whole response")
    p = sub.add_parser("remote", help="manage an agent over MQTT: push a config, read, scan")
    ops = p.add_subparsers(dest="remote_command", required=True, metavar="OP")
    q = ops.add_parser("push", parents=[common], help="push a config (applied on trial)")
    q.add_argument("file", help="the config (YAML)")
    q.set_defaults(op="push_config", timeout=120.0)
    q = ops.add_parser("read", parents=[common], help="poll devices once")
    q.add_argument("devices", nargs="*", metavar="DEVICE")
    q.set_defaults(op="read")
    q = ops.add_parser("scan", parents=[common], help="scan a Modbus/TCP bus of the agent")
    q.add_argument("bus", help="the bus's name in the agent's config")
    q.add_argument("--units", default="1-247")
    q.add_argument("--scan-timeout", type=float, default=0.2, help="device turnaround (0.2 s)")
    q.set_defaults(op="scan", timeout=120.0)
    q = ops.add_parser("logs", parents=[common], help="the agent's recent log lines")
    q.add_argument("--lines", type=int, default=100)
    q.set_defaults(op="logs")
    q = ops.add_parser("log-level", parents=[common], help="another log level for a while")
    q.add_argument("level", choices=["debug", "info", "warning", "error"])
    q.add_argument("--for", dest="duration", default="10m", help="how long (10m)")
    q.set_defaults(op="log_level")
    q = ops.add_parser("ping", parents=[common], help="is the agent there, which config")
    q.set_defaults(op="ping")
    for parser in ops.choices.values():
        parser.set_defaults(func=cmd_remote)

"""Remote management end to end (issue 17): the shipped Mosquitto config and ACL, agents as
processes, Modbus simulators, and the operator's `vatio remote` command."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.helpers import run_cli, wait_until
from tests.integration.test_delivery import gaps, seqs, start_meters
from vatio.agent.config import load_config
from vatio.simulators.brokers import MosquittoProcess
from vatio.simulators.configs import loopback_config

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs" / "mosquitto"
SITE, AGENT = "planta-norte", "gw-planta-norte-01"
LOGINS = {
    "gw-planta-norte-01": "agent-secret-1",
    "gw-planta-norte-02": "agent-secret-2",
    "operator": "op-secret",
    "vatio-ingest": "ingest-secret",
}
OPERATOR = ("operator", "op-secret")


def shipped_broker(tmp_path: Path) -> MosquittoProcess:
    passwd = tmp_path / "vatio.passwd"
    for i, (user, password) in enumerate(LOGINS.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", *create, "-b", str(passwd), user, password], check=True)
    conf = (CONFIGS / "vatio.conf").read_text()
    conf = conf.replace("listener 1883\n", "listener {port} 127.0.0.1\n")
    conf = conf.replace("/var/lib/mosquitto/", "{dir}/")
    conf = conf.replace("/etc/mosquitto/vatio.passwd", str(passwd))
    conf = conf.replace("/etc/mosquitto/vatio.acl", str(CONFIGS / "vatio.acl"))
    return MosquittoProcess(config=conf)


def devices(*units: int, interval: str = "300ms") -> list[tuple[str, str, int, str, str]]:
    return [(f"m{u}", "b", u, "eastron_sdm120", interval) for u in units]


REMOTE = (
    "remote: {{enabled: true, config_push: true, sections: [buses, devices, outputs],"
    " max_age: {max_age}, rollback_after: {rollback}}}\n"
)


def agent_yaml(
    tmp_path: Path, meters: int, broker_url: str, units: tuple[int, ...], *,
    max_age: str = "60s", rollback: str = "5s", name: str = "vatio.yaml",
) -> str:  # fmt: skip
    text = loopback_config(
        SITE, AGENT, tmp_path / "state", {"b": meters}, devices(*units), broker_url,
        f"username: {AGENT}, password: {LOGINS[AGENT]}",
    )  # fmt: skip
    return text + REMOTE.format(max_age=max_age, rollback=rollback)


def remote_cli(broker: MosquittoProcess, *args: str, login=OPERATOR) -> Any:
    return asyncio.to_thread(
        run_cli, "remote", *args, "--site", SITE, "--agent", AGENT, "--broker", broker.url,
        "--username", login[0], "--password", login[1], "--json",
    )  # fmt: skip


def reply_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


class Publisher:
    """A raw MQTT 5 client: publish a request as any login, keep what comes back."""

    def __init__(self, port: int, login: tuple[str, str], subscribe: str | None = None) -> None:
        self.acks: dict[int, Any] = {}
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.ready = threading.Event()
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )  # fmt: skip
        self.c.username_pw_set(*login)
        self.c.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc)
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, json.loads(m.payload)))
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if subscribe:
            self.c.subscribe(subscribe, qos=1)
            assert self.ready.wait(5)

    def request(self, topic: str, op: str, ts: float, args: dict[str, Any] | None = None) -> Any:
        rid = uuid.uuid4().hex
        body = {"v": 1, "id": rid, "ts": ts, "op": op, "args": args or {}}
        info = self.c.publish(topic, json.dumps(body), qos=1)
        info.wait_for_publish(5)
        return rid, info.mid

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def cmd(sender: str) -> str:
    return f"vatio-cmd/v1/{SITE}/{AGENT}/cmd/{sender}"


async def test_push_adds_a_device_refuses_a_broken_config_and_never_echoes_secrets(
    tmp_path, capture_factory, agent_factory
):
    sim, meters = await start_meters()
    try:
        with shipped_broker(tmp_path) as broker:
            cap = capture_factory(broker.port, login=OPERATOR)
            cfg = tmp_path / "vatio.yaml"
            cfg.write_text(agent_yaml(tmp_path, meters, broker.url, (1, 2)))
            agent = agent_factory(cfg)
            await wait_until(lambda: len(seqs(cap, "m2")) >= 5, 20, "telemetry")
            status = cap.on(f"/{AGENT}/status")[-1]
            assert status["config"]["origin"] == "local"

            pushed = tmp_path / "pushed.yaml"  # as an operator writes it: no state_dir, no remote
            data = yaml.safe_load(agent_yaml(tmp_path, meters, broker.url, (1, 2, 3)))
            del data["state_dir"], data["remote"]
            pushed.write_text(yaml.safe_dump(data))
            done = await remote_cli(broker, "push", str(pushed))
            body = reply_of(done)
            assert done.returncode == 0 and body["result"] == "applied", body
            new_hash = body["data"]["hash"]
            await wait_until(lambda: len(seqs(cap, "m3")) >= 5, 20, "the added meter")
            await wait_until(
                lambda: cap.on(f"/{AGENT}/status")[-1].get("config", {}).get("hash") == new_hash,
                10, "the status to carry the new config's hash",
            )  # fmt: skip
            st = cap.on(f"/{AGENT}/status")[-1]["config"]
            assert st["origin"] == "remote" and st["sender"] == "operator"
            kept = load_config(cfg).config
            assert sorted(kept.devices) == ["m1", "m2", "m3"]
            assert kept.remote.enabled and kept.state_dir == tmp_path / "state"  # from the local
            assert len(list((tmp_path / "vatio.yaml.previous").glob("*.yaml"))) == 1
            events = [b["event"] for b in cap.on(f"/{AGENT}/events")]
            assert "remote_command" in events and "config_applied" in events
            sender = [b for b in cap.on(f"/{AGENT}/events") if b["event"] == "remote_command"]
            assert sender[0]["sender"] == "operator" and sender[0]["op"] == "push_config"

            before = cfg.read_bytes()
            data["devices"]["m3"]["intervall"] = "1s"  # a typo
            data["state_dir"] = str(tmp_path / "elsewhere")  # never from afar
            data["outputs"]["mqtt"]["password"] = "hunter2-pushed"  # credentials are locked
            pushed.write_text(yaml.safe_dump(data))
            done = await remote_cli(broker, "push", str(pushed))
            body = reply_of(done)
            assert done.returncode == 1 and body["result"] == "refused", body
            reasons = "\n".join(body["reasons"])
            assert "devices.m3" in reasons and "intervall" in reasons
            assert "state_dir: may not be changed remotely" in reasons
            assert "outputs.mqtt.password: may not be changed remotely" in reasons
            assert cfg.read_bytes() == before  # nothing changed
            before_m1 = len(seqs(cap, "m1"))
            await wait_until(lambda: len(seqs(cap, "m1")) > before_m1 + 3, 10, "polling")
            assert agent.stop() == 0
            await asyncio.sleep(0.5)
            log = agent.output()
            wire = json.dumps([b for _, b, _ in cap.messages]) + done.stdout + done.stderr
            for secret in ("hunter2-pushed", LOGINS[AGENT]):
                assert secret not in log and secret not in wire
            assert "Traceback" not in log
            for name in ("m1", "m2"):  # the hand-over lost nothing
                got = seqs(cap, name)
                assert got[0] == 1 and gaps(got) == [], (name, gaps(got))
    finally:
        await sim.stop()

"""Remote management end to end (issue 17): the shipped Mosquitto config and ACL, agents as
processes, Modbus simulators, and the operator's `vatio remote` command."""

from __future__ import annotations

import asyncio
import json
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


@pytest.mark.serial  # the rollback rides on the trial's time
async def test_a_push_to_a_wrong_broker_port_rolls_back_by_itself(
    tmp_path, capture_factory, agent_factory
):
    sim, meters = await start_meters()
    try:
        with shipped_broker(tmp_path) as broker:
            cap = capture_factory(broker.port, login=OPERATOR)
            cfg = tmp_path / "vatio.yaml"
            cfg.write_text(agent_yaml(tmp_path, meters, broker.url, (1, 2), rollback="4s"))
            original = cfg.read_bytes()
            agent = agent_factory(cfg)
            await wait_until(lambda: len(seqs(cap, "m1")) >= 5, 20, "telemetry")
            data = yaml.safe_load(original)
            del data["remote"]
            wrong = MosquittoProcess().port  # a free port nothing listens on
            data["outputs"]["mqtt"]["url"] = f"mqtt://127.0.0.1:{wrong}"
            pushed = tmp_path / "pushed.yaml"
            pushed.write_text(yaml.safe_dump(data))
            t0 = time.monotonic()
            done = await remote_cli(broker, "push", str(pushed))
            took = time.monotonic() - t0
            body = reply_of(done)
            assert done.returncode == 1 and body["result"] == "rolled_back", body
            assert f"127.0.0.1:{wrong}" in body["reasons"][0] and "4 s" in body["reasons"][0]
            assert 4 <= took < 20, took  # the trial, then the old config back, then the answer
            assert cfg.read_bytes() == original  # the previous file is back in force
            assert not (tmp_path / "vatio.yaml.trial.json").exists()
            before = len(seqs(cap, "m1"))
            await wait_until(lambda: len(seqs(cap, "m1")) > before + 3, 10, "telemetry again")
            events = [b for b in cap.on(f"/{AGENT}/events") if b["event"] == "config_rolled_back"]
            assert len(events) == 1 and events[0]["sender"] == "operator"
            assert agent.stop() == 0
            await asyncio.sleep(0.5)
            got = seqs(cap, "m1")  # the readings of the failed trial waited in the spool
            assert gaps(got) == [], gaps(got)
            assert "Traceback" not in agent.output()
    finally:
        await sim.stop()


async def test_the_acl_lets_only_an_operator_send_commands(tmp_path, agent_factory):
    sim, meters = await start_meters()
    try:
        with shipped_broker(tmp_path) as broker:
            cfg = tmp_path / "vatio.yaml"
            cfg.write_text(agent_yaml(tmp_path, meters, broker.url, (1,)))
            agent = agent_factory(cfg)
            await wait_until(lambda: "remote management: listening" in agent.output(), 20, "up")
            now = time.time()
            refused = {}
            for login, sender in [
                (("gw-planta-norte-02", LOGINS["gw-planta-norte-02"]), "gw-planta-norte-02"),
                (("vatio-ingest", LOGINS["vatio-ingest"]), "vatio-ingest"),
                (OPERATOR, "admin"),  # an operator posing as another login
            ]:
                pub = Publisher(broker.port, login)
                rid, mid = pub.request(cmd(sender), "ping", now)
                await wait_until(lambda p=pub, m=mid: m in p.acks, 5, "the PUBACK")
                refused[rid] = str(pub.acks[mid])
                pub.close()
            assert all("not authorized" in r.lower() for r in refused.values()), refused
            # the CLI says it plainly, and an agent's login cannot read replies either
            agent_login = ("gw-planta-norte-02", LOGINS["gw-planta-norte-02"])
            done = await remote_cli(broker, "ping", login=agent_login)
            assert done.returncode == 3 and "may not send commands" in done.stderr, done.stderr
            done = await remote_cli(broker, "ping")
            assert reply_of(done)["result"] == "done"
            await asyncio.sleep(0.5)
            log = agent.output()
            assert not any(rid in log for rid in refused)  # the agent never saw them
            assert log.count("ping request") == 1
            assert agent.stop() == 0
    finally:
        await sim.stop()


async def test_a_command_that_waited_longer_than_max_age_is_refused(tmp_path, agent_factory):
    sim, meters = await start_meters()
    try:
        with shipped_broker(tmp_path) as broker:
            cfg = tmp_path / "vatio.yaml"
            cfg.write_text(agent_yaml(tmp_path, meters, broker.url, (1,), max_age="2s"))
            agent = agent_factory(cfg)
            await wait_until(lambda: "remote management: listening" in agent.output(), 20, "up")
            assert agent.stop() == 0  # its session (and subscription) stay on the broker
            reply = f"vatio-cmd/v1/{SITE}/{AGENT}/reply/operator/#"
            pub = Publisher(broker.port, OPERATOR, subscribe=reply)
            old_id, _ = pub.request(cmd("operator"), "log_level", time.time(),
                                    {"level": "debug", "duration": "1h"})  # fmt: skip
            await asyncio.sleep(3)  # longer than max_age, offline
            agent = agent_factory(cfg)
            await wait_until(lambda: pub.got, 20, "the refusal")
            _, body = pub.got[0]
            assert body["id"] == old_id and body["result"] == "refused", body
            assert "remote.max_age" in body["reasons"][0]
            fresh, _ = pub.request(cmd("operator"), "ping", time.time())
            await wait_until(lambda: len(pub.got) == 2, 10, "the fresh answer")
            assert pub.got[1][1]["id"] == fresh and pub.got[1][1]["result"] == "done"
            await asyncio.sleep(1)
            assert len(pub.got) == 2  # one response per request
            pub.close()
            assert agent.stop() == 0
            assert "log level" not in agent.output().split("remote management")[-1].lower()
    finally:
        await sim.stop()


async def test_an_agent_killed_during_an_apply_starts_with_a_whole_config(
    tmp_path, capture_factory, agent_factory
):
    """SIGKILL at moments around the apply (validation, the writes, the hand-over, the
    trial): every time, the file in force loads whole (the old one or the new one), and a
    trial the kill interrupted is run again by the next start, which then answers it."""
    sim, meters = await start_meters()
    try:
        with shipped_broker(tmp_path) as broker:
            cap = capture_factory(broker.port, login=OPERATOR)
            cfg = tmp_path / "vatio.yaml"
            cfg.write_text(agent_yaml(tmp_path, meters, broker.url, (1, 2), rollback="3s"))
            pub = Publisher(broker.port, OPERATOR,
                            subscribe=f"vatio-cmd/v1/{SITE}/{AGENT}/reply/operator/#")  # fmt: skip
            versions = {cfg.read_bytes()}
            outcomes = []
            for i, delay in enumerate([0.05, 0.3, 0.6, 1.0]):
                agent = agent_factory(cfg)
                await wait_until(lambda a=agent: "remote management: listening" in a.output(),
                                 20, "the agent")  # fmt: skip
                data = yaml.safe_load(cfg.read_text())
                data.pop("remote"), data.pop("state_dir")
                units = (1, 2, 3) if i % 2 == 0 else (1, 2)
                data["devices"] = {n: d for n, d in yaml.safe_load(agent_yaml(
                    tmp_path, meters, broker.url, units))["devices"].items()}  # fmt: skip
                pub.request(cmd("operator"), "push_config", time.time(),
                            {"config": yaml.safe_dump(data)})  # fmt: skip
                await asyncio.sleep(delay)
                agent.kill()
                text = cfg.read_bytes()
                loaded = load_config(cfg)  # whole: it loads
                outcomes.append((delay, sorted(loaded.config.devices),
                                 (tmp_path / "vatio.yaml.trial.json").exists()))  # fmt: skip
                versions.add(text)
            agent = agent_factory(cfg)
            await wait_until(lambda: "remote management: listening" in agent.output(), 20, "up")
            await wait_until(lambda: not (tmp_path / "vatio.yaml.trial.json").exists(), 15,
                             "an interrupted trial to end")  # fmt: skip
            running = sorted(load_config(cfg).config.devices)
            count = len(seqs(cap, "m1"))
            await wait_until(lambda: len(seqs(cap, "m1")) > count + 3, 10, "polling")
            assert agent.stop() == 0
            ids = [b["id"] for _, b in pub.got]
            assert len(ids) == len(set(ids)), pub.got  # never two answers to one request
            # a push that arrives while a resumed trial runs is refused, and says why
            assert all(
                b["result"] in ("applied", "rolled_back")
                or (b["result"] == "refused" and "on trial" in b["reasons"][0])
                for _, b in pub.got
            ), [(b["result"], b["reasons"]) for _, b in pub.got]
            assert any(b["result"] == "applied" for _, b in pub.got)
            assert running in (["m1", "m2"], ["m1", "m2", "m3"])
            assert not list(tmp_path.glob(".vatio.yaml.*.tmp"))  # temporaries cleaned at start
            assert "Traceback" not in agent.output()
            print("outcomes (delay, devices in force, trial pending):", outcomes, len(versions))
            pub.close()
    finally:
        await sim.stop()


async def test_remote_read_scan_logs_and_log_level(tmp_path, capture_factory, agent_factory):
    sim, meters = await start_meters()
    try:
        with shipped_broker(tmp_path) as broker:
            cap = capture_factory(broker.port, login=OPERATOR)
            cfg = tmp_path / "vatio.yaml"
            cfg.write_text(agent_yaml(tmp_path, meters, broker.url, (1, 2), rollback="3s"))
            agent = agent_factory(cfg)
            await wait_until(lambda: len(seqs(cap, "m1")) >= 3, 20, "telemetry")

            body = reply_of(await remote_cli(broker, "read", "m1", "m2"))
            assert body["result"] == "done" and sorted(body["data"]) == ["m1", "m2"]
            for device in ("m1", "m2"):
                values = body["data"][device]["values"]
                telemetry = cap.on(f"/{device}/telemetry")[-1]["values"]
                assert values.keys() == telemetry.keys() and values
                assert all(isinstance(v, float) for v in values.values()), values
            body = reply_of(await remote_cli(broker, "read", "m9"))
            assert body["result"] == "refused" and "devices: m1, m2" in body["reasons"][0]

            body = reply_of(await remote_cli(broker, "scan", "b", "--units", "1-7"))
            assert body["result"] == "done", body
            found = {f["unit"]: f["profiles"] for f in body["data"]["found"]}
            assert sorted(found) == [1, 2, 3, 4, 5]
            assert all("eastron_sdm120" in p for p in found.values()), found
            assert "device-3: {bus: b, unit: 3, profile: eastron_sdm120}" in body["data"]["report"]

            body = reply_of(await remote_cli(broker, "log-level", "debug", "--for", "2s"))
            assert body["result"] == "done" and body["data"]["level"] == "DEBUG"
            await asyncio.sleep(0.5)
            body = reply_of(await remote_cli(broker, "logs", "--lines", "200"))
            lines = body["data"]["lines"]
            assert any(" DEBUG " in line for line in lines), lines[-5:]
            assert any("remote management: listening" in line for line in lines)
            assert not any(LOGINS[AGENT] in line for line in lines)
            await wait_until(lambda: "log level back to INFO" in agent.output(), 10, "the level")

            assert agent.stop() == 0
            done = await remote_cli(broker, "ping")
            assert done.returncode == 2 and "is offline" in done.stderr and "nothing was sent" \
                in done.stderr, done.stderr  # fmt: skip
    finally:
        await sim.stop()


async def test_mqtt_3_1_1_gets_the_reply_by_id_on_the_default_topic(tmp_path, agent_factory):
    """No Response Topic or Correlation Data in MQTT 3.1.1: the reply goes to
    ``…/reply/<sender>`` and carries the request's id, which the CLI matches."""
    sim, meters = await start_meters()
    try:
        with shipped_broker(tmp_path) as broker:
            cfg = tmp_path / "vatio.yaml"
            text = agent_yaml(tmp_path, meters, broker.url, (1,))
            cfg.write_text(text.replace("password: agent-secret-1", "password: agent-secret-1, "
                                        "protocol: '3.1.1'"))  # fmt: skip
            agent = agent_factory(cfg)
            await wait_until(lambda: "remote management: listening" in agent.output(), 20, "up")
            done = await remote_cli(broker, "ping", "--protocol", "3.1.1")
            body = reply_of(done)
            assert body["result"] == "done" and body["data"]["config"]["origin"] == "local"
            assert agent.stop() == 0
    finally:
        await sim.stop()

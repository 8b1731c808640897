"""The agent's local HTTP endpoint: /healthz and /metrics over real HTTP, secrets kept out,
and a port already taken said plainly."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from tests.helpers import wait_until
from tests.integration.test_delivery import DEVICES, start_meters
from vatio.simulators.brokers import free_port
from vatio.simulators.configs import loopback_config

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def config(tmp_path, port: int, mqtt_url: str, http_port: int):
    text = loopback_config(
        "s", "gw", tmp_path / "state", {"b": port}, DEVICES, mqtt_url,
        "username: gw, password: s3cret-pw",
    ) + f"http: {{listen: '127.0.0.1:{http_port}'}}\n"  # fmt: skip
    path = tmp_path / "vatio.yaml"
    path.write_text(text)
    return path


async def test_healthz_and_prometheus_metrics(tmp_path, mosquitto, agent_factory):
    sim, port = await start_meters()
    http_port = free_port()
    base = f"http://127.0.0.1:{http_port}"
    try:
        agent = agent_factory(config(tmp_path, port, mosquitto.url, http_port))
        await wait_until(lambda: "status on http" in agent.output(), 20, "the endpoint")
        await wait_until(lambda: get(base + "/healthz")[0] == 200, 20, "healthy")
        health = json.loads(get(base + "/healthz")[1])
        assert health["status"] == "ok" and set(health["devices"]) == {d[0] for d in DEVICES}
        await wait_until(
            lambda: "vatio_mqtt_published_total 0\n" not in get(base + "/metrics")[1], 20, "acks"
        )
        status, text = get(base + "/metrics")
        assert status == 200
        samples = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        assert samples['vatio_polls_total{device="m1"}'] > 0
        assert samples['vatio_device_up{device="m3"}'] == 1
        assert samples["vatio_mqtt_connected"] == 1
        assert samples["vatio_publish_latency_seconds_count"] > 0
        assert "# TYPE vatio_spool_messages gauge" in text
        assert get(base + "/nothing")[0] == 404
        assert agent.stop() == 0
        for body in (text, json.dumps(health), agent.output()):
            assert "s3cret-pw" not in body
    finally:
        await sim.stop()


async def test_a_port_already_taken_is_said_plainly(tmp_path, mosquitto, agent_factory):
    sim, port = await start_meters()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        agent = agent_factory(config(tmp_path, port, mosquitto.url, taken.getsockname()[1]))
        agent.proc.wait(20)
        out = agent.output()
        assert agent.proc.returncode == 1
        assert "another program uses this port" in out and "Traceback" not in out
    finally:
        taken.close()
        await sim.stop()

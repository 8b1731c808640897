"""The ingest bridge against real servers: Mosquitto, VictoriaMetrics (v2 write API) and
InfluxDB 1.6 (v1 API). What lands is counted against what the fleet simulator produced:
every point exactly once (the databases store a point written twice once, so a redelivery
is not a duplicate, and a missing one is a loss)."""

from __future__ import annotations

import asyncio
import json
import random
import threading

import pytest

from tests.helpers import wait_until
from tests.integration.test_status_http import get
from vatio.simulators.brokers import MosquittoProcess, free_port
from vatio.simulators.configs import loopback_config
from vatio.simulators.fleet import Fleet, publish

pytestmark = pytest.mark.integration


def ingest_config(tmp_path, broker_url: str, db_url: str, api: str, **influx) -> object:
    extra = "".join(f"  {k}: {v}\n" for k, v in influx.items())
    path = tmp_path / "ingest.yaml"
    path.write_text(
        f"mqtt:\n  url: {broker_url}\n  group: ingest\n"
        f"influxdb:\n  url: {db_url}\n  api: {api}\n  batch_size: 500\n  flush_interval: 200ms\n"
        + extra
    )
    return path


def publish_in_background(url: str, messages: list[tuple[str, bytes]], rate: float):
    done: dict[str, object] = {}

    def run() -> None:
        try:
            done["sent"] = publish(url, messages, rate=rate)
        except Exception as exc:  # reported by the test, not lost in a thread
            done["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


async def test_two_bridges_share_the_fleet_and_every_point_lands_once(
    tmp_path, mosquitto, victoria, ingest_factory, capture_factory
):
    fleet = Fleet(agents=100, devices=10)
    cfg = ingest_config(tmp_path, mosquitto.url, victoria.url, "v2")
    bridges = [ingest_factory(cfg, f"bridge-{i}") for i in (1, 2)]
    await wait_until(
        lambda: all("connected to MQTT broker" in b.output() for b in bridges), 20, "bridges"
    )
    dead = capture_factory(mosquitto.port, "vatio-deadletter/#")
    bad = [
        ("vatio/v1/site-0001/meter-01/telemetry", b"{not json"),
        ("vatio/v1/site-0001/meter-01/telemetry",
         b'{"ts":"2026-11-23T10:00:00Z","values":{"a":"x"}}'),
        ("vatio/v1/site-0002/meter-01/telemetry", json.dumps(  # claims another site
            {"ts": "2026-11-23T10:00:00Z", "site": "site-0001", "values": {"a": 1}}).encode()),
        ("vatio/v1/site-0001/gw-0001/status", b'{"state":"online"}'),  # state: no point
    ]  # fmt: skip
    sent = await asyncio.to_thread(publish, mosquitto.url, [*fleet.messages(5), *bad])
    assert sent == 5 * fleet.per_round + len(bad)
    expected = 5 * fleet.per_round
    await wait_until(
        lambda: victoria.count("telemetry_seq") >= expected, 60, "every point in VictoriaMetrics"
    )
    await wait_until(lambda: len(dead.messages) >= 3, 10, "the dead letters")
    await asyncio.sleep(1)  # nothing more may come
    assert victoria.count("telemetry_seq") == expected
    assert victoria.count('telemetry_active_power_w{site="site-0042",device="meter-07"}') == 5
    reasons = [body["reason"] for _, body, _ in dead.messages]
    assert len(reasons) == 3, reasons
    assert any("not JSON" in r for r in reasons)
    assert any("not a number" in r for r in reasons)
    assert any("claims" in r or "names site" in r for r in reasons)
    for b in bridges:
        assert b.stop() == 0
    written = [_written(b.output()) for b in bridges]
    assert sum(written) >= expected and min(written) > 0, written  # both took a share
    assert all("Traceback" not in b.output() for b in bridges)


def _written(log: str) -> int:
    last = [line for line in log.splitlines() if "stopped:" in line][-1]
    return int(last.split("received, ")[1].split(" points")[0])


async def test_the_database_stopped_under_the_bridge_loses_nothing(
    tmp_path, mosquitto, influxd, ingest_factory
):
    """…and its /healthz says so meanwhile, while /metrics counts what was written."""
    fleet = Fleet(agents=20, devices=10)
    cfg = ingest_config(tmp_path, mosquitto.url, influxd.url, "v1")
    http = f"127.0.0.1:{free_port()}"
    cfg.write_text(cfg.read_text() + f"http: {{listen: '{http}'}}\n")
    bridge = ingest_factory(cfg, "bridge-1")
    await wait_until(lambda: "connected to MQTT broker" in bridge.output(), 20, "the bridge")
    await wait_until(lambda: get(f"http://{http}/healthz")[0] == 200, 20, "healthy")
    messages = list(fleet.messages(30))
    thread, done = publish_in_background(mosquitto.url, messages, rate=1500)
    await wait_until(lambda: influxd.count("vatio", "telemetry", "seq") > 500, 20, "first points")
    influxd.pause()
    await wait_until(lambda: "retrying" in bridge.output(), 20, "the bridge to see the outage")
    status, body = get(f"http://{http}/healthz")
    assert status == 503 and "database not taking writes" in body
    await asyncio.sleep(2)
    influxd.start()
    await asyncio.to_thread(thread.join, 60)
    assert done.get("sent") == len(messages), done
    await wait_until(
        lambda: influxd.count("vatio", "telemetry", "seq") >= len(messages), 60, "every point"
    )
    assert influxd.count("vatio", "telemetry", "seq") == len(messages)
    await wait_until(lambda: get(f"http://{http}/healthz")[0] == 200, 20, "healthy again")
    metrics = get(f"http://{http}/metrics")[1]
    assert f"vatio_ingest_points_total {len(messages)}\n" in metrics
    assert "vatio_ingest_database_up 1\n" in metrics
    assert "vatio_ingest_write_failures_total 0\n" not in metrics
    assert "database" in bridge.output() and "Traceback" not in bridge.output()
    assert bridge.stop() == 0


async def test_a_bridge_killed_mid_batch_loses_nothing(
    tmp_path, mosquitto, influxd, ingest_factory
):
    fleet = Fleet(agents=20, devices=10)
    cfg = ingest_config(tmp_path, mosquitto.url, influxd.url, "v1")
    bridge = ingest_factory(cfg, "bridge-1")
    await wait_until(lambda: "connected to MQTT broker" in bridge.output(), 20, "the bridge")
    messages = list(fleet.messages(40))
    thread, done = publish_in_background(mosquitto.url, messages, rate=1500)
    for _ in range(3):
        await asyncio.sleep(1.3)
        bridge.kill()  # SIGKILL: batches in the middle of being written, never acknowledged
        bridge = ingest_factory(cfg, "bridge-1")  # the same id: its session waits for it
    await asyncio.to_thread(thread.join, 90)
    assert done.get("sent") == len(messages), done
    await wait_until(
        lambda: influxd.count("vatio", "telemetry", "seq") >= len(messages), 60, "every point"
    )
    await asyncio.sleep(1)
    assert influxd.count("vatio", "telemetry", "seq") == len(messages)
    assert bridge.stop() == 0


async def test_a_broker_restart_under_the_bridge_loses_nothing(tmp_path, influxd, ingest_factory):
    """A plain persistent subscription (``group: null``): Mosquitto 2.0.11 keeps it across its
    restart, but not a shared one (README, "Ingest bridge")."""
    with MosquittoProcess(persistent=True) as broker:
        fleet = Fleet(agents=20, devices=10)
        cfg = ingest_config(tmp_path, broker.url, influxd.url, "v1")
        cfg.write_text(cfg.read_text().replace("group: ingest", "group: null"))
        bridge = ingest_factory(cfg, "bridge-1")
        await wait_until(lambda: "connected to MQTT broker" in bridge.output(), 20, "bridge")
        messages = list(fleet.messages(30))
        thread, done = publish_in_background(broker.url, messages, rate=1500)
        await asyncio.sleep(1.5)
        broker.restart()  # queued and in-flight messages are saved, and the session
        await asyncio.to_thread(thread.join, 90)
        assert done.get("sent") == len(messages), done  # paho resent what was in flight
        await wait_until(
            lambda: influxd.count("vatio", "telemetry", "seq") >= len(messages), 60, "every point"
        )
        await asyncio.sleep(1)
        assert influxd.count("vatio", "telemetry", "seq") == len(messages)
        assert "connection lost" in bridge.output()
        assert bridge.stop() == 0


async def test_end_to_end_agents_killed_at_random_every_published_reading_lands_once(
    tmp_path, mosquitto, influxd, agent_factory, ingest_factory, capture_factory
):
    """Meters → agent (SIGKILLed 3 times) → Mosquitto → bridge → InfluxDB 1.6: the database
    holds exactly the readings the broker accepted, each (device, seq) once."""
    from tests.integration.test_delivery import DEVICES, start_meters

    sim, port = await start_meters()
    rng = random.Random(11)
    try:
        cfg = ingest_config(tmp_path, mosquitto.url, influxd.url, "v1")
        bridge = ingest_factory(cfg, "bridge-1")
        cap = capture_factory(mosquitto.port, "vatio/v1/+/+/telemetry")
        agent_cfg = tmp_path / "vatio.yaml"
        agent_cfg.write_text(
            loopback_config("s", "gw", tmp_path / "state", {"b": port}, DEVICES, mosquitto.url)
        )
        for _ in range(3):
            agent = agent_factory(agent_cfg)
            await asyncio.sleep(rng.uniform(1.5, 3.5))
            agent.kill()
        agent = agent_factory(agent_cfg)
        # SIGTERM before the agent has set up its handlers would end it by the signal (-15)
        await wait_until(lambda: "connected to MQTT broker" in agent.output(), 30, "the agent")
        await asyncio.sleep(3)
        assert agent.stop() == 0
        await asyncio.sleep(1)
        published = {(b["device"], b["seq"]) for b in cap.on("/telemetry")}
        assert len(published) > 100

        def landed() -> list[tuple[str, int]]:
            result = influxd.query("vatio", 'SELECT "seq" FROM "telemetry" GROUP BY "device"')
            return [
                (s["tags"]["device"], row[1])
                for s in result["results"][0].get("series", [])
                for row in s["values"]
            ]

        await wait_until(lambda: len(landed()) >= len(published), 30, "every reading")
        points = landed()
        assert len(points) == len(set(points))  # one point per reading
        assert set(points) == published
        assert bridge.stop() == 0
    finally:
        await sim.stop()


async def test_the_agent_writes_straight_to_influxdb_through_an_outage(
    tmp_path, influxd, agent_factory
):
    """outputs.influxdb, no broker: every reading taken lands, the database down or not."""
    from tests.integration.test_delivery import DEVICES, start_meters

    sim, port = await start_meters()
    try:
        text = loopback_config("s", "gw", tmp_path / "state", {"b": port}, DEVICES, "mqtt://x")
        text = text.replace(
            "outputs:\n  mqtt: {url: 'mqtt://x'}\n",
            f"outputs:\n  influxdb: {{url: '{influxd.url}', api: v1, flush_interval: 200ms}}\n",
        )
        cfg = tmp_path / "vatio.yaml"
        cfg.write_text(text)
        agent = agent_factory(cfg)
        count = lambda: influxd.count("vatio", "telemetry", "seq")  # noqa: E731
        await wait_until(lambda: count() > 20, 20, "first points")
        influxd.pause()
        await wait_until(lambda: "retrying" in agent.output(), 20, "the outage to be seen")
        await asyncio.sleep(2)
        influxd.start()
        await asyncio.sleep(3)
        assert agent.stop() == 0
        result = influxd.query("vatio", 'SELECT "seq" FROM "telemetry" GROUP BY "device"')
        series = result["results"][0]["series"]
        assert len(series) == len(DEVICES)
        for s in series:
            got = sorted(row[1] for row in s["values"])
            assert got == list(range(1, got[-1] + 1)), s["tags"]  # no gap: nothing lost
            assert len(got) > 5 * 5  # readings from before, during and after the outage
        assert "Traceback" not in agent.output()
    finally:
        await sim.stop()

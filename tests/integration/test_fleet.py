"""The fleet features end to end (issue 15): the shipped Mosquitto config and ACL, real
`vatio ingest` processes, InfluxDB 1.6, the fleet simulator with faults at known places.

- completeness: the gaps the bridges write are exactly the seq ranges the simulator dropped,
  with two bridges sharing the subscription and one of them restarted half-way; duplicates,
  late arrivals and a device reset are counted where they happened;
- statuses: offline agents (retained wills, and one live will) reach InfluxDB and
  `vatio fleet-status` (exit 1) within the configured time;
- the fleet dashboard and alert rules ask only for measurements, fields and tags that exist
  after the fleet run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import wait_until
from tests.unit.test_grafana_fleet import influxql_queries, referenced_names
from vatio.agent.ingest.completeness import HOUR_MS, parse_gaps
from vatio.simulators.brokers import MosquittoProcess
from vatio.simulators.fleet import Fleet, _rfc3339_ms, publish

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
CONFIGS = ROOT / "configs" / "mosquitto"
USERS = {"vatio-ingest": "ingest-secret", "operator": "op-secret", "vatio-fleet": "fleet-secret",
         "gw-centro-07": "centro-secret"}  # fmt: skip
FLEET_LOGIN = ("vatio-fleet", USERS["vatio-fleet"])
DB = "vatio"


def shipped_broker(tmp_path: Path) -> MosquittoProcess:
    """configs/mosquitto/vatio.conf and vatio.acl, plus one ACL block for the simulator, which
    publishes for every site (a real fleet has one block per gateway)."""
    passwd = tmp_path / "vatio.passwd"
    for i, (user, password) in enumerate(USERS.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", *create, "-b", str(passwd), user, password], check=True)
    acl = tmp_path / "vatio.acl"
    acl.write_text(
        (CONFIGS / "vatio.acl").read_text() + "\nuser vatio-fleet\ntopic write vatio/v1/#\n"
    )
    conf = (CONFIGS / "vatio.conf").read_text()
    conf = conf.replace("listener 1883\n", "listener {port} 127.0.0.1\n")
    conf = conf.replace("/var/lib/mosquitto/", "{dir}/")
    conf = conf.replace("/etc/mosquitto/vatio.passwd", str(passwd))
    conf = conf.replace("/etc/mosquitto/vatio.acl", str(acl))
    return MosquittoProcess(config=conf)


def bridge_config(tmp_path: Path, broker: MosquittoProcess, influx_url: str) -> Path:
    path = tmp_path / "ingest.yaml"
    path.write_text(
        f"mqtt:\n  url: {broker.url}\n  username: vatio-ingest\n"
        f"  password: {USERS['vatio-ingest']}\n  group: vatio-ingest\n"
        f"influxdb:\n  url: {influx_url}\n  api: v1\n  database: {DB}\n"
        "  batch_size: 500\n  flush_interval: 200ms\n"
        "fleet:\n  interval: 1s\n  late_after: 2h\n"
    )
    return path


def rows(influxd, q: str) -> list[tuple[dict[str, str], list[str], list]]:
    result = influxd.query(DB, q)["results"][0]
    assert "error" not in result, (q, result)
    return [(s.get("tags", {}), s["columns"], s["values"]) for s in result.get("series", [])]


def completeness(influxd) -> dict[tuple[str, str, str], list[dict]]:
    out: dict[tuple[str, str, str], list[dict]] = {}
    for tags, columns, values in rows(
        influxd, 'SELECT * FROM "completeness" GROUP BY "site", "device", "stream"'
    ):
        key = (tags["site"], tags["device"], tags["stream"])
        out[key] = [dict(zip(columns, v, strict=True)) for v in values]
    return out


def ts_of(ms: int) -> str:
    return _rfc3339_ms(ms)


def telemetry(site: str, device: str, seq: int, ms: int) -> tuple[str, bytes]:
    body = {"ts": ts_of(ms), "seq": seq, "site": site, "device": device,
            "values": {"active_power_w": 1.0}}  # fmt: skip
    return f"vatio/v1/{site}/{device}/telemetry", json.dumps(body).encode()


async def test_gaps_are_the_dropped_seq_ranges_with_two_bridges_and_a_restart(
    tmp_path, influxd, ingest_factory
):
    now_ms = int(time.time() * 1000)
    hour = now_ms - now_ms % HOUR_MS
    dropped = {  # (agent, device) → ranges; round r has seq r + 1 and ts start + r s
        (1, 2): [(5, 7)],
        (2, 3): [(10, 12)],  # across the hour boundary (seq 11 is the hour's first second)
        (3, 1): [(11, 11)],
        (3, 3): [(16, 16), (18, 19)],
    }
    drop = frozenset((a, d, s) for (a, d), rs in dropped.items() for lo, hi in rs
                     for s in range(lo, hi + 1))  # fmt: skip
    fleet = Fleet(agents=4, devices=3, start_ms=hour - 10_000, drop=drop)
    with shipped_broker(tmp_path) as broker:
        cfg = bridge_config(tmp_path, broker, influxd.url)
        bridges = [ingest_factory(cfg, f"bridge-{i}") for i in (1, 2)]
        await wait_until(
            lambda: all("connected to MQTT broker" in b.output() for b in bridges), 20, "bridges"
        )
        first = list(fleet.messages(10))
        await asyncio.to_thread(publish, broker.url, first, login=FLEET_LOGIN)
        await wait_until(
            lambda: influxd.count(DB, "telemetry", "seq") == len(first), 20, "first half"
        )
        await asyncio.sleep(2.5)  # a completeness pass of each bridge
        assert bridges[0].stop() == 0  # its last pass, then a new process with the same id
        bridges[0] = ingest_factory(cfg, "bridge-1")
        await wait_until(lambda: bridges[0].output().count("connected to MQTT") >= 2, 20, "back")

        second = list(fleet.messages(10, first_round=10))
        # duplicates: two messages again; a reset: seq back to 1 with later timestamps;
        # late: a backlog three hours old
        again = [fleet.message(1, 1, 2), fleet.message(1, 1, 3)]
        reset = [telemetry("site-0004", "reset-01", s, hour + 1000 * s) for s in (1, 2, 3)]
        reset += [telemetry("site-0004", "reset-01", s, hour + 5000 + 1000 * s) for s in (1, 2)]
        late = [telemetry("site-0001", "late-01", s, hour - 3 * HOUR_MS + 1000 * s)
                for s in (1, 2, 3, 4)]  # fmt: skip
        extra = again + reset + late
        await asyncio.to_thread(publish, broker.url, second + extra, login=FLEET_LOGIN)
        points = len(first) + len(second) + len(reset) + len(late)
        await wait_until(
            lambda: influxd.count(DB, "telemetry", "seq") == points, 20, "every point"
        )
        await asyncio.sleep(3.5)  # passes of both bridges after the last write
        for b in bridges:
            assert b.stop() == 0
            assert "Traceback" not in b.output()

    found = completeness(influxd)
    gaps: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for (site, device, stream), hours in found.items():
        assert stream == "telemetry"
        for p in hours:
            gaps.setdefault((site, device), []).extend(parse_gaps(p["gaps"]))
            assert p["missing"] == sum(b - a + 1 for a, b in parse_gaps(p["gaps"]))
    expected = {(fleet.site(a), f"meter-{d:02d}"): rs for (a, d), rs in dropped.items()}
    assert {k: sorted(v) for k, v in gaps.items() if v} == expected
    # every device of the fleet has its two hours
    assert all(len(found[(fleet.site(a), f"meter-{d:02d}", "telemetry")]) == 2
               for a in range(1, 5) for d in range(1, 4))  # fmt: skip
    # the second hour of site-0002/meter-03: seq 13..20 received, 10..12 missing
    second_hour = found[("site-0002", "meter-03", "telemetry")][1]
    assert (second_hour["received"], second_hour["missing"], second_hour["expected"]) == (8, 3, 11)
    assert second_hour["time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hour / 1000))
    dup = found[("site-0001", "meter-01", "telemetry")][0]
    assert dup["duplicates"] == 2 and dup["missing"] == 0
    assert sum(p["duplicates"] for ps in found.values() for p in ps) == 2
    assert found[("site-0004", "reset-01", "telemetry")][0]["resets"] == 1
    assert found[("site-0004", "reset-01", "telemetry")][0]["missing"] == 0
    assert found[("site-0001", "late-01", "telemetry")][0]["late"] == 4
    assert sum(p["late"] for ps in found.values() for p in ps) == 4
    # arrival counts of both bridges add up to every message received
    total = rows(influxd, 'SELECT sum("received") FROM "ingest_arrivals"')[0][2][0][1]
    assert total == points + len(again)
    seen = rows(influxd, 'SELECT last("seq") FROM "last_seen" GROUP BY "site", "device"')
    assert len(seen) == 4 * 3 + 2


def live_agent(url: str, site: str, agent: str) -> mqtt.Client:
    """An agent's MQTT session as agent/outputs/mqtt.py opens it: a retained online status
    and the offline status as its last will."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"vatio-{agent}")
    c.username_pw_set(*FLEET_LOGIN)
    will = {"ts": ts_of(int(time.time() * 1000)), "seq": 2, "site": site, "device": agent,
            "agent": agent, "state": "offline", "labels": {"zone": "centro"}}  # fmt: skip
    c.will_set(f"vatio/v1/{site}/{agent}/status", json.dumps(will), qos=1, retain=True)
    c.connect("127.0.0.1", int(url.rsplit(":", 1)[1]), keepalive=5)
    c.loop_start()
    online = {**will, "seq": 1, "state": "online", "version": "9.9.9", "since": time.time()}
    c.publish(f"vatio/v1/{site}/{agent}/status", json.dumps(online), qos=1, retain=True)
    return c


def fleet_status(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vatio.agent.cli", "fleet-status", "--url", url,
         "--username", "operator", "--password", USERS["operator"], "--timeout", "10", *extra],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


@pytest.mark.serial  # asserts the will reaches InfluxDB within a time
async def test_offline_agents_reach_influxdb_and_the_command_and_the_dashboard_queries_exist(
    tmp_path, influxd, ingest_factory
):
    fleet = Fleet(agents=6, devices=3, start_ms=int(time.time() * 1000) - 20_000, metrics=True)
    with shipped_broker(tmp_path) as broker:
        cfg = bridge_config(tmp_path, broker, influxd.url)
        bridge = ingest_factory(cfg, "bridge-1")
        await wait_until(lambda: "connected to MQTT broker" in bridge.output(), 20, "bridge")
        statuses = list(fleet.statuses(offline=frozenset({2, 5}), degraded=frozenset({(3, 1)})))
        # a status from a site that never sent telemetry, and one that breaks the label rules
        odd = [("vatio/v1/nowhere/gw-x/status", json.dumps(
                    {"ts": ts_of(int(time.time() * 1000)), "agent": "gw-x", "device": "gw-x",
                     "state": "online"}).encode(), True),
               ("vatio/v1/site-0001/gw-0001/status", json.dumps(
                    {"ts": ts_of(int(time.time() * 1000)), "agent": "gw-0001", "state": "online",
                     "labels": {"Bad Key": "x"}}).encode(), False)]  # fmt: skip
        await asyncio.to_thread(
            publish, broker.url, [*fleet.messages(5), *statuses, *odd], login=FLEET_LOGIN
        )
        agent = await asyncio.to_thread(live_agent, broker.url, "site-0007", "gw-0007")
        await wait_until(
            lambda: influxd.count(DB, "status", "online", "\"agent\" = 'gw-0007'") >= 1, 10,
            "the live agent's online status",
        )

        result = await asyncio.to_thread(fleet_status, broker.url)
        assert result.returncode == 1, result.stderr
        lines = {line.split()[1]: line for line in result.stdout.splitlines()[1:-1]}
        assert "OFFLINE" in lines["gw-0002"] and "OFFLINE" in lines["gw-0005"]
        assert "online" in lines["gw-0007"] and "9.9.9" in lines["gw-0007"]
        assert "online" in lines["gw-0003"] and "2/1" in lines["gw-0003"]  # 2 on, 1 degraded

        # the live agent dies without a DISCONNECT: the broker publishes its will at once
        went = time.monotonic()
        agent.socket().close()
        agent.loop_stop()
        where = "\"agent\" = 'gw-0007' AND \"online\" = 0"
        await wait_until(lambda: influxd.count(DB, "status", "online", where) == 1, 5, "offline")
        took = time.monotonic() - went
        assert took < 0.2 + 2.0  # flush_interval + the write, not a polling period
        result = await asyncio.to_thread(fleet_status, broker.url, "--json")
        state = {a["agent"]: a for a in json.loads(result.stdout)["agents"]}
        assert result.returncode == 1
        assert {a for a, s in state.items() if s["state"] == "offline"} == {
            "gw-0002", "gw-0005", "gw-0007"
        }
        assert state["gw-0003"]["degraded"] == {"meter-01": "timeout: no answer from unit 1"}
        assert state["gw-0001"]["labels"] == {"zone": "norte"}  # agent % 5

        # the status history in InfluxDB
        agents = rows(influxd, 'SELECT last("online") FROM "status" WHERE "kind" = \'agent\' '
                                'GROUP BY "site", "agent", "zone"')  # fmt: skip
        last = {t["agent"]: v[0][1] for t, _, v in agents}
        assert {a for a, up in last.items() if up == 0} == {"gw-0002", "gw-0005", "gw-0007"}
        degraded = rows(influxd, "SELECT \"reason\" FROM \"status\" WHERE \"degraded\" = 1 "
                                 'GROUP BY "site", "device"')  # fmt: skip
        assert [(t["site"], t["device"]) for t, _, _ in degraded] == [("site-0003", "meter-01")]
        located = rows(influxd, 'SELECT last("lat"), last("lon") FROM "status" WHERE '
                                "\"device\" = 'meter-02' AND \"site\" = 'site-0004'")  # fmt: skip
        assert located[0][2][0][1:] == [fleet.location(4, 2)["lat"], fleet.location(4, 2)["lon"]]
        await wait_until(lambda: influxd.count(DB, "completeness", "received") > 0, 10, "pass")
        await wait_until(lambda: influxd.count(DB, "last_seen", "ts") > 0, 10, "last seen")
        assert bridge.stop() == 0
    log = bridge.output()
    assert "Traceback" not in log
    assert "no telemetry from site 'nowhere'" in log
    assert "label name 'Bad Key' is not allowed" in log

    # every measurement, field and tag the dashboard and the alert rules ask for exists
    measurements = {v[0] for _, _, vs in rows(influxd, "SHOW MEASUREMENTS") for v in vs}
    fields: dict[str, set[str]] = {}
    for m in measurements:
        fields[m] = {v[0] for _, _, vs in rows(influxd, f'SHOW FIELD KEYS FROM "{m}"') for v in vs}
        fields[m] |= {v[0] for _, _, vs in rows(influxd, f'SHOW TAG KEYS FROM "{m}"') for v in vs}
    queries = influxql_queries()
    assert len(queries) >= 12
    for query in queries:
        for measurement, names in referenced_names(query).items():
            assert measurement in measurements, (measurement, query)
            missing = names - fields[measurement]
            assert not missing, f"{sorted(missing)} not in {measurement}: {query}"


@pytest.mark.serial  # asserts the will reaches InfluxDB within a time
async def test_a_real_agent_with_location_and_labels_and_its_last_will(
    tmp_path, influxd, ingest_factory, agent_factory
):
    """`vatio run` with a location and labels in its config: its statuses reach InfluxDB
    with the zone as a tag and the coordinates as fields; killed, its will makes it offline
    in InfluxDB and in `vatio fleet-status`."""
    from tests.integration.test_delivery import start_meters
    from vatio.simulators.configs import loopback_config

    sim, port = await start_meters()
    try:
        with shipped_broker(tmp_path) as broker:
            bridge = ingest_factory(bridge_config(tmp_path, broker, influxd.url), "bridge-1")
            cfg = tmp_path / "agent.yaml"
            cfg.write_text(
                loopback_config(
                    "centro", "gw-centro-07", tmp_path / "state", {"b": port},
                    [("m1", "b", 1, "eastron_sdm120", "500ms")], broker.url,
                    f"username: gw-centro-07, password: {USERS['gw-centro-07']}",
                )
                + "location: {latitude: 19.4326, longitude: -99.1332, name: Zócalo}\n"
                "labels: {zone: centro, building: palacio}\n"
            )  # fmt: skip
            agent = agent_factory(cfg)
            on = "\"agent\" = 'gw-centro-07' AND \"online\" = 1"
            await wait_until(lambda: influxd.count(DB, "status", "online", on) >= 1, 20, "online")
            await wait_until(
                lambda: influxd.count(DB, "telemetry", "seq", "\"device\" = 'm1'") >= 2, 20,
                "telemetry",
            )
            tagged = rows(influxd, 'SELECT last("lat"), last("lon"), last("place") FROM "status" '
                                   "WHERE \"kind\" = 'agent' GROUP BY \"zone\", \"building\"")
            assert [(t, v[0][1:]) for t, _, v in tagged] == [
                ({"zone": "centro", "building": "palacio"}, [19.4326, -99.1332, "Zócalo"])
            ]  # fmt: skip
            agent.kill()  # SIGKILL: no DISCONNECT, the broker publishes the will
            killed = time.monotonic()
            off = "\"agent\" = 'gw-centro-07' AND \"online\" = 0"
            await wait_until(lambda: influxd.count(DB, "status", "online", off) >= 1, 10, "will")
            assert time.monotonic() - killed < 3.0  # the broker sees the socket close at once
            res = await asyncio.to_thread(fleet_status, broker.url, "--json")
            assert res.returncode == 1
            (row,) = json.loads(res.stdout)["agents"]
            assert (row["agent"], row["state"], row["labels"]) == (
                "gw-centro-07", "offline", {"zone": "centro", "building": "palacio"}
            )  # fmt: skip
            assert bridge.stop() == 0
            assert "Traceback" not in bridge.output()
    finally:
        await sim.stop()


async def test_statuses_reach_victoriametrics_as_numbers_with_labels(
    tmp_path, victoria, ingest_factory
):
    """The v2 path (VictoriaMetrics): status history as ``status_online`` / ``status_degraded``
    / ``status_lat`` … series with the labels as labels (text fields are stored as 0 there);
    completeness is off (it needs InfluxQL) and the bridge says so."""
    fleet = Fleet(agents=3, devices=2)
    with shipped_broker(tmp_path) as broker:
        cfg = tmp_path / "ingest-vm.yaml"
        cfg.write_text(
            f"mqtt:\n  url: {broker.url}\n  username: vatio-ingest\n"
            f"  password: {USERS['vatio-ingest']}\n"
            f"influxdb:\n  url: {victoria.url}\n  api: v2\n  flush_interval: 200ms\n"
        )
        bridge = ingest_factory(cfg, "bridge-vm")
        await wait_until(lambda: "connected to MQTT broker" in bridge.output(), 20, "bridge")
        statuses = fleet.statuses(offline=frozenset({2}), degraded=frozenset({(3, 2)}))
        await asyncio.to_thread(publish, broker.url, list(statuses), login=FLEET_LOGIN)
        await wait_until(lambda: victoria.count("status_online") == 9, 15, "nine statuses")
        series = victoria.export('status_online{kind="agent"}')
        online = {s["metric"]["agent"]: s["values"][-1] for s in series}
        assert online == {"gw-0001": 1, "gw-0002": 0, "gw-0003": 1}
        assert {s["metric"]["zone"] for s in series} == {"norte", "sur", "oriente"}
        degraded = victoria.export("status_degraded")
        assert [(s["metric"]["site"], s["metric"]["device"]) for s in degraded
                if s["values"][-1] == 1] == [("site-0003", "meter-02")]  # fmt: skip
        lat = victoria.export('status_lat{device="meter-01",site="site-0001"}')
        assert lat[0]["values"] == [fleet.location(1, 1)["lat"]]
        assert bridge.stop() == 0
    assert "fleet.completeness needs InfluxQL" in bridge.output()

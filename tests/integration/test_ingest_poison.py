"""Poison messages through a real Mosquitto into real `vatio ingest` processes writing to
InfluxDB 1.6 (v1) and VictoriaMetrics (v2) at once (issue 12, items 4 and 8).

Every input is counted, none sampled: each valid message must land exactly once in each
database, with its names exactly as sent; each poison message must come back as exactly one
dead letter per bridge, with the expected kind; both bridges must still be running."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.test_status_http import get
from vatio.simulators.brokers import free_port
from vatio.simulators.fleet import publish

pytestmark = pytest.mark.integration

TS0 = 1_795_000_000_000  # ms, in the past: visible to both databases at once
VALID_COUNT = 300
FLOOD = 500
# stored exactly as sent by both databases (measured: agent/ingest/lineproto.py)
HOSTILE_VALID_NAMES = ["a'b", "a,b", "a b", "a=b", " lead", "trail ", "énergía_中_😀", "x" * 256]


def rfc3339(ms: int) -> str:
    from vatio.agent.messages import rfc3339 as fmt

    return fmt(ms / 1000)


def message(device: str, seq: int, values: dict[str, object], **extra: object) -> bytes:
    body = {"ts": rfc3339(TS0 + seq * 1000), "seq": seq, "device": device, "values": values}
    body.update(extra)
    return json.dumps(body).encode()


def valid_messages() -> list[tuple[str, bytes]]:
    """Plain telemetry (site ok), then messages whose names are odd but stored as sent."""
    out = [
        (f"vatio/v1/ok/m{i % 5}/telemetry", message(f"m{i % 5}", i, {"active_power_w": i * 1.5}))
        for i in range(1, VALID_COUNT + 1)
    ]
    for n, name in enumerate(HOSTILE_VALID_NAMES):
        out.append(("vatio/v1/odd/names/telemetry", message("names", 1000 + n, {name: n})))
    out.append(("vatio/v1/odd/m 1,x=y/telemetry", message("m 1,x=y", 2000, {"p": 1.0})))
    out.append(("vatio/v1/odd/médidor-ñ/telemetry", message("médidor-ñ", 2001, {"p": 2.0})))
    out.append(
        ("vatio/v1/odd/agent/telemetry", message("agent", 2002, {"p": 3.0}, agent="gw 01,x=y"))
    )
    event = {
        "ts": rfc3339(TS0),
        "seq": 3000,
        "event": "device_degraded",
        "message": 'say "hi" \\ back\tthere',
    }
    out.append(("vatio/v1/odd/ev/events", json.dumps(event).encode()))
    return out


def poison_messages() -> list[tuple[str, bytes, str]]:
    """(topic, payload, the kind of dead letter expected)."""
    t = "vatio/v1/bad/m1/telemetry"
    ok_ts = rfc3339(TS0)

    def body(values: object = None, **over: object) -> bytes:
        b: dict[str, object] = {"ts": ok_ts, "seq": 1, "values": values or {"p": 1}}
        b.update(over)
        return json.dumps(b).encode()

    head = f'{{"ts":"{ok_ts}","values":'.encode()
    return [
        (t, b'{"ts":"%s","values":{"p":%s}}' % (ok_ts.encode(), b"9" * 400), "value"),
        (t, body(seq=int("9" * 400)), "seq"),
        (t, body(seq=2**64), "seq"),
        (t, head + b"[" * 50_000, "too_deep"),
        (t, head + b'{"a":' * 10_000 + b"1" + b"}" * 10_001, "too_deep"),
        (t, head + b"[" * 100_000, "too_large"),
        (t, body({"p": 1}, blob="x" * 1_000_000), "too_large"),
        (t, b'{"ts":"%s","values":{"a\xff":1}}' % ok_ts.encode(), "not_json"),
        (t, b'{"ts":"%s","values":{"a\xed\xa0\x80":1}}' % ok_ts.encode(), "not_json"),
        (t, "{}".encode("utf-16"), "not_json"),
        (t, body({"a\\b": 1}), "name"),
        (t, body({"a\\": 1}), "name"),
        (t, body({"a\nb": 1}), "name"),
        (t, body({'a"b': 1}), "name"),
        (t, body({"a\tb": 1}), "name"),
        (t, body({"\ud800": 1}), "name"),
        (t, body({"": 1}), "name"),
        (t, body({"y" * 257: 1}), "name"),
        (t, body({"time": 1}), "name"),
        (t, body({"seq": 1}), "name"),
        (t, body({"_field": 1}), "name"),
        (t, body(agent="gw\\01"), "name"),
        (t, body(agent="gw\n01"), "name"),
        (t, body(agent='gw "01"'), "name"),
        ("vatio/v1/bad/m\\1/telemetry", body(), "name"),
        ("vatio/v1/bad/m1\\/telemetry", body(), "name"),
        ("vatio/v1/bad//telemetry", body(), "name"),
        (f"vatio/v1/bad/{'d' * 300}/telemetry", body(), "name"),
        (t, body({f"k{i}": i for i in range(10_000)}), "too_large"),
        (t, body({f"k{i}": i for i in range(1_001)}), "too_many_values"),
        (t, body(ts="0001-01-01T00:00:00+01:00"), "ts"),
        (t, body(ts="1970-01-01T00:00:00Z"), "ts"),
        (t, body(ts="9999-12-31T23:59:59Z"), "ts"),
        ("vatio/v1/bad/ev/events", json.dumps(
            {"ts": ok_ts, "seq": 1, "event": "x", "message": "two\nlines"}).encode(), "text"),
        (t, b"[1, 2]", "not_json"),
        (t, b"", "not_json"),
        # a flood of one kind, each quoting another name: counted under one label, logged 3 times
        *[(t, body({f"flood\\{i}": 1}), "name") for i in range(FLOOD)],
    ]  # fmt: skip


def bridge_config(
    tmp_path: Path, name: str, broker: str, db: str, api: str, http: str = ""
) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"mqtt:\n  url: {broker}\n  group: {name}\n"
        f"influxdb:\n  url: {db}\n  api: {api}\n  batch_size: 500\n  flush_interval: 200ms\n"
        f"dead_letter_topic: dl-{name}\n" + (f"http: {{listen: '{http}'}}\n" if http else "")
    )
    return path


def influx_names(influxd, what: str) -> set[str]:
    q = {
        "fields": 'SHOW FIELD KEYS FROM "telemetry"',
        "devices": 'SHOW TAG VALUES FROM "telemetry" WITH KEY = "device"',
        "agents": 'SHOW TAG VALUES FROM "telemetry" WITH KEY = "agent"',
    }[what]
    series = influxd.query("vatio", q)["results"][0].get("series", [])
    column = 0 if what == "fields" else 1
    return {row[column] for s in series for row in s["values"]}


async def test_poison_messages_become_dead_letters_and_every_valid_one_lands_once(
    tmp_path, mosquitto, influxd, victoria, ingest_factory, capture_factory
):
    valid = valid_messages()
    poison = poison_messages()
    rng = random.Random(12)
    inputs = [(t, p, None) for t, p in valid] + poison
    rng.shuffle(inputs)  # poison interleaved with valid messages

    http = f"127.0.0.1:{free_port()}"
    bridges = {
        "influx": ingest_factory(
            bridge_config(tmp_path, "influx", mosquitto.url, influxd.url, "v1", http), "b-influx"
        ),
        "vm": ingest_factory(
            bridge_config(tmp_path, "vm", mosquitto.url, victoria.url, "v2"), "b-vm"
        ),
    }
    await wait_until(
        lambda: all("connected to MQTT broker" in b.output() for b in bridges.values()),
        20,
        "bridges",
    )
    dead = {name: capture_factory(mosquitto.port, f"dl-{name}/#") for name in bridges}
    sent = await asyncio.to_thread(
        publish, mosquitto.url, [(t, p) for t, p, _ in inputs], connections=1
    )
    assert sent == len(inputs)

    plain = VALID_COUNT
    others = len(valid) - VALID_COUNT

    def landed_influx() -> int:
        return influxd.count("vatio", "telemetry", "seq", "site = 'ok'")

    def landed_vm() -> int:
        return victoria.count('telemetry_seq{site="ok"}')

    await wait_until(lambda: landed_influx() >= plain, 30, "the valid points in InfluxDB")
    await wait_until(lambda: landed_vm() >= plain, 30, "the valid points in VictoriaMetrics")
    await wait_until(
        lambda: all(len(c.messages) >= len(poison) for c in dead.values()), 30, "dead letters"
    )
    await asyncio.sleep(1)  # nothing more may come

    # every valid message exactly once, in each database
    odd_influx = influxd.count("vatio", "telemetry", "seq", "site = 'odd'") + influxd.count(
        "vatio", "events", "seq"
    )
    odd_vm = victoria.count('telemetry_seq{site="odd"}') + victoria.count("events_seq")
    lost = {
        "influxdb": (plain - landed_influx()) + (others - odd_influx),
        "victoriametrics": (plain - landed_vm()) + (others - odd_vm),
    }
    print(
        f"\npoison test: {len(inputs)} inputs ({len(valid)} valid, {len(poison)} poison); "
        f"valid lost: {lost}; "
        f"dead letters: { {k: len(c.messages) for k, c in dead.items()} }"
    )
    assert lost == {"influxdb": 0, "victoriametrics": 0}
    assert landed_influx() == plain and landed_vm() == plain  # and none twice

    # names exactly as sent
    fields = influx_names(influxd, "fields")
    assert set(HOSTILE_VALID_NAMES) <= fields, set(HOSTILE_VALID_NAMES) - fields
    assert {"m 1,x=y", "médidor-ñ"} <= influx_names(influxd, "devices")
    assert influx_names(influxd, "agents") == {"gw 01,x=y"}
    events = influxd.query("vatio", 'SELECT "message" FROM "events"')
    assert events["results"][0]["series"][0]["values"][0][1] == 'say "hi" \\ back\tthere'
    vm_names = {s["metric"]["__name__"] for s in victoria.export('{site="odd"}')}
    assert {f"telemetry_{n}" for n in HOSTILE_VALID_NAMES} <= vm_names
    vm_devices = {s["metric"]["device"] for s in victoria.export('{site="odd"}')}
    assert {"m 1,x=y", "médidor-ñ"} <= vm_devices
    # nothing of the poison reached either database
    assert influxd.count("vatio", "telemetry", "seq", "site = 'bad'") == 0
    assert victoria.count('{site="bad"}') == 0

    # each poison message: one dead letter per bridge, with the expected kind, bounded
    expected = Counter(kind for _, _, kind in poison)
    for name, capture in dead.items():
        letters = [body for _, body, _ in capture.messages]
        assert len(letters) == len(poison), name
        assert Counter(b["kind"] for b in letters) == expected, name
        for b in letters:
            assert b["reason"] and len(b["reason"]) < 400, b["reason"]
            if "payload" in b:
                data = b["payload"].encode()
            else:
                data = base64.b64decode(b["payload_base64"])
            assert len(data) == b["size"] or (b["truncated"] and len(data) <= 8192)
        big = [b for b in letters if b["size"] > 1_000_000]
        assert big and all(b["truncated"] and len(b["sha256"]) == 64 for b in big)
        names = [b["reason"] for b in letters if b["kind"] == "name"]
        assert any("'a\\\\b'" in r and "backslash" in r for r in names), names
        assert any("'a\\nb'" in r and "newline" in r for r in names), names
        assert any("'m\\\\1'" in r for r in names), names

    # counted by kind: a fixed set of labels, whatever the names in the reasons
    metrics = get(f"http://{http}/metrics")[1]
    counted = {
        line.split('reason="')[1].split('"')[0]: int(float(line.split()[-1]))
        for line in metrics.splitlines()
        if line.startswith("vatio_ingest_dead_letters_total{")
    }
    assert counted == dict(expected), metrics
    assert get(f"http://{http}/healthz")[0] == 200

    for name, bridge in bridges.items():
        assert bridge.proc.poll() is None, f"the {name} bridge died:\n{bridge.output()[-3000:]}"
        logged = bridge.output().count("dead letter from")
        assert logged <= 3 * len(expected), logged  # the first 3 of each kind, no flood
        assert "Traceback" not in bridge.output()
        assert bridge.stop() == 0


async def test_a_point_the_database_refuses_is_a_dead_letter_and_the_rest_land(
    tmp_path, mosquitto, influxd, ingest_factory, capture_factory
):
    """InfluxDB 1.6 answers 400 (field type conflict) for one point of a batch: that message
    is a dead letter saying why, the others of its batch are written, the bridge goes on."""
    import urllib.request

    create = urllib.request.Request(
        f"{influxd.url}/query", data=b"q=CREATE+DATABASE+vatio", method="POST"
    )
    urllib.request.urlopen(create).close()
    # an older writer made "p" an integer field of telemetry: a float p is refused from now on
    old = urllib.request.Request(
        f"{influxd.url}/write?db=vatio&precision=ms",
        data=b"telemetry,site=old,device=m p=1i 1795000000000",
        method="POST",
    )
    urllib.request.urlopen(old).close()
    bridge = ingest_factory(
        bridge_config(tmp_path, "influx", mosquitto.url, influxd.url, "v1"), "b-influx"
    )
    await wait_until(lambda: "connected to MQTT broker" in bridge.output(), 20, "the bridge")
    dead = capture_factory(mosquitto.port, "dl-influx/#")
    good = [
        (f"vatio/v1/c/m{i % 3}/telemetry", message(f"m{i % 3}", i, {"q": i})) for i in range(1, 61)
    ]
    inputs = [*good[:30], ("vatio/v1/c/m9/telemetry", message("m9", 1, {"p": 2.5})), *good[30:]]
    assert await asyncio.to_thread(publish, mosquitto.url, inputs, connections=1) == len(inputs)
    await wait_until(lambda: len(dead.messages) >= 1, 20, "the dead letter")
    await wait_until(
        lambda: influxd.count("vatio", "telemetry", "seq", "site = 'c'") >= len(good), 20, "points"
    )
    await asyncio.sleep(0.5)
    lost = len(good) - influxd.count("vatio", "telemetry", "seq", "site = 'c'")
    print(f"\nrefused-point test: {len(inputs)} inputs, 1 refused by the database, {lost} lost")
    assert lost == 0
    [(_, letter, _)] = dead.messages
    assert letter["kind"] == "refused_by_database" and "field type conflict" in letter["reason"]
    assert bridge.proc.poll() is None and bridge.stop() == 0

"""Vatio messages → InfluxDB line protocol, and the checks that keep bad ones out."""

from __future__ import annotations

import json

import pytest

from vatio.agent.ingest.lineproto import BadMessage, to_line

TOPIC = "vatio/v1/planta norte/m,1/telemetry"


def body(**over):
    b = {
        "ts": "2026-11-23T15:04:05.123Z",
        "seq": 7,
        "site": "planta norte",
        "device": "m,1",
        "values": {"active_power_w": 1500, "power_factor": 0.93, "voltage_l1_v": None},
    }
    b.update(over)
    return json.dumps(b).encode()


def test_a_telemetry_message_is_one_point_with_float_fields_and_ms_timestamp():
    line = to_line(TOPIC, body(agent="gw-01"))
    assert line == (
        "telemetry,site=planta\\ norte,device=m\\,1,agent=gw-01 "
        "seq=7i,active_power_w=1500.0,power_factor=0.93 1795446245123"
    )


def test_a_status_makes_no_point():
    assert to_line("vatio/v1/s/gw/status", b'{"state":"online"}') is None


def test_an_event_keeps_its_text():
    payload = json.dumps(
        {"ts": "2026-11-23T15:04:05Z", "seq": 1, "event": "device_lost", "message": 'say "x"'}
    ).encode()
    line = to_line("vatio/v1/s/m1/events", payload)
    assert (
        line
        == 'events,site=s,device=m1 seq=1i,event="device_lost",message="say \\"x\\"" 1795446245000'
    )


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("other/v1/s/m/telemetry", body(), "not under"),
        ("vatio/v1/s/telemetry", body(), "is not vatio/v1/<site>"),
        ("vatio/v1/s/m/weather", body(), "unknown stream"),
        (TOPIC, b"{nope", "not JSON"),
        (TOPIC, b"[1, 2]", "not a JSON object"),
        (TOPIC, body(site="elsewhere"), "names site"),
        (TOPIC, body(ts="yesterday"), "RFC 3339"),
        (TOPIC, body(ts="2026-11-23T15:04:05"), "no time zone"),
        (TOPIC, body(seq=1.5), "'seq' 1.5 is not a 64-bit integer"),
        (TOPIC, body(values={"p": "12"}), "not a number"),
        (TOPIC, body(values={"p": True}), "not a number"),
        (TOPIC, body(values={"p": float("nan")}), "not a finite number"),
        (TOPIC, body(values=[1]), "'values' is missing"),
        ("vatio/v1/s/m/metrics", b'{"ts":"2026-11-23T15:04:05Z","values":{"a":null}}', "no values"),
    ],
)
def test_a_broken_message_is_refused_with_the_reason(topic, payload, reason):
    with pytest.raises(BadMessage, match=reason):
        to_line(topic, payload)

"""The converter's limits and name rules, and the bridge's handling of whatever fails for one
message (issue 12, items 4 and 8)."""

from __future__ import annotations

import base64
import json
import logging
import time

import paho.mqtt.client as mqtt
import pytest

from vatio.agent.influx import Rejected
from vatio.agent.ingest.bridge import IngestBridge, RateLimitedLog, excerpt
from vatio.agent.ingest.config import parse_ingest_config_text
from vatio.agent.ingest.lineproto import BadMessage, Converter, Limits, to_line, too_deep
from vatio.common.vocabulary import _ALL as VOCABULARY
from vatio.common.yamlconf import ConfigError

T = "vatio/v1/s/m/telemetry"
TS = "2026-11-23T15:04:05.123Z"


def body(values: object, **over: object) -> bytes:
    b: dict[str, object] = {"ts": TS, "seq": 1, "values": values}
    b.update(over)
    return json.dumps(b).encode()


def refused(topic: str, payload: bytes, converter: Converter | None = None) -> BadMessage:
    with pytest.raises(BadMessage) as err:
        (converter or Converter()).to_line(topic, payload)
    return err.value


ALL_NAMES = [q.name for q in VOCABULARY]
SITE_LEVEL = ("site_", "bill_")  # only in the site message (agent/metrics/site.py)
# the vocabulary lists what devices read, then what agent/metrics computes (from
# demand_15m_kw on): a telemetry message holds only the first kind, a device's metrics message
# only the second, the site's message only the site-level names; the largest real message is
# the largest of the three, not all of them at once
_FIRST_METRIC = ALL_NAMES.index("demand_15m_kw")
_DEVICE = [n for n in ALL_NAMES if not n.startswith(SITE_LEVEL)]
_SITE = [n for n in ALL_NAMES if n.startswith(SITE_LEVEL)]


@pytest.mark.parametrize(
    "names",
    [
        [n for n in _DEVICE if ALL_NAMES.index(n) < _FIRST_METRIC],
        [n for n in _DEVICE if ALL_NAMES.index(n) >= _FIRST_METRIC],
        _SITE,
    ],
    ids=["telemetry", "metrics", "site"],
)
def test_the_defaults_hold_the_largest_real_message_five_times_over(names):
    # every name of its kind at once: more than any one device publishes (an SDM630 sends 38
    # values, a SunSpec inverter with 8 MPPT inputs about 60)
    payload = json.dumps(
        {
            "ts": TS,
            "seq": 2**40,
            "site": "s" * 64,
            "device": "d" * 64,
            "agent": "a" * 64,
            "values": {n: -123456.789012 for n in names},
            "quality": {n: "exception 2" for n in names},
        }
    ).encode()
    limits = Limits()
    assert len(payload) * 5 <= limits.max_payload_bytes, len(payload)
    assert len(names) * 5 <= limits.max_values
    assert max(len(n) for n in ALL_NAMES) * 4 <= limits.max_name_length
    line = to_line(f"vatio/v1/{'s' * 64}/{'d' * 64}/telemetry", payload)
    assert line is not None and line.count("=") == 3 + len(names) + 1


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b'{"ts":"%s","values":{"p":%s}}' % (TS.encode(), b"9" * 400), "value"),
        (b"[" * 60_000, "too_deep"),
        (b'{"a":' * 13_000, "too_deep"),
        (b"[" * 100_000, "too_large"),
        (body({f"k{i}": 1 for i in range(10_000)}), "too_large"),
        (body({f"k{i}": 1 for i in range(1_001)}), "too_many_values"),
        (b'{"ts":"%s","values":{"a\xed\xa0\x80":1}}' % TS.encode(), "not_json"),
        (body({"p": 1}).decode().encode("utf-16"), "not_json"),
        (body({"p": 1}, seq=2**63), "seq"),
        (body({"p": 1}, ts="0001-01-01T00:00:00+01:00"), "ts"),
        (body({"p": 1}, ts="1970-01-01T00:00:00Z"), "ts"),
        (body({"p": 1}, ts="2262-04-12T00:00:00Z"), "ts"),
    ],
)
def test_what_crashed_or_slipped_through_is_refused_with_a_kind(payload, kind):
    assert refused(T, payload).kind == kind


def test_a_deep_payload_costs_no_recursion_and_little_time():
    payload = b'{"x":' * 13_000 + b"1" + b"}" * 13_000  # 78 KB: measured under a raised limit
    converter = Converter(Limits(max_payload_bytes=1 << 20))
    started = time.perf_counter()
    assert refused(T, payload, converter).kind == "too_deep"
    assert too_deep(b'"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["', 3) is False  # inside a string
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a'b", True),
        ('a"b', False),
        ("a,b", True),
        ("a b", True),
        ("a=b", True),
        (" lead", True),
        ("énergía_中_😀", True),
        ("\u2028\ufeff\u00a0", True),
        ("x" * 256, True),
        ("a\\b", False),
        ("a\\", False),
        ("a\nb", False),
        ("\ta", False),
        ("a\x85", False),
        ("\ud800", False),
        ("", False),
        ("x" * 257, False),
        ("time", False),
        ("seq", False),
        ("_field", False),
    ],
)
def test_a_value_name_is_stored_as_sent_or_refused_naming_it(name, ok):
    if ok:
        line = to_line(T, body({name: 1}))
        assert line is not None
        return
    err = refused(T, body({name: 1}))
    assert err.kind == "name"
    assert "value name" in str(err) and len(str(err)) < 300
    if name and len(name) < 60:
        assert repr(name) in str(err)


@pytest.mark.parametrize(
    ("topic", "agent", "what"),
    [
        ("vatio/v1/s/m\\1/telemetry", None, "device 'm\\\\1'"),
        ("vatio/v1/s\\/m/telemetry", None, "site 's\\\\'"),
        ("vatio/v1//m/telemetry", None, "site is empty"),
        (T, "gw\n01", "agent 'gw\\n01'"),
        (T, "gw\\01", "agent 'gw\\\\01'"),
    ],
)
def test_tags_follow_the_same_rules(topic, agent, what):
    payload = body({"p": 1}, **({"agent": agent} if agent else {}))
    err = refused(topic, payload)
    assert err.kind == "name" and what in str(err), str(err)


def test_an_event_text_is_kept_exactly_unless_it_holds_a_newline():
    event = {"ts": TS, "seq": 1, "event": "e", "message": 'a "b" \\ c\td'}
    line = to_line("vatio/v1/s/m/events", json.dumps(event).encode())
    assert line is not None and 'message="a \\"b\\" \\\\ c\td"' in line
    event["message"] = "two\nlines"
    err = refused("vatio/v1/s/m/events", json.dumps(event).encode())
    assert err.kind == "text" and "newline" in str(err)


def test_a_name_pattern_narrows_the_names():
    converter = Converter(Limits(name_pattern="[a-z0-9_]+"))
    assert converter.to_line(T, body({"active_power_w": 1})) is not None
    err = refused(T, body({"Power W": 1}), converter)
    assert err.kind == "name" and "name_pattern" in str(err)


def test_limits_are_configured_with_located_errors():
    cfg = parse_ingest_config_text(
        "influxdb: {url: 'http://h:8086'}\n"
        "limits: {max_payload_bytes: 2048, max_values: 10, name_pattern: '[a-z_]+'}\n"
    )
    limits = cfg.limits.to_limits()
    assert (limits.max_payload_bytes, limits.max_values, limits.max_depth) == (2048, 10, 16)
    for text, expected in [
        ("limits: {max_depth: 1}\n", "limits.max_depth"),
        ("limits: {name_pattern: '[a-'}\n", "not a regular expression"),
        ("limits: {max_name_length: 100000}\n", "limits.max_name_length"),
        ("limits: {dead_letter_payload_bytes: 10}\n", "limits.dead_letter_payload_bytes"),
        ("limits: {max_payload: 10}\n", "limits.max_payload"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_ingest_config_text("influxdb: {url: 'http://h:8086'}\n" + text, "ingest.yaml")
        assert expected in str(err.value) and "ingest.yaml:2" in str(err.value), str(err.value)


# -- the bridge around it -------------------------------------------------------------------


def test_a_dead_letter_carries_a_bounded_excerpt():
    small = excerpt(b'{"a":1}', 8192)
    assert small == {"size": 7, "payload": '{"a":1}'}
    big = excerpt(("é" * 10_000).encode(), 8191)  # cut in the middle of a character
    assert big["truncated"] and big["size"] == 20_000 and len(big["sha256"]) == 64
    assert big["payload"] == "é" * 4095
    binary = excerpt(b"\xff" * 10_000, 256)
    assert len(base64.b64decode(binary["payload_base64"])) == 256


def test_repeated_warnings_are_rate_limited(caplog):
    limiter = RateLimitedLog(first=3, period=60)
    with caplog.at_level(logging.WARNING):
        for i in range(1000):
            limiter.warning("name", "dead letter %d", i)
        limiter.warning("ts", "another kind")
    assert len(caplog.records) == 4


class _Writer:
    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, lines: list[str]) -> None:
        if any("boom" in line for line in lines):
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "a bug in the writer")
        if any("refuse" in line for line in lines):
            raise Rejected("HTTP 400: no")
        self.written.extend(lines)

    def close(self) -> None:
        pass


def _msg(topic: bytes, payload: bytes) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(topic=topic)
    msg.payload = payload
    return msg


def test_the_bridge_turns_any_failure_of_one_message_into_a_dead_letter(monkeypatch):
    cfg = parse_ingest_config_text("influxdb: {url: 'http://h:8086', api: v1}\n")
    bridge = IngestBridge(cfg, writer=_Writer())
    original = bridge._converter.to_line

    def flaky(topic: str, payload: bytes) -> str | None:
        if payload == b"crash":
            raise MemoryError("unexpected")
        return original(topic, payload)

    monkeypatch.setattr(bridge._converter, "to_line", flaky)
    messages = [
        (0, _msg(T.encode(), body({"p": 1}))),
        (0, _msg(T.encode(), b"crash")),
        (0, _msg(b"vatio/v1/s/\xff/telemetry", body({"p": 1}))),
        (0, _msg(T.encode(), body({"p": 1}, agent="boom"))),
        (0, _msg(T.encode(), body({"p": 1}, agent="refuse"))),
        (0, _msg(T.encode(), body({"p": 2}))),
    ]
    batch = bridge._convert(messages)
    assert [(i, kind) for i, _, kind in batch.dead] == [(1, "internal"), (2, "topic")]
    assert len(batch.lines) == 4
    rejected = bridge._write_all(bridge._writer, batch.lines)  # type: ignore[arg-type]
    assert [(batch.line_owner[i], kind) for i, _, kind in rejected] == [
        (3, "internal"),
        (4, "refused_by_database"),
    ]
    assert len(bridge._writer.written) == 2  # type: ignore[union-attr]

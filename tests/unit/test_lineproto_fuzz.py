"""Fuzzing the converter (hypothesis): whatever comes in, ``to_line`` returns a line or None
or raises BadMessage, never anything else; and a valid message's line parses back, with a
small line-protocol parser written here, to the same names and values."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vatio.agent.ingest.lineproto import KINDS, BadMessage, Converter, Limits, to_line

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STREAMS = st.sampled_from(["telemetry", "metrics", "events", "status", "weather"])
LEVEL = st.text(max_size=12)
HUGE = b"9" * 400  # an integer no float can hold: OverflowError on main
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def check(topic: str, payload: bytes) -> str | None:
    try:
        return to_line(topic, payload)
    except BadMessage as exc:
        assert exc.kind in KINDS, exc.kind
        return None


TOPICS = st.text(max_size=60) | st.builds(
    lambda site, device, stream: f"vatio/v1/{site}/{device}/{stream}", LEVEL, LEVEL, STREAMS
)
# bytes that are mostly JSON: a contract-shaped message with a few bytes changed
NEAR_JSON = st.builds(
    lambda body, cuts: _mutate(json.dumps(body).encode(), cuts),
    st.fixed_dictionaries({"ts": st.just("2026-11-23T15:04:05Z"), "values": st.dictionaries(
        st.text(max_size=6), st.integers() | st.floats(), max_size=4)}),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
)  # fmt: skip


def _mutate(data: bytes, cuts: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for at, byte in cuts:
        out[at % len(out)] = byte
    return bytes(out)


@SETTINGS
@given(TOPICS, st.binary(max_size=300) | NEAR_JSON)
@example("vatio/v1/s/m/telemetry", b'{"ts":"2026-11-23T15:04:05Z","values":{"p":%s}}' % HUGE)
@example("vatio/v1/s/m/telemetry", b"[" * 100_000)
@example("vatio/v1/s/m/telemetry", b'{"a":' * 3000)
@example("vatio/v1/s/m/telemetry", b'{"ts":"2026-11-23T15:04:05Z","values":{"\xed\xa0\x80":1}}')
@example("vatio/v1/s/m/telemetry", b'{"ts":"0001-01-01T00:00:00+01:00","values":{"p":1}}')
def test_arbitrary_bytes_never_raise_anything_but_bad_message(topic: str, payload: bytes) -> None:
    check(topic, payload)


@SETTINGS
@given(LEVEL, LEVEL, STREAMS, json_values)
def test_arbitrary_json_never_raises_anything_but_bad_message(
    site: str, device: str, stream: str, body: Any
) -> None:
    check(f"vatio/v1/{site}/{device}/{stream}", json.dumps(body).encode())


@SETTINGS
@given(
    LEVEL,
    LEVEL,
    STREAMS,
    st.fixed_dictionaries(
        {},
        optional={
            "ts": st.text(max_size=30) | st.datetimes().map(lambda d: d.isoformat() + "Z"),
            "seq": st.integers() | st.floats() | st.text(max_size=5),
            "agent": st.text(max_size=10) | st.integers(),
            "site": LEVEL,
            "values": st.dictionaries(
                st.text(max_size=10), st.none() | st.integers() | st.floats() | st.text(max_size=3)
            ),
            "event": st.text(max_size=20),
            "message": st.text(max_size=20),
        },
    ),
)
def test_contract_shaped_json_never_raises_anything_but_bad_message(
    site: str, device: str, stream: str, body: dict[str, Any]
) -> None:
    check(f"vatio/v1/{site}/{device}/{stream}", json.dumps(body).encode())


# -- round trip ---------------------------------------------------------------------------


def _split(text: str, seps: str) -> tuple[str, str, str]:
    """The text up to the first unescaped separator in ``seps``, that separator, the rest
    (``\\,``, ``\\=`` and ``\\ `` are escapes; any other backslash is itself)."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in ",= ":
            out.append(text[i + 1])
            i += 2
            continue
        if c in seps:
            return "".join(out), c, text[i + 1 :]
        out.append(c)
        i += 1
    return "".join(out), "", ""


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, Any], int]:
    """measurement, tags, fields and timestamp of one line, as InfluxDB reads it."""
    assert "\n" not in line
    measurement, sep, rest = _split(line, ", ")
    tags: dict[str, str] = {}
    while sep == ",":
        key, _, rest = _split(rest, "=")
        value, sep, rest = _split(rest, ", ")
        tags[key] = value
    assert sep == " "
    fields: dict[str, Any] = {}
    while True:
        key, eq, rest = _split(rest, "=")
        assert eq == "=" and key not in fields
        if rest.startswith('"'):
            i, chars = 1, []
            while rest[i] != '"':
                if rest[i] == "\\" and rest[i + 1] in '"\\':
                    i += 1
                chars.append(rest[i])
                i += 1
            fields[key], rest = "".join(chars), rest[i + 1 :]
        else:
            raw, _, _ = rest.partition(",")
            raw = raw.partition(" ")[0]
            rest = rest[len(raw) :]
            fields[key] = int(raw[:-1]) if raw.endswith("i") else float(raw)
        if rest.startswith(","):
            rest = rest[1:]
            continue
        assert rest.startswith(" ")
        return measurement, tags, fields, int(rest[1:])


# names as the rules allow them: any character but controls, backslash, quote, surrogates
NAME_CHARS = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters='\\/+#"')
NAMES = st.text(NAME_CHARS, min_size=1, max_size=20)
VALUE_NAMES = NAMES.filter(lambda n: n not in ("time", "seq") and not n.startswith("_"))
NUMBERS = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**70), 2**70)


@SETTINGS
@given(
    NAMES,
    NAMES,
    st.sampled_from(["telemetry", "metrics"]),
    st.dictionaries(VALUE_NAMES, NUMBERS | st.none(), min_size=1, max_size=20),
    st.integers(0, 2**63 - 1),
    st.integers(1, 9_000_000_000_000),
    st.none() | NAMES,
)
def test_a_valid_message_parses_back_to_the_same_names_and_values(
    site: str,
    device: str,
    stream: str,
    values: dict[str, float | int | None],
    seq: int,
    ms: int,
    agent: str | None,
) -> None:
    from datetime import UTC, datetime, timedelta

    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    body: dict[str, Any] = {"ts": when.isoformat(), "seq": seq, "values": values}
    if agent is not None:
        body["agent"] = agent
    line = to_line(f"vatio/v1/{site}/{device}/{stream}", json.dumps(body).encode())
    assert line is not None
    measurement, tags, fields, timestamp = parse_line(line)
    assert measurement == stream
    assert tags == {"site": site, "device": device, **({"agent": agent} if agent else {})}
    assert timestamp == ms
    expected = {k: float(v) for k, v in values.items() if v is not None}
    assert fields == {"seq": seq, **expected}
    for k, v in expected.items():  # the very same float, -0.0 included
        assert math.copysign(1, fields[k]) == math.copysign(1, v)


@SETTINGS
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n")))
def test_an_event_text_parses_back_exactly(text: str) -> None:
    body = {"ts": "2026-11-23T15:04:05Z", "seq": 1, "event": "e", "message": text}
    line = to_line("vatio/v1/s/m/events", json.dumps(body).encode())
    assert line is not None
    assert parse_line(line)[2] == {"seq": 1, "event": "e", "message": text}


@SETTINGS
@given(st.integers(2, 40), st.integers(0, 60), st.sampled_from([b"[", b'{"a":']))
def test_depth_is_measured_exactly_before_parsing(limit: int, depth: int, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    inner = opener * depth + b"1" + closer * depth
    payload = b'{"ts":"2026-11-23T15:04:05Z","seq":1,"values":{"p":1},"x":' + inner + b"}"
    conv = Converter(Limits(max_depth=limit))
    try:
        conv.to_line("vatio/v1/s/m/telemetry", payload)
        assert depth + 1 <= limit
    except BadMessage as exc:
        assert exc.kind == "too_deep" and depth + 1 > limit

"""One Vatio MQTT message → one InfluxDB line-protocol point (DESIGN.md, "External contracts").

measurement = stream (``telemetry``, ``metrics``, ``events``); tags ``site`` and ``device``
from the topic, ``agent`` when the payload names one; fields = ``values`` (always floats, so a
value that happens to be whole never changes a field's type) plus ``seq`` as an integer;
timestamp = ``ts`` in milliseconds. Statuses are state, not history: they make no point.

Tags come from the topic, not the payload: the broker's ACL decides who may publish under a
site's topics, so a payload that claims another site is refused rather than trusted.

Everything is checked before it is written: VictoriaMetrics answers 204 to a malformed line
and silently drops it (stack-notes §4.2), so a bad message must be caught here and sent to
the dead-letter topic instead.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from functools import lru_cache

TOPIC_PREFIX = "vatio/v1/"
NUMERIC_STREAMS = ("telemetry", "metrics")


class BadMessage(ValueError):
    """The message breaks the contract; the text says how."""


@lru_cache(maxsize=8192)  # the same few site, device and quantity names, again and again
def _escape_tag(text: str) -> str:
    if "\n" in text or "\r" in text or not text:
        raise BadMessage(f"empty or multi-line name {text!r}")
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _escape_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def timestamp_ms(ts: object) -> int:
    if not isinstance(ts, str):
        raise BadMessage("'ts' is missing or not a string")
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        raise BadMessage(f"'ts' {ts[:40]!r} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        raise BadMessage(f"'ts' {ts[:40]!r} has no time zone (write it in UTC, ending in Z)")
    return round(when.timestamp() * 1000)


def to_line(topic: str, payload: bytes | bytearray) -> str | None:
    """The point for one message, or ``None`` for a status; :class:`BadMessage` otherwise."""
    if not topic.startswith(TOPIC_PREFIX):
        raise BadMessage(f"topic {topic!r} is not under {TOPIC_PREFIX}")
    parts = topic[len(TOPIC_PREFIX) :].split("/")
    if len(parts) != 3:
        raise BadMessage(f"topic {topic!r} is not {TOPIC_PREFIX}<site>/<device>/<stream>")
    site, device, stream = parts
    if stream == "status":
        return None
    if stream not in NUMERIC_STREAMS and stream != "events":
        raise BadMessage(f"unknown stream {stream!r} (telemetry, metrics, status, events)")
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadMessage(f"payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadMessage("payload is not a JSON object")
    if body.get("site", site) != site or body.get("device", device) != device:
        raise BadMessage(
            f"payload names site {body.get('site')!r} / device {body.get('device')!r}, "
            f"the topic {site!r} / {device!r}"
        )
    ms = timestamp_ms(body.get("ts"))
    tags = f"{stream},site={_escape_tag(site)},device={_escape_tag(device)}"
    agent = body.get("agent")
    if agent is not None:
        if not isinstance(agent, str):
            raise BadMessage("'agent' is not a string")
        tags += f",agent={_escape_tag(agent)}"
    fields = []
    seq = body.get("seq")
    if seq is not None:
        if type(seq) is not int:
            raise BadMessage("'seq' is not an integer")
        fields.append(f"seq={seq}i")
    if stream == "events":
        for key in ("event", "message"):
            value = body.get(key)
            if isinstance(value, str):
                fields.append(f'{key}="{_escape_string(value)}"')
    else:
        values = body.get("values")
        if not isinstance(values, dict):
            raise BadMessage("'values' is missing or not an object")
        for name, value in values.items():
            if value is None:
                continue  # not read this time; the reason is under "quality"
            if type(value) is not float and type(value) is not int:
                raise BadMessage(f"value {name!r} is {value!r}, not a number")
            number = float(value)
            if not math.isfinite(number):
                raise BadMessage(f"value {name!r} is {value!r}, not a finite number")
            fields.append(f"{_escape_tag(name)}={number!r}")
    if not fields:
        raise BadMessage("no values to write")
    return f"{tags} {','.join(fields)} {ms}"

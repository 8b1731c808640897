"""Retained status messages → the ``status`` measurement: the fleet's state history (issue 15).

One point per status message::

    status,site=S,device=D,agent=A,kind=agent|device[,<label>=<value>…]
        state="online",online=1i,degraded=0i,seq=12i,version="0.9.0",backlog=0i,
        spool_dropped=0i,reason="…",lat=19.43,lon=-99.13,place="…"   <time>

``kind`` is ``agent`` for the agent's own status (its device slot is its ``agent_id``) and
``device`` for a device's. Labels (``labels`` in the payload, agent/fleetinfo.py) become tags,
so dashboards group by zone; the location becomes fields (tags would make a series of every
coordinate). Labels are checked here as in ``vatio check`` (agent/config.py): a status that
breaks the rules is a dead letter, never a series per hostile key.

**Time.** A status carries the ``ts`` of when it was built. An ``offline`` status is the
agent's last will, built when the agent *connected*: its ``ts`` is not when it went offline.
So an offline status takes the bridge's clock when it arrives; a retained offline status
delivered again on a bridge's (re)subscription is then written once more at that time, which
only repeats the same state.
"""

from __future__ import annotations

import json
import math
import re

from vatio.agent.config import LABEL_KEY_PATTERN, MAX_LABELS, RESERVED_LABELS
from vatio.agent.ingest.lineproto import (
    INT64_MAX,
    INT64_MIN,
    BadMessage,
    Converter,
    show,
    timestamp_ms,
)

_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
_TEXT_FIELDS = {"version": "version", "reason": "reason"}
_INT_FIELDS = ("backlog", "spool_dropped")
_BAD_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _text(value: object, limit: int = 300) -> str | None:
    """A string field's line-protocol form, or None when there is nothing storable."""
    if not isinstance(value, str) or not value:
        return None
    value = _BAD_TEXT.sub(" ", value[:limit])
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def status_line(
    converter: Converter, site: str, device: str, payload: bytes | bytearray, arrival_ms: int
) -> tuple[str, str, str] | None:
    """The point for one status, its agent and its state; None for a status that names no
    agent (left out, like before statuses were written); :class:`BadMessage` otherwise."""
    if len(payload) > converter.limits.max_payload_bytes:
        raise BadMessage(f"payload is {len(payload)} bytes", "too_large")
    try:
        body = json.loads(bytes(payload).decode())
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadMessage("status payload is not UTF-8 JSON", "not_json") from None
    if not isinstance(body, dict):
        raise BadMessage("status payload is not a JSON object", "not_json")
    state = body.get("state")
    if not isinstance(state, str) or not state or _BAD_TEXT.search(state) or len(state) > 32:
        raise BadMessage("status has no 'state' (online, offline, degraded)", "contract")
    agent = body.get("agent")
    if agent is None:
        return None  # not from a Vatio agent (every status of the contract names its agent)
    if not isinstance(agent, str):
        raise BadMessage("status 'agent' is not a string", "name")
    tags = (
        f"status,site={converter.tag(site, 'site')},device={converter.tag(device, 'device')}"
        f",agent={converter.tag(agent, 'agent')},kind={'agent' if agent == device else 'device'}"
    )
    labels = body.get("labels") or {}
    if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
        raise BadMessage(f"'labels' is not an object of at most {MAX_LABELS} labels", "name")
    for key in sorted(labels):  # line protocol wants tags sorted for speed; any order works
        value = labels[key]
        if not _LABEL_KEY.match(key) or key in RESERVED_LABELS or key == "kind":
            raise BadMessage(f"label name {show(key)} is not allowed", "name")
        if not isinstance(value, str):
            raise BadMessage(f"label {show(key)} is not a string", "name")
        tags += f",{key}={converter.tag(value, 'label value')}"
    online = state == "online"
    fields = [
        f"state={_text(state)}",
        f"online={int(online)}i",
        f"degraded={int(state == 'degraded')}i",
    ]
    seq = body.get("seq")
    if type(seq) is int and INT64_MIN <= seq <= INT64_MAX:
        fields.append(f"seq={seq}i")
    for key, name in _TEXT_FIELDS.items():
        text = _text(body.get(key))
        if text is not None:
            fields.append(f"{name}={text}")
    for key in _INT_FIELDS:
        number = body.get(key)
        if type(number) is int and 0 <= number <= INT64_MAX:
            fields.append(f"{key}={number}i")
    location = body.get("location")
    if isinstance(location, dict):
        lat, lon = location.get("lat"), location.get("lon")
        if (
            isinstance(lat, int | float)
            and isinstance(lon, int | float)
            and math.isfinite(lat)
            and math.isfinite(lon)
            and -90 <= lat <= 90
            and -180 <= lon <= 180
        ):
            fields += [f"lat={float(lat)!r}", f"lon={float(lon)!r}"]
        place = _text(location.get("name"))
        if place is not None:
            fields.append(f"place={place}")
    ms = arrival_ms if state == "offline" else timestamp_ms(body.get("ts"))
    return f"{tags} {','.join(fields)} {ms}", agent, state

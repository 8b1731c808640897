"""The remote-management contract: topics and JSON payloads of requests and responses.

Topics live under their own root, ``vatio-cmd/v1``, beside the data tree ``vatio/v1``, so
the broker's ACL can keep them apart: an agent's write permission on its site's data
(``vatio/v1/{site}/#``) never lets it forge a command, and the ingest bridge never sees one.

* request: ``vatio-cmd/v1/{site}/{agent_id}/cmd/{sender}``. ``sender`` is the operator's MQTT
  login: the shipped ACL lets login ``X`` publish only to ``…/cmd/X``, so the broker vouches
  for it (Mosquitto 2.0 passes nothing else about the publisher to the subscriber).
* response: ``vatio-cmd/v1/{site}/{agent_id}/reply/{sender}[/…]``. With MQTT 5 the request's
  Response Topic (which must lie under that prefix) and Correlation Data are used; with
  MQTT 3.1.1 (no properties) the response goes to ``…/reply/{sender}`` and carries the
  request's ``id``, which every response carries anyway.

Request payload: ``{"v": 1, "id": "<unique>", "ts": "<RFC 3339 UTC>", "op": "<op>",
"args": {…}}``; ops: ``push_config`` (``config``: YAML text), ``read`` (``devices``),
``scan`` (``bus`` or ``target``, ``units``), ``logs`` (``lines``), ``log_level``
(``level``, ``duration``), ``ping``. Response payload: ``{"v": 1, "id", "ts", "site",
"agent", "op", "result", "ok", "reasons": [...], "data": {...}}``; ``result`` is one of
``done``, ``applied``, ``refused``, ``rolled_back``, ``error``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from vatio.agent.messages import encode, rfc3339

ROOT = "vatio-cmd/v1"
VERSION = 1
OPS = ("push_config", "read", "scan", "logs", "log_level", "ping")
RESULTS = ("done", "applied", "refused", "rolled_back", "error")


def cmd_topic(site: str, agent_id: str, sender: str = "+") -> str:
    return f"{ROOT}/{site}/{agent_id}/cmd/{sender}"


def reply_topic(site: str, agent_id: str, sender: str) -> str:
    return f"{ROOT}/{site}/{agent_id}/reply/{sender}"


class BadRequest(Exception):
    """A request the agent cannot act on; the message says what is wrong."""


@dataclass
class Request:
    id: str
    op: str
    ts: float
    sender: str
    args: dict[str, Any] = field(default_factory=dict)
    response_topic: str = ""
    correlation: bytes | None = None
    retained: bool = False


def parse_ts(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.timestamp()
    raise BadRequest("ts must be an RFC 3339 UTC time (2026-12-01T10:00:00Z) or epoch seconds")


def sender_of(topic: str, site: str, agent_id: str) -> str:
    prefix = cmd_topic(site, agent_id, "")
    if not topic.startswith(prefix) or "/" in topic[len(prefix) :] or topic == prefix:
        raise BadRequest(f"not a command topic of this agent: {topic}")
    return topic[len(prefix) :]


def parse_request(
    topic: str, payload: bytes, site: str, agent_id: str, retained: bool = False
) -> Request:
    """The request on ``topic``; :class:`BadRequest` names what is missing or wrong (the
    ``id`` is kept on the exception when it could be read, so the refusal can carry it)."""
    sender = sender_of(topic, site, agent_id)
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the payload is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the payload must be a JSON object")
    rid = body.get("id")
    if not isinstance(rid, str) or not 0 < len(rid) <= 128:
        raise BadRequest("id must be a string of 1–128 characters")
    try:
        if body.get("v", VERSION) != VERSION:
            raise BadRequest(f"contract version {body.get('v')!r} is not {VERSION}")
        op = body.get("op")
        if op not in OPS:
            raise BadRequest(f"op must be one of {', '.join(OPS)}, not {op!r}")
        args = body.get("args", {})
        if not isinstance(args, dict):
            raise BadRequest("args must be a JSON object")
        ts = parse_ts(body.get("ts"))
    except BadRequest as exc:
        exc.request_id = rid  # type: ignore[attr-defined]
        raise
    return Request(rid, op, ts, sender, args, retained=retained)


def too_old(request: Request, now: float, max_age: float) -> str | None:
    """Why a request must not run now: sent more than ``max_age`` ago (queued during an
    outage, or retained), or dated that far in the future (a wrong clock at either end)."""
    age = now - request.ts
    if age > max_age:
        return (
            f"the command is {age:.0f} s old, more than remote.max_age ({max_age:g} s): it "
            "waited in the broker (the agent was offline) and is not run late; send it again"
        )
    if age < -max_age:
        return (
            f"the command is dated {-age:.0f} s in the future: check the clock of the "
            "sender and of the agent"
        )
    return None


def response(
    request_id: str,
    op: str,
    site: str,
    agent_id: str,
    result: str,
    now: float,
    reasons: list[str] | None = None,
    data: dict[str, Any] | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "v": VERSION,
        "id": request_id,
        "ts": rfc3339(now),
        "site": site,
        "agent": agent_id,
        "op": op,
        "result": result,
        "ok": result in ("done", "applied"),
        "reasons": reasons or [],
    }
    if data is not None:
        body["data"] = data
    return encode(body)


def request_payload(request_id: str, op: str, args: dict[str, Any], now: float) -> bytes:
    return encode({"v": VERSION, "id": request_id, "ts": rfc3339(now), "op": op, "args": args})

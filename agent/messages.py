"""The MQTT contract: topics and JSON payloads (DESIGN.md, "External contracts").

Topic: ``vatio/v1/{site}/{device}/{stream}``, stream one of telemetry, metrics, status,
events. Payload: one UTF-8 JSON object with ``ts`` (RFC 3339 UTC, milliseconds), ``seq``,
``site``, ``device`` and, for telemetry, ``values`` (null for a value not read, with the
reason under ``quality``). The agent itself has a status topic too, in the device slot under
its ``agent_id``; its last will sets that status to ``offline``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from vatio.agent.seqstore import SeqStore
from vatio.agent.storage import StorageHealth
from vatio.common import clock
from vatio.drivers.reading import PollResult

TOPIC_ROOT = "vatio/v1"
Stream = Literal["telemetry", "metrics", "status", "events"]


def topic(site: str, device: str, stream: Stream) -> str:
    return f"{TOPIC_ROOT}/{site}/{device}/{stream}"


def rfc3339(ts: float) -> str:
    """``2026-11-23T15:04:05.123Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False


class MessageBuilder:
    """Builds contract messages; owns the per-device, per-stream sequence numbers.

    While the agent's disk refuses writes (``health`` failing), messages say so with
    ``"spooled": false`` (only memory holds them until the disk takes writes again), and a
    message for which no sequence number could be reserved on disk has no ``seq``
    (:mod:`vatio.agent.seqstore`): a gap for a consumer, never a reused number."""

    def __init__(
        self, site: str, agent_id: str, seq: SeqStore, health: StorageHealth | None = None
    ) -> None:
        self.site = site
        self.agent_id = agent_id
        self._seq = seq
        self._health = health

    def _base(self, device: str, stream: Stream, ts: float) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ts": rfc3339(ts),
            "seq": self._seq.next(device, stream),
            "site": self.site,
            "device": device,
        }
        if body["seq"] is None:
            del body["seq"]
        if stream != "status" and self._health is not None and self._health.failing:
            body["spooled"] = False
        return body

    def telemetry(self, result: PollResult) -> Message:
        body = self._base(result.device, "telemetry", result.ts)
        body["values"] = result.values
        if result.quality:
            body["quality"] = result.quality
        return Message(topic(self.site, result.device, "telemetry"), encode(body))

    def metrics(
        self, device: str, values: dict[str, float | None], ts: float, **extra: Any
    ) -> Message:
        body = self._base(device, "metrics", ts)
        body["values"] = values
        body.update(extra)
        return Message(topic(self.site, device, "metrics"), encode(body))

    def status(self, device: str, state: str, ts: float | None = None, **extra: Any) -> Message:
        body = self._base(device, "status", clock.now() if ts is None else ts)
        body["state"] = state
        body["agent"] = self.agent_id
        body.update(extra)
        return Message(topic(self.site, device, "status"), encode(body), retain=True)

    def event(self, device: str, kind: str, message: str, **extra: Any) -> Message:
        body = self._base(device, "events", clock.now())
        body["event"] = kind
        body["message"] = message
        body.update(extra)
        return Message(topic(self.site, device, "events"), encode(body))

"""The ingest bridge's configuration (``vatio ingest -c FILE``): a broker to read from, a
database to write to. Example (configs/ingest.yaml)::

    mqtt:
      url: mqtt://127.0.0.1:1883
      client_id: vatio-ingest-1     # unique per bridge, and stable: the broker keeps its session
      group: vatio-ingest           # bridges in one group share the messages
      username: ingest
      password: ${INGEST_MQTT_PASSWORD}
    influxdb:
      url: http://127.0.0.1:8086
      api: v1                       # v1: InfluxDB 1.x; v2: 2.x, 3.x, Cloud, VictoriaMetrics
      database: vatio
    dead_letter_topic: vatio-deadletter
    limits:                         # optional; these are the defaults
      max_payload_bytes: 65536
      max_depth: 16
      max_values: 1000
      max_name_length: 256
      name_pattern: null            # e.g. '[A-Za-z0-9_.-]+' to allow only those characters
      dead_letter_payload_bytes: 8192  # of a refused payload, republished in its dead letter
    fleet:                          # optional; these are the defaults
      statuses: true                # status history in the ``status`` measurement
      completeness: true            # seq gaps per device and hour (InfluxQL: api v1 only)
      interval: 30s
      late_after: 2m
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from vatio.agent.config import (
    NAME_PATTERN,
    Duration,
    HttpConfig,
    InfluxConfig,
    MqttConnectionConfig,
    _Strict,
    substitute_env,
)
from vatio.agent.ingest.lineproto import Limits
from vatio.common.yamlconf import (
    ConfigError,
    Problem,
    YamlDocument,
    load_yaml_file,
    load_yaml_text,
    validation_problems,
)


class IngestMqttConfig(MqttConnectionConfig):
    client_id: str | None = None  # default: vatio-ingest-<host name>
    group: str | None = Field("vatio-ingest", pattern=NAME_PATTERN)  # null: no sharing
    topic: str = "vatio/v1/+/+/+"
    # Acknowledged only after the write: the broker must keep what is not acknowledged yet
    persistent_session: bool = True
    session_expiry: Duration = 7 * 86400.0
    # MQTT 5: at most this many unacknowledged messages come to the bridge, so its memory is
    # bounded; two batches' worth lets the next batch fill while one is written
    receive_maximum: int | None = Field(10_000, ge=1, le=65535)


_DEFAULT = Limits()


class IngestLimits(_Strict):
    """What one message may hold; a message beyond a limit is a dead letter with the reason.

    Every default is at least ten times what Vatio itself sends, and small enough that one
    hostile message costs little. The largest real message is telemetry of a meter with the
    whole vocabulary: 80 quantities, each with a quality reason, 64-character names, 5.8 KB,
    nested 2 deep (a usual one is ~300 bytes). Names are at most 64 characters (sites,
    devices, agents: agent/config.py's NAME_PATTERN) or 31 (quantities: common/vocabulary.py)."""

    # 5.8 KB is the largest real message; 64 KiB also bounds what receive_maximum (10,000)
    # unacknowledged messages can take in memory: 640 MiB at worst, not gigabytes
    max_payload_bytes: int = Field(_DEFAULT.max_payload_bytes, ge=1024, le=268_435_455)
    # real messages nest 2 deep (values, quality); checked before parsing, and kept far from
    # Python's recursion limit (~1,000) that json.loads would otherwise hit
    max_depth: int = Field(_DEFAULT.max_depth, ge=2, le=500)
    # 80 quantities in the vocabulary, ~40 metrics: each value name becomes a field (InfluxDB)
    # or a series (VictoriaMetrics) for ever, so 10,000 junk keys must not get in
    max_values: int = Field(_DEFAULT.max_values, ge=1, le=100_000)
    # names are ≤ 64 characters; InfluxDB 1.6 refuses a series key over 64 KiB, and 4,096
    # characters × 4 bytes × 3 tags stays under it
    max_name_length: int = Field(_DEFAULT.max_name_length, ge=64, le=4096)
    # off by default: every character the databases store as sent is allowed (lineproto.py);
    # a pattern can only narrow that, never let a backslash or a newline in
    name_pattern: str | None = None
    # A dead letter carries at most this much of the refused payload (with its size and a
    # SHA-256 of the whole): all of any real message, never a 10 MB one republished whole
    dead_letter_payload_bytes: int = Field(8192, ge=256, le=1_048_576)

    @field_validator("name_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    def to_limits(self) -> Limits:
        return Limits(
            max_payload_bytes=self.max_payload_bytes,
            max_depth=self.max_depth,
            max_values=self.max_values,
            max_name_length=self.max_name_length,
            name_pattern=self.name_pattern,
        )


class FleetConfig(_Strict):
    """What the bridge writes for a fleet operator (issue 15; agent/ingest/completeness.py)."""

    statuses: bool = True  # the ``status`` measurement: every status message, as history
    completeness: bool = True  # seq gaps, duplicates, late arrivals, last seen (needs api: v1)
    interval: Duration = 30.0  # how often touched hours are recomputed
    late_after: Duration = 120.0  # a message older than this on arrival is late (a backlog)


class IngestConfig(_Strict):
    mqtt: IngestMqttConfig = IngestMqttConfig()
    influxdb: InfluxConfig
    dead_letter_topic: str = Field("vatio-deadletter", min_length=1)
    http: HttpConfig | None = None  # /healthz and /metrics, off unless configured
    limits: IngestLimits = IngestLimits()
    fleet: FleetConfig = FleetConfig()

    @model_validator(mode="after")
    def _window(self) -> IngestConfig:
        window = self.mqtt.receive_maximum
        if self.mqtt.protocol == "5" and window is not None and window < self.influxdb.batch_size:
            raise ValueError(
                f"mqtt.receive_maximum ({window}) is smaller than influxdb.batch_size "
                f"({self.influxdb.batch_size}): a batch could never fill; raise receive_maximum "
                "to about twice the batch size"
            )
        if self.dead_letter_topic.startswith("vatio/v1/") or any(
            c in self.dead_letter_topic for c in "+#"
        ):
            raise ValueError(
                "dead_letter_topic must be a plain topic outside vatio/v1/ (the bridge would "
                "read its own dead letters): use e.g. vatio-deadletter"
            )
        return self

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"vatio-ingest-{socket.gethostname()}"[:64]

    @property
    def subscription(self) -> str:
        group = self.mqtt.group
        return f"$share/{group}/{self.mqtt.topic}" if group else self.mqtt.topic


def parse_ingest_config(doc: YamlDocument) -> IngestConfig:
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "expected a mapping with mqtt and influxdb")])
    problems: list[Problem] = []
    data: Any = substitute_env(doc.data, doc, problems)
    try:
        config = IngestConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems + validation_problems(exc, doc, IngestConfig)) from None
    if problems:
        raise ConfigError(problems)
    return config


def load_ingest_config(path: str | Path) -> IngestConfig:
    return parse_ingest_config(load_yaml_file(Path(path)))


def parse_ingest_config_text(text: str, file: str = "<ingest config>") -> IngestConfig:
    return parse_ingest_config(load_yaml_text(text, file))

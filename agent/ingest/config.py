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
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from agent.config import (
    NAME_PATTERN,
    Duration,
    HttpConfig,
    InfluxConfig,
    MqttConnectionConfig,
    _Strict,
    substitute_env,
)
from drivers.yamlconf import (
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


class IngestConfig(_Strict):
    mqtt: IngestMqttConfig = IngestMqttConfig()
    influxdb: InfluxConfig
    dead_letter_topic: str = Field("vatio-deadletter", min_length=1)
    http: HttpConfig | None = None  # /healthz and /metrics, off unless configured

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

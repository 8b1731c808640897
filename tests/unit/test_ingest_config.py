"""The ingest bridge's config: defaults, and mistakes named by place with the fix."""

from __future__ import annotations

import pytest

from vatio.agent.influx import Rejected, Unavailable, write_isolating
from vatio.agent.ingest.config import parse_ingest_config_text
from vatio.common.yamlconf import ConfigError


def test_defaults_share_the_vatio_topics_with_a_persistent_session():
    cfg = parse_ingest_config_text("influxdb: {url: 'http://127.0.0.1:8086', api: v1}\n")
    assert cfg.subscription == "$share/vatio-ingest/vatio/v1/+/+/+"
    assert cfg.mqtt.persistent_session and cfg.mqtt.protocol == "5"
    assert cfg.influxdb.batch_size <= (cfg.mqtt.receive_maximum or 0)


def test_durations_are_written_as_elsewhere():
    cfg = parse_ingest_config_text(
        "mqtt: {session_expiry: 2d}\ninfluxdb: {url: 'http://h:8086', flush_interval: 500ms}\n"
    )
    assert cfg.mqtt.session_expiry == 2 * 86400 and cfg.influxdb.flush_interval == 0.5


def test_without_a_group_it_subscribes_plainly():
    cfg = parse_ingest_config_text("mqtt: {group: null}\ninfluxdb: {url: 'http://h:8086'}\n")
    assert cfg.subscription == "vatio/v1/+/+/+"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt: {receive_maximum: 100}\ninfluxdb: {url: 'http://h:8086'}\n", "a batch could never"),
        ("influxdb: {url: 'h:8086'}\n", "not an HTTP URL"),
        ("influxdb: {url: 'http://h:8086', api: v3}\n", "influxdb.api"),
        ("influxdb: {url: 'http://h'}\ndead_letter_topic: vatio/v1/dead\n", "outside vatio/v1"),
        ("mqtt: {url: 'mqtt://h'}\n", "influxdb"),
    ],
)
def test_mistakes_are_named_with_the_fix(text, expected):
    with pytest.raises(ConfigError) as err:
        parse_ingest_config_text(text, "ingest.yaml")
    assert expected in str(err.value)
    assert "ingest.yaml" in str(err.value)


def test_a_rejected_batch_is_split_until_the_bad_lines_are_found():
    written: list[str] = []

    def write(lines: list[str]) -> None:
        if any("bad" in line for line in lines):
            raise Rejected("HTTP 400: unable to parse")
        written.extend(lines)

    lines = [f"ok{i}" for i in range(10)]
    lines[3], lines[8] = "bad3", "bad8"
    rejected = write_isolating(write, lines)
    assert [i for i, _ in rejected] == [3, 8]
    assert sorted(set(written)) == sorted(line for line in lines if line.startswith("ok"))


def test_an_unavailable_database_is_not_a_rejection():
    def write(lines: list[str]) -> None:
        raise Unavailable("connection refused")

    with pytest.raises(Unavailable):
        write_isolating(write, ["a", "b"])

"""Log lines: levels the journal reads, JSON for shippers, and no secret in any of them."""

from __future__ import annotations

import json
import logging

import pytest

from vatio.agent.config import parse_config_text
from vatio.agent.logs import secrets_of, setup_logging

CONFIG = """
site: s
buses: {b: {type: modbus-tcp, host: 127.0.0.1}}
devices: {m: {bus: b, unit: 1, profile: eastron_sdm120}}
outputs:
  mqtt: {url: 'mqtt://127.0.0.1:1883', username: gw, password: 'pa55-word'}
  influxdb: {url: 'http://127.0.0.1:8086', api: v2, org: o, bucket: b, token: 'tok-123456'}
"""


@pytest.fixture
def lines(capsys):
    def read() -> list[str]:
        return capsys.readouterr().err.splitlines()

    yield read
    logging.getLogger().handlers.clear()


def log_a_leak(secret: str) -> None:
    log = logging.getLogger("vatio.test")
    log.warning("connecting with %s", secret)
    try:
        raise ConnectionError(f"refused for password {secret}")
    except ConnectionError:
        log.exception("connect failed")


def test_every_secret_of_the_config_is_found():
    assert sorted(secrets_of(parse_config_text(CONFIG).config)) == ["pa55-word", "tok-123456"]


@pytest.mark.parametrize("style", ["journal", "text", "json"])
def test_no_secret_reaches_a_line_not_even_in_a_traceback(style, lines):
    setup_logging(style=style, secrets=["pa55-word"])
    log_a_leak("pa55-word")
    out = lines()
    assert out and not any("pa55-word" in line for line in out)
    assert any("***" in line for line in out)


def test_journal_lines_carry_the_syslog_priority(lines):
    setup_logging(style="journal")
    log = logging.getLogger("vatio.test")
    log.info("polling")
    log.warning("slow")
    log.error("down")
    log_a_leak("x")
    out = lines()
    assert out[:3] == ["<6>INFO vatio.test: polling", "<4>WARNING vatio.test: slow",
                       "<3>ERROR vatio.test: down"]  # fmt: skip
    # a traceback's every line stays at the error's priority
    assert all(line.startswith("<3>") for line in out[4:])


def test_json_lines_parse_and_carry_the_level_and_the_exception(lines):
    setup_logging(style="json", secrets=["x-secret"])
    log_a_leak("x-secret")
    first, second = map(json.loads, lines())
    assert first["level"] == "warning" and first["message"] == "connecting with ***"
    assert second["level"] == "error" and "ConnectionError" in second["exception"]
    assert "x-secret" not in second["exception"]


def test_the_environment_decides_auto(monkeypatch, lines):
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    setup_logging()
    logging.getLogger("v").info("hi")
    assert lines() == ["<6>INFO v: hi"]


def test_json_lines_carry_the_fields_a_call_passed(lines):
    setup_logging(style="json", secrets=["pw-9"])
    logging.getLogger("vatio.agent.scheduler").warning(
        "device 'm1' down", extra={"device": "m1", "state": "degraded", "note": "pw-9"}
    )
    (line,) = map(json.loads, lines())
    assert line["device"] == "m1" and line["state"] == "degraded"
    assert line["note"] == "***"
    assert "args" not in line and "msg" not in line  # LogRecord's own attributes stay out

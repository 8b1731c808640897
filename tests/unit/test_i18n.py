"""Spanish for technicians: LANG=es… turns the CLI's messages and config problems Spanish."""

from __future__ import annotations

import re
import stat

import pytest

from tests.helpers import run_cli
from vatio.common.i18n import ES, spanish, tr

BAD = "site: s\nbuses: {b: {type: modbus-tcp, host: 127.0.0.1}}\ndevices: {}\nnonsense: 1\n"


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


@pytest.mark.parametrize("english", sorted(ES))
def test_each_translation_names_the_same_placeholders(english):
    assert placeholders(ES[english]) == placeholders(english)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LANG": "es_MX.UTF-8"}, True),
        ({"LANG": "en_US.UTF-8"}, False),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "es_ES.UTF-8"}, True),  # LC_ALL wins over LANG
        ({"LANGUAGE": "en", "LANG": "es_MX.UTF-8"}, False),  # so does LANGUAGE
        ({}, False),
    ],
)
def test_the_language_follows_gettexts_variables(monkeypatch, env, expected):
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert spanish() is expected
    assert tr("ok: {path}", path="a.yaml") == ("correcto: a.yaml" if expected else "ok: a.yaml")


def test_vatio_check_answers_in_spanish(tmp_path):
    cfg = tmp_path / "vatio.yaml"
    cfg.write_text(BAD)
    es = run_cli("check", "-c", str(cfg), lang="es_MX.UTF-8")
    en = run_cli("check", "-c", str(cfg), lang="C.UTF-8")
    assert es.returncode == en.returncode == 1
    assert "problemas en" in es.stderr and "clave desconocida 'nonsense'" in es.stderr
    assert "problems in" in en.stderr and "unknown key 'nonsense'" in en.stderr
    assert "Traceback" not in es.stderr + en.stderr


def test_value_problems_answer_in_spanish_too(tmp_path):
    cfg = tmp_path / "vatio.yaml"
    head = "site: s\nbuses: {b: {type: modbus-rtu, port: /dev/null}}\n"
    cfg.write_text(head + "devices: {m: {bus: b, unit: 1, profile: x, interval: 5 minutos}}\n")
    es = run_cli("check", "-c", str(cfg), lang="es_MX.UTF-8").stderr
    assert "'5 minutos' no es una duración" in es
    cfg.write_text(head + "devices: {m: {bus: b, unit: 300, profile: eastron_sdm63}}\n")
    es = run_cli("check", "-c", str(cfg), lang="es_MX.UTF-8").stderr
    assert "perfil desconocido 'eastron_sdm63': ¿quiso decir 'eastron_sdm630'?" in es
    assert "la unidad 300 está fuera del rango 1–247 de RS-485" in es
    assert "Traceback" not in es


def test_a_password_everyone_can_read_is_warned_about_in_both_languages(tmp_path):
    cfg = tmp_path / "vatio.yaml"
    cfg.write_text(
        "site: s\nbuses: {b: {type: modbus-tcp, host: 127.0.0.1}}\n"
        "devices: {m: {bus: b, unit: 1, profile: eastron_sdm120}}\n"
        "outputs: {mqtt: {url: 'mqtt://127.0.0.1:1883', username: u, password: pw-123}}\n"
    )
    cfg.chmod(0o644)
    assert "chmod 640" in run_cli("check", "-c", str(cfg), lang="C").stdout
    es = run_cli("check", "-c", str(cfg), lang="es_MX.UTF-8").stdout
    assert "aviso: cualquier usuario" in es and "correcto:" in es
    cfg.chmod(0o640)
    assert "chmod" not in run_cli("check", "-c", str(cfg), lang="C").stdout
    # a password taken from the environment is not in the file: nothing to warn about
    cfg.write_text(cfg.read_text().replace("pw-123", "${MQTT_PASSWORD:-x}"))
    cfg.chmod(0o644)
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o644
    assert "chmod" not in run_cli("check", "-c", str(cfg), lang="C").stdout

"""Config and profile errors: each names its place and says what to do."""

import textwrap
from pathlib import Path

import pytest

from tests.helpers import run_cli
from vatio.agent.config import ConfigError, load_config, parse_config_text, parse_duration

GOOD = """\
site: planta-norte
agent_id: gw-01
buses:
  tablero: {type: modbus-tcp, host: 127.0.0.1, port: 5020}
  rs485: {type: modbus-rtu, port: /dev/ttyUSB0, baudrate: 9600}
devices:
  general: {bus: tablero, unit: 1, profile: eastron_sdm630, interval: 1s}
  oficinas: {bus: rs485, unit: 7, profile: eastron_sdm120, interval: 15m}
outputs:
  mqtt: {url: "mqtt://127.0.0.1:1883"}
"""


def problems(text, tmp_path=None):
    with pytest.raises(ConfigError) as info:
        parse_config_text(textwrap.dedent(text), base_dir=tmp_path, file="f.yaml")
    return [str(p) for p in info.value.problems]


def test_good_config_loads():
    loaded = parse_config_text(GOOD)
    assert loaded.config.devices["oficinas"].interval == 900
    assert loaded.profiles["general"].model == "SDM630"
    assert loaded.config.outputs.mqtt.port == 1883


def test_unknown_profile_names_the_place_and_suggests():
    out = problems(GOOD.replace("eastron_sdm630", "eastron_sdm63"))
    assert out == [
        "f.yaml:7: devices.general.profile: unknown profile 'eastron_sdm63': did you mean "
        "'eastron_sdm630'? (built-in: carlo_gavazzi_em24, eastron_sdm120, eastron_sdm630, "
        "eastron_sdm72, orno_or_we_516, senseair_s8, vaisala_aqt530)"
    ]


def test_unit_id_out_of_range_on_rs485():
    out = problems(GOOD.replace("unit: 7", "unit: 248"))
    assert len(out) == 1
    assert out[0].startswith("f.yaml:8: devices.oficinas.unit: unit id 248 is out of range 1–247")


def test_bad_duration_and_bad_bus_field_reported_together():
    text = GOOD.replace("interval: 1s", "interval: fast").replace("port: 5020", "port: 70000")
    out = problems(text)
    assert any("devices.general.interval: 'fast' is not a duration" in p for p in out)
    assert any("buses.tablero.port: Input should be less than or equal to 65535" in p for p in out)


def test_unknown_device_key_suggests_the_right_one():
    text = GOOD.replace("interval: 15m", "intervl: 15m")
    out = problems(text)
    assert any(
        "devices.oficinas.intervl: unknown key 'intervl': did you mean 'interval'?" in p
        for p in out
    )


def test_cross_reference_errors():
    out = problems(GOOD.replace("bus: tablero", "bus: tablro"))
    assert out == [
        "f.yaml:7: devices.general.bus: unknown bus 'tablro': define it under buses "
        "(defined: tablero, rs485)"
    ]


def test_duplicate_keys_are_refused():
    out = problems(GOOD + "site: otra\n")
    assert len(out) == 1
    assert "duplicate key 'site' (first at line 1)" in out[0]


def test_yaml_syntax_error_has_a_line():
    out = problems("site: x\nbuses: [\n")
    assert out[0].startswith("f.yaml:3: not valid YAML")


def test_env_substitution(monkeypatch):
    monkeypatch.setenv("VATIO_TEST_PASS", "s3cret")
    text = GOOD.replace(
        'mqtt: {url: "mqtt://127.0.0.1:1883"}',
        'mqtt: {url: "mqtt://127.0.0.1:1883", password: "${VATIO_TEST_PASS}",'
        ' username: "${VATIO_TEST_USER:-plant}"}',
    )
    mqtt = parse_config_text(text).config.outputs.mqtt
    assert mqtt.password.get_secret_value() == "s3cret"
    assert mqtt.username == "plant"
    assert "s3cret" not in repr(mqtt)  # a secret never shows in logs or reprs


def test_missing_env_var_is_an_error(monkeypatch):
    monkeypatch.delenv("VATIO_NOPE", raising=False)
    text = GOOD.replace(
        'mqtt: {url: "mqtt://127.0.0.1:1883"}',
        'mqtt: {url: "mqtt://127.0.0.1:1883", password: "${VATIO_NOPE}"}',
    )
    out = problems(text)
    assert "outputs.mqtt.password: environment variable VATIO_NOPE is not set" in out[0]


def test_bad_names_and_bus_types():
    text = GOOD.replace("site: planta-norte", "site: planta norte").replace(
        "type: modbus-rtu", "type: modbus-udp"
    )
    out = problems(text)
    assert any("site: 'planta norte' is not a valid name" in p for p in out)
    assert any("buses.rs485: 'modbus-udp' is not a known type" in p for p in out)


@pytest.mark.parametrize(
    "text,seconds", [("500ms", 0.5), ("2s", 2), ("15m", 900), ("1h", 3600), (3, 3.0), ("1.5", 1.5)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


PROFILE = """\
model: Test meter
source: made up for a test
defaults: {register_type: input, data_type: f32}
registers:
  voltage_v: 0
  current_a: {address: 2, register_type: coil}
  active_powr_w: 4
"""


def test_profile_file_errors_are_located_in_the_profile(tmp_path: Path):
    (tmp_path / "meter.yaml").write_text(PROFILE)
    out = problems(GOOD.replace("eastron_sdm630", "meter.yaml"), tmp_path)
    assert out[0] == "f.yaml:7: devices.general.profile: the profile file has errors:"
    profile_file = str(tmp_path / "meter.yaml")
    assert len(out) == 3
    assert any(
        p.startswith(f"{profile_file}:6: registers.current_a.register_type: 'coil' is not allowed")
        for p in out
    )
    assert any(
        ":7: registers.active_powr_w: unknown quantity 'active_powr_w': did you mean active_power_w"
        in p
        for p in out
    )


def test_missing_config_file():
    with pytest.raises(ConfigError) as info:
        load_config("/nonexistent/vatio.yaml")
    assert "file not found" in str(info.value)


def test_check_prints_plan(tmp_path: Path):
    path = tmp_path / "vatio.yaml"
    path.write_text(GOOD)
    res = run_cli("check", "-c", str(path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"ok: {path}")
    assert (
        "general: every 1 s, Eastron SDM630 unit 1 on 'tablero': 38 values in 4 request(s)"
        in res.stdout
    )
    assert "schedule needs" in res.stdout  # serial line load estimate


def test_check_reports_every_error_without_traceback(tmp_path: Path):
    path = tmp_path / "vatio.yaml"
    path.write_text(GOOD.replace("unit: 7", "unit: 0").replace("eastron_sdm630", "nope"))
    res = run_cli("check", "-c", str(path))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert res.stderr.startswith(f"error: 2 problems in {path}:")
    assert "devices.oficinas.unit: unit id 0 is out of range 1–247" in res.stderr


def test_check_warns_when_a_serial_schedule_cannot_fit(tmp_path: Path):
    text = GOOD.replace("baudrate: 9600", "baudrate: 1200").replace(
        "interval: 15m", "interval: 500ms"
    )
    path = tmp_path / "vatio.yaml"
    path.write_text(text)
    res = run_cli("check", "-c", str(path))
    assert res.returncode == 0
    assert "warning: bus 'rs485': the schedule needs" in res.stdout


def test_run_with_unwritable_state_dir_is_one_line(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = tmp_path / "vatio.yaml"
    path.write_text(GOOD + f"state_dir: {blocker}/sub\n")
    res = run_cli("run", "-c", str(path))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert f"state_dir '{blocker}/sub' is not writable" in res.stderr


def test_the_status_endpoint_address_is_checked():
    from vatio.agent.config import ConfigError, parse_config_text

    base = (
        "site: s\nbuses: {b: {type: modbus-tcp, host: 127.0.0.1, port: 5020}}\n"
        "devices: {m: {bus: b, unit: 1, profile: eastron_sdm120}}\n"
    )
    assert parse_config_text(base).config.http is None
    cfg = parse_config_text(base + "http: {}\n").config
    assert cfg.http is not None and (cfg.http.host, cfg.http.port) == ("127.0.0.1", 8089)
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        parse_config_text(base + "http: {listen: 'localhost'}\n")

"""`vatio demo` and `vatio simulate` as a user runs them (child processes, real sockets)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import wait_until
from vatio.simulators.brokers import free_port

pytestmark = pytest.mark.integration

ROW = re.compile(
    r"^(general|linea-1|oficinas|compresor)\s+online\s+(\d+\.\d+)\s+(\d+\.\d)\s+", re.M
)


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vatio.agent.cli", "demo", "--duration", "6", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def last_table(stdout: str) -> str:
    return stdout.strip().split("Vatio demo")[-1]


def test_demo_with_in_process_broker_shows_live_readings():
    res = run_demo()
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    table = last_table(res.stdout)
    assert "(amqtt, in-process)" in table
    rows = {m.group(1): float(m.group(2)) for m in ROW.finditer(table)}
    assert set(rows) == {"general", "linea-1", "oficinas", "compresor"}, table
    assert all(kw > 0 for kw in rows.values())
    assert "agent gw-demo: offline" in table  # the clean stop said goodbye


def test_demo_with_external_mosquitto(mosquitto):
    res = run_demo("--mqtt", mosquitto.url)
    assert res.returncode == 0, res.stderr
    table = last_table(res.stdout)
    assert f"broker {mosquitto.url} ·" in table
    assert len(ROW.findall(table)) == 4, table


def test_demo_rejects_a_bad_url():
    res = run_demo("--mqtt", "localhost:1883")
    assert res.returncode == 1
    assert res.stderr.strip() == "error: --mqtt localhost:1883: write mqtt://HOST:PORT"


async def test_simulate_serves_a_config_that_run_then_polls(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    p1, p2 = free_port(), free_port()
    cfg = tmp_path / "plant.yaml"
    cfg.write_text(
        f"site: plant\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\nbuses:\n"
        f"  a: {{type: modbus-tcp, host: 127.0.0.1, port: {p1}}}\n"
        f"  b: {{type: modbus-tcp, host: localhost, port: {p2}}}\n"
        "devices:\n"
        "  m1: {bus: a, unit: 1, profile: eastron_sdm630, interval: 500ms}\n"
        "  m2: {bus: a, unit: 5, profile: eastron_sdm120, interval: 500ms}\n"
        "  m3: {bus: b, unit: 1, profile: eastron_sdm630, interval: 500ms}\n"
        f"outputs:\n  mqtt: {{url: '{mosquitto.url}'}}\n"
    )
    sim = subprocess.Popen(
        [sys.executable, "-m", "vatio.agent.cli", "simulate", "-c", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        cap = capture_factory(mosquitto.port)
        agent_factory(cfg)

        def powered(m: str) -> bool:  # the first polls may beat the simulator's start
            return any((b["values"]["active_power_w"] or 0) > 0 for b in cap.on(f"/{m}/telemetry"))

        await wait_until(lambda: all(powered(m) for m in ("m1", "m2", "m3")), 30, "readings")
    finally:
        sim.terminate()
        out, err = sim.communicate(timeout=10)
    assert "simulating Eastron SDM120 unit 5 on 127.0.0.1:" in out
    assert "Traceback" not in err


def test_simulate_refuses_a_non_loopback_host(tmp_path):
    cfg = tmp_path / "plant.yaml"
    cfg.write_text(
        "site: plant\nbuses:\n  a: {type: modbus-tcp, host: 192.0.2.10, port: 502}\n"
        "devices:\n  m1: {bus: a, unit: 1, profile: eastron_sdm630}\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "vatio.agent.cli", "simulate", "-c", str(cfg), "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1
    assert "host 192.0.2.10 is not a loopback address" in res.stderr
    assert "Traceback" not in res.stderr

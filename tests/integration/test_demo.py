"""`vatio demo` and `vatio simulate` as a user runs them (child processes, real sockets)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import wait_until
from vatio.agent.metrics.ias_mx import LEVELS
from vatio.simulators.brokers import free_port
from vatio.simulators.demo import EXAMPLE_PRICE_MXN_PER_KWH

pytestmark = pytest.mark.integration

ROW = re.compile(
    r"^(general|linea-1|oficinas|compresor)\s+online\s+(\d+\.\d+)\s+(\d+\.\d)\s+", re.M
)


NUM = r"(\d+(?:\.\d+)?)"
OPT = r"(\d+(?:\.\d+)?|—)"  # the block's demand and its projection: none in its first 2 min
METRICS_ROW = re.compile(rf"^general +{NUM} +{NUM} +{NUM} +{OPT} +{OPT} +{NUM}", re.M)
HIGH = re.compile(
    rf"general demand_projected_high: 15-minute demand projected at {NUM} kW, above the "
    rf"{NUM} kW limit; {NUM} min left"
)
AIR = re.compile(
    rf"PM2\.5 {NUM} µg/m³ · NowCast {NUM} µg/m³ · AQI \(US\) {NUM} · "
    rf"Índice AIRE Y SALUD \(IAS\) (\d) (.+)$",
    re.M,
)


def run_demo(*args: str, duration: float = 6, speed: float | None = None):
    env = dict(os.environ)
    if speed is not None:  # common/clock.py: the simulated clock starts now, this much faster
        start = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        env["VATIO_SIMULATED_TIME"] = f"{start},{speed:g}"
    return subprocess.run(
        [sys.executable, "-m", "vatio.agent.cli", "demo", "--duration", f"{duration:g}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
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
    # the street sensor: real PMS5003 frames over a pty the demo opened itself
    pm25 = re.search(r"PM2\.5 (\d+) µg/m³", table)
    assert pm25 is not None and 1 <= int(pm25.group(1)) <= 200, table
    assert re.search(r"PMS5003 on /dev/pts/\d+, online", table), table


def test_demo_shows_what_the_metrics_are_for():
    """At 36× (about 8 simulated minutes): the tariff period, the metrics per meter, the
    projected demand alarm the machine on `general` sets off, and the street's air."""
    res = run_demo(duration=13, speed=36)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    table = last_table(res.stdout)
    assert re.search(r"periodo ahora / period now: (base|intermedia|punta)$", table, re.M), table
    row = METRICS_ROW.search(table)
    assert row is not None, table
    kwh, cost, kg, limit = (float(row.group(i)) for i in (1, 2, 3, 6))
    assert 0 < kwh < 150 * 10 / 60, table  # at most 150 kW for 10 minutes
    assert cost == pytest.approx(kwh * EXAMPLE_PRICE_MXN_PER_KWH, abs=0.01)
    assert 0.3 < kg / kwh < 0.6, table  # Mexico's grid factor, ~0.44 kgCO2e/kWh
    assert all(0 < float(x) < 150 for x in row.group(4, 5) if x != "—"), table
    # the machine (30 kW) on `general` pushes the projection over its limit within minutes
    high = HIGH.search(table)
    assert high is not None, table
    at, limit_in_event, left = (float(x) for x in high.groups())
    assert limit_in_event == limit and at > limit and 0 < left <= 13
    assert "example cost" in table and "not a CFE price" in table
    # the site's running bill, `general` being the grid meter (the shipped prices are examples;
    # a month the table has no row for shows quantities only)
    bill = re.search(r"^recibo del mes / bill so far(?: \(general, GDMTH\): ([\d,.]+) MXN .*"
                     r"example prices| — \(no_prices\))$", table, re.M)  # fmt: skip
    assert bill is not None, table
    assert bill.group(1) is None or float(bill.group(1).replace(",", "")) > 0
    air = AIR.search(table)
    assert air is not None, table
    pm25, nowcast, aqi, level, name = air.groups()
    assert 1 <= float(pm25) <= 200 and 1 <= float(nowcast) <= 200 and 0 <= float(aqi) <= 300
    assert name == next(n for lv, n, *_ in LEVELS if lv == int(level))


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

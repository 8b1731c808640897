"""Commissioning tools as a technician runs them: `vatio scan` and `vatio read`."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli_async
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.brokers import free_port
from vatio.simulators.modbus_server import ModbusSerialSimulator, ModbusTcpSimulator, SimulatedMeter
from vatio.simulators.serial_pair import SerialPair

pytestmark = pytest.mark.integration


vatio = run_cli_async


def gateway_meters() -> list[SimulatedMeter]:
    return [
        SimulatedMeter(1, load_profile("eastron_sdm630"), seed=1),
        SimulatedMeter(2, load_profile("eastron_sdm120"), seed=2),
        SimulatedMeter(3, load_profile("carlo_gavazzi_em24"), seed=3),
        SimulatedMeter(4, load_profile("senseair_s8"), seed=4),
        SimulatedMeter(5, load_profile("orno_or_we_516"), seed=5),
    ]


async def test_scan_finds_and_names_devices_behind_a_tcp_gateway():
    sim = ModbusTcpSimulator(gateway_meters())
    port = await sim.start()
    try:
        res = await vatio("scan", f"127.0.0.1:{port}", "--units", "1-8", "--timeout", "0.2")
    finally:
        await sim.stop()
    assert res.returncode == 0, res.stderr
    assert "scanning [" in res.stderr  # the progress bar
    lines = res.stdout.splitlines()
    row = {int(line.split()[0]): line for line in lines if line[:4].strip().isdigit()}
    assert set(row) == {1, 2, 3, 4, 5}
    assert "eastron_sdm630 or eastron_sdm72" in row[1]  # the same registers: both listed
    assert "eastron_sdm120" in row[2] and "carlo_gavazzi_em24" in row[3]
    assert "senseair_s8" in row[4]
    assert "orno_or_we_516" in row[5] and " or " not in row[5]
    assert f"  scanned: {{type: modbus-tcp, host: 127.0.0.1, port: {port}}}" in res.stdout
    assert "  device-3: {bus: scanned, unit: 3, profile: carlo_gavazzi_em24}" in res.stdout


async def test_scan_a_serial_line(tmp_path):
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")
    with SerialPair(tmp_path) as pair:
        sim = ModbusSerialSimulator([SimulatedMeter(7, load_profile("eastron_sdm120"))], pair.a)
        await sim.start()
        try:
            res = await vatio("scan", pair.b, "--units", "5-8", "-q", "--timeout", "0.2")
        finally:
            await sim.stop()
    assert res.returncode == 0, res.stderr
    assert "   7  eastron_sdm120" in res.stdout
    assert f"type: modbus-rtu, port: {pair.b}, baudrate: 9600, parity: N" in res.stdout


async def test_scan_an_address_where_nothing_listens():
    res = await vatio("scan", f"127.0.0.1:{free_port()}", "--units", "1-2", "-q")
    assert res.returncode == 1
    assert "error: cannot open 127.0.0.1:" in res.stderr and "Traceback" not in res.stderr


async def test_read_prints_a_table_and_json(tmp_path):
    sim = ModbusTcpSimulator(gateway_meters())
    port = await sim.start()
    cfg = tmp_path / "vatio.yaml"
    cfg.write_text(
        f"site: s\nstate_dir: {tmp_path}\nbuses:\n"
        f"  gw: {{type: modbus-tcp, host: 127.0.0.1, port: {port}}}\n"
        f"  dead: {{type: modbus-tcp, host: 127.0.0.1, port: {free_port()}}}\n"
        "devices:\n"
        "  main: {bus: gw, unit: 1, profile: eastron_sdm630}\n"
        "  co2: {bus: gw, unit: 4, profile: senseair_s8}\n"
        "  gone: {bus: dead, unit: 1, profile: eastron_sdm120}\n"
    )
    try:
        table = await vatio("read", "-c", str(cfg), "main", "co2")
        as_json = await vatio("read", "-c", str(cfg), "co2", "--json")
        failing = await vatio("read", "-c", str(cfg), "gone")
        unknown = await vatio("read", "-c", str(cfg), "nope")
    finally:
        await sim.stop()
    assert table.returncode == 0, table.stderr
    assert "main\n  voltage_l1_v" in table.stdout and " v\n" in table.stdout
    body = json.loads(as_json.stdout)
    assert 300 <= body["co2"]["values"]["co2_ppm"] <= 10000
    assert failing.returncode == 1 and "ERROR cannot connect to bus 'dead'" in failing.stdout
    assert unknown.returncode == 1 and "no enabled device named nope" in unknown.stderr

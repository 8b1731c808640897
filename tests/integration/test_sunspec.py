"""SunSpec end to end: the simulator as a real pymodbus TCP server (an inverter, a grid meter
and a broken chain behind one address), `vatio scan` and `vatio read` as a technician runs
them, in their own processes, and `vatio simulate` serving a config's SunSpec devices."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from tests.helpers import run_cli_async, wait_until
from vatio.simulators.brokers import free_port
from vatio.simulators.modbus_server import ModbusTcpSimulator
from vatio.simulators.sunspec_server import SunSpecUnit

pytestmark = pytest.mark.integration

T = 1_764_612_000.0  # 12:00 in central Mexico: the inverter produces, the meter exports


def units() -> list[SunSpecUnit]:
    inverter = SunSpecUnit(1, "inverter", clock=lambda: T)
    meter = SunSpecUnit(2, "meter-float", site=inverter.site, clock=lambda: T)
    broken = SunSpecUnit(3, "bad-end", seed=3, clock=lambda: T)
    return [inverter, meter, broken]


async def test_scan_and_read_a_sunspec_inverter_and_meter(tmp_path):
    inverter, meter, broken = units()
    sim = ModbusTcpSimulator([inverter, meter, broken])
    port = await sim.start()
    cfg = tmp_path / "vatio.yaml"
    cfg.write_text(
        f"site: s\nstate_dir: {tmp_path}\nbuses:\n"
        f"  pv: {{type: modbus-tcp, host: 127.0.0.1, port: {port}}}\n"
        "devices:\n"
        "  inversor: {bus: pv, driver: sunspec, unit: 1}\n"
        "  medidor: {bus: pv, driver: sunspec, unit: 2}\n"
        "  roto: {bus: pv, driver: sunspec, unit: 3}\n"
    )
    try:
        scan, read = await asyncio.gather(
            run_cli_async("scan", f"127.0.0.1:{port}", "--units", "1-4", "-q", "--timeout", "0.2"),
            run_cli_async("read", "-c", str(cfg), "--json"),
        )
    finally:
        await sim.stop()
    # (a) scan names SunSpec, the models, and proposes the driver
    assert scan.returncode == 0, scan.stderr
    row = {int(line.split()[0]): line for line in scan.stdout.splitlines()
           if line[:4].strip().isdigit()}  # fmt: skip
    assert set(row) == {1, 2, 3}
    assert "SunSpec: 1 common (Vatio, SimPV 5000-3P), 103 inverter, 160 MPPT" in row[1]
    assert "SunSpec: 1 common (Vatio, SimMeter 3P), 213 meter" in row[2]
    assert "  device-1: {bus: scanned, unit: 1, driver: sunspec}" in scan.stdout
    assert "unit 3, register 40172: the SunSpec chain breaks after model 160" in scan.stdout

    # (b) read: scaled values as served, sentinels as null with their reason
    body = json.loads(read.stdout)
    inv, mtr, bad = body["inversor"], body["medidor"], body["roto"]
    assert inv["error"] is None and inv["degraded"] is None, inv
    assert inv["values"]["ac_power_w"] == inverter.served["ac_power_w"] == 5000.0
    assert inv["values"]["voltage_l1_v"] == pytest.approx(inverter.served["voltage_l1_v"], abs=0.05)
    assert inv["values"]["dc_power_mppt2_w"] == pytest.approx(
        inverter.served["dc_power_mppt2_w"], abs=0.5
    )
    assert inv["values"]["energy_generated_kwh"] == pytest.approx(
        inverter.served["energy_generated_kwh"], abs=0.0005
    )
    assert inv["values"]["heatsink_temperature_c"] is None
    assert inv["quality"]["heatsink_temperature_c"] == "not_implemented"
    assert any("103 inverter, 160 MPPT" in line for line in inv["plan"])
    served = meter.served["active_power_w"]
    assert served is not None and served < 0  # exports at noon
    assert mtr["values"]["active_power_w"] == pytest.approx(served, rel=1e-6)
    assert mtr["values"]["reactive_power_var"] is None  # NaN on the wire
    assert mtr["quality"]["reactive_power_var"] == "not_implemented"

    # (c) the broken chain: located, degraded, what came before it still read
    assert bad["error"] is None
    assert "unit 3 on 'pv', register 40172" in bad["degraded"]
    assert "after model 160 at register 40122" in bad["degraded"]
    assert bad["values"]["ac_power_w"] == 5000.0
    assert read.returncode == 0, read.stderr


async def test_vatio_simulate_serves_the_sunspec_devices_of_a_config(tmp_path):
    port = free_port()
    cfg = tmp_path / "vatio.yaml"
    cfg.write_text(
        f"site: s\nstate_dir: {tmp_path}\nbuses:\n"
        f"  pv: {{type: modbus-tcp, host: 127.0.0.1, port: {port}}}\n"
        "devices:\n"
        "  tejado: {bus: pv, driver: sunspec, unit: 1}\n"
        "  medidor: {bus: pv, driver: sunspec, unit: 2}\n"
    )
    env = {**os.environ, "VATIO_SIMULATED_TIME": "2025-12-01T12:00:00-06:00,60"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vatio.agent.cli", "simulate", "-c", str(cfg),
        "--sunspec", "tejado=inverter-float", "--duration", "20",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines: list[str] = []

        async def started() -> None:
            while "press Ctrl-C" not in "".join(lines) and "running for" not in "".join(lines):
                lines.append((await proc.stdout.readline()).decode())  # type: ignore[union-attr]

        await asyncio.wait_for(started(), 15)
        text = "".join(lines)
        assert "SunSpec inverter-float 'tejado' unit 1" in text
        assert "SunSpec meter 'medidor' unit 2" in text
        read = await run_cli_async("read", "-c", str(cfg), "--json")
    finally:
        proc.terminate()
        await proc.wait()
    body = json.loads(read.stdout)
    assert any("113 inverter, 160 MPPT" in line for line in body["tejado"]["plan"])
    assert body["tejado"]["values"]["ac_power_w"] > 1000  # midday, on the simulated clock
    assert body["medidor"]["values"]["active_power_w"] < 0
    await wait_until(lambda: proc.returncode is not None, 5, "the simulator to stop")


async def test_broken_sunspec_units_are_located_and_their_neighbour_keeps_its_schedule(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    """`vatio run` with a good inverter and three broken chains (plus a unit with no marker)
    behind one gateway: each broken unit is degraded once with a located reason, still
    publishes what it can read, and the inverter is read on every tick."""
    good = SunSpecUnit(1, "inverter", clock=lambda: T)
    broken = {u: SunSpecUnit(u, kind, seed=u, clock=lambda: T)
              for u, kind in ((3, "bad-end"), (4, "bad-repeat"), (5, "bad-length"))}  # fmt: skip
    sim = ModbusTcpSimulator([good, *broken.values()])
    port = await sim.start()
    devices = "".join(
        f"  u{u}: {{bus: pv, driver: sunspec, unit: {u}, interval: 1s}}\n" for u in (1, 3, 4, 5, 6)
    )
    cfg = tmp_path / "vatio.yaml"
    cfg.write_text(
        f"site: s\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\nbuses:\n"
        f"  pv: {{type: modbus-tcp, host: 127.0.0.1, port: {port}, timeout: 300ms}}\n"
        f"devices:\n{devices}outputs:\n  mqtt: {{url: '{mosquitto.url}'}}\n"
    )
    try:
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg)
        await wait_until(lambda: cap.on("/u1/telemetry"), 20, "the inverter's reading")
        first = len(cap.on("/u1/telemetry"))
        await asyncio.sleep(6)
        polled = len(cap.on("/u1/telemetry")) - first
        agent.stop()
    finally:
        await sim.stop()
    assert polled >= 5, polled  # one reading per 1 s tick
    assert all(b["values"]["ac_power_w"] == 5000.0 for b in cap.on("/u1/telemetry"))
    status = cap.on("/u1/status")[-1]
    assert status["state"] == "online" and status["info"]["manufacturer"] == "Vatio"
    expected = {
        3: "unit 3 on 'pv', register 40172: the SunSpec chain breaks after model 160",
        4: "unit 4 on 'pv', register 40122, model 103 (inverter, three phase): the model "
        "appears again",
        5: "unit 5 on 'pv', register 40070, model 103 (inverter, three phase): length 48",
    }
    for u, text in expected.items():
        events = [e for e in cap.on(f"/u{u}/events") if e["event"] == "device_degraded"]
        assert len(events) == 1 and text in events[0]["message"], (u, events)
        last = cap.on(f"/u{u}/telemetry")[-1]
        assert last["values"]["dc_power_mppt1_w"] == pytest.approx(3218.0)
    assert cap.on("/u5/telemetry")[-1]["quality"]["ac_power_w"] == "sunspec_bad_model"
    (gone,) = [e for e in cap.on("/u6/events") if e["event"] == "device_degraded"]
    assert "no SunSpec marker" in gone["message"]
    assert "Traceback" not in agent.output()

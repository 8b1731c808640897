"""Modbus RTU for real: over a pty pair (socat) and over TCP, with faults on the real bytes.

The simulators are pymodbus RTU servers; the agent is `vatio run` in a child process; frames
cross a virtual serial cable with their CRCs, so a corrupted byte is a corrupted frame.
"""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest

from tests.helpers import expected_on_wire, wait_until
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.modbus_server import (
    Faults,
    ModbusSerialSimulator,
    ModbusTcpSimulator,
    SimulatedMeter,
)
from vatio.simulators.serial_pair import SerialPair

pytestmark = pytest.mark.integration

FROZEN_T = 1_795_000_000.0


@pytest.fixture
def serial_pair(tmp_path):
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")
    with SerialPair(tmp_path) as pair:
        yield pair


def write(tmp_path: Path, bus_yaml: str, devices: str, mqtt_url: str) -> Path:
    path = tmp_path / "vatio.yaml"
    path.write_text(
        f"site: rtu\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\n"
        f"buses:\n  line: {bus_yaml}\ndevices:\n{devices}"
        f"outputs:\n  mqtt: {{url: '{mqtt_url}'}}\n"
    )
    return path


async def test_rtu_over_a_serial_line_delivers_what_the_meters_serve(
    tmp_path, serial_pair, mosquitto, capture_factory, agent_factory
):
    clock = lambda: FROZEN_T  # noqa: E731
    meters = [
        SimulatedMeter(1, load_profile("eastron_sdm630"), seed=1, clock=clock),
        SimulatedMeter(7, load_profile("eastron_sdm120"), seed=2, clock=clock),
    ]
    # a pty refuses parity settings (EINVAL), so the line runs 8N1 here
    sim = ModbusSerialSimulator(meters, serial_pair.a, baudrate=19200)
    await sim.start()
    try:
        cfg = write(
            tmp_path,
            f"{{type: modbus-rtu, port: {serial_pair.b}, baudrate: 19200}}",
            "  three: {bus: line, unit: 1, profile: eastron_sdm630, interval: 1s}\n"
            "  single: {bus: line, unit: 7, profile: eastron_sdm120, interval: 1s}\n",
            mosquitto.url,
        )
        cap = capture_factory(mosquitto.port)
        agent_factory(cfg)
        await wait_until(
            lambda: cap.on("/three/telemetry") and cap.on("/single/telemetry"), 20, "telemetry"
        )
        for name, meter in (("three", meters[0]), ("single", meters[1])):
            body = cap.on(f"/{name}/telemetry")[-1]
            assert body.get("quality") is None, body
            for q, v in expected_on_wire(meter.profile, meter.served).items():
                assert body["values"][q] == pytest.approx(v, rel=1e-9, abs=1e-9), (name, q)
    finally:
        await sim.stop()


async def test_rtu_over_tcp(tmp_path, mosquitto, capture_factory, agent_factory):
    meter = SimulatedMeter(3, load_profile("eastron_sdm120"), seed=5, clock=lambda: FROZEN_T)
    sim = ModbusTcpSimulator([meter], rtu_framing=True)
    port = await sim.start()
    try:
        cfg = write(
            tmp_path,
            f"{{type: modbus-rtu-tcp, host: 127.0.0.1, port: {port}, baudrate: 9600}}",
            "  m: {bus: line, unit: 3, profile: eastron_sdm120, interval: 500ms}\n",
            mosquitto.url,
        )
        cap = capture_factory(mosquitto.port)
        agent_factory(cfg)
        await wait_until(lambda: cap.on("/m/telemetry"), 20, "telemetry")
        body = cap.on("/m/telemetry")[-1]
        assert body["values"]["voltage_v"] == pytest.approx(
            expected_on_wire(meter.profile, meter.served)["voltage_v"]
        )
    finally:
        await sim.stop()


async def test_a_healthy_meter_keeps_its_polls_while_its_neighbour_fails(
    tmp_path, serial_pair, mosquitto, capture_factory, agent_factory
):
    healthy = SimulatedMeter(1, load_profile("eastron_sdm120"), seed=1)
    sick = SimulatedMeter(
        2,
        load_profile("eastron_sdm630"),
        seed=2,
        # slow: later than the 0.5 s timeout, within the transport's guard after it (0.25 s);
        # a reply later than that would collide with the next request, as on a real line
        faults=Faults(timeout=0.4, crc=0.2, truncate=0.1, exception=0.1, slow=0.1, slow_s=0.7),
    )
    sim = ModbusSerialSimulator([healthy, sick], serial_pair.a, baudrate=38400)
    await sim.start()
    try:
        cfg = write(
            tmp_path,
            f"{{type: modbus-rtu, port: {serial_pair.b}, baudrate: 38400}}",
            "  healthy: {bus: line, unit: 1, profile: eastron_sdm120, interval: 1s}\n"
            "  sick: {bus: line, unit: 2, profile: eastron_sdm630, interval: 1s}\n",
            mosquitto.url,
        )
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg)
        await wait_until(lambda: cap.on("/healthy/telemetry"), 20, "first reading")
        start = time.time()
        await wait_until(lambda: time.time() - start > 15, 25, "15 s of polling")
        end = time.time()

        def in_window(body):
            ts = calendar.timegm(time.strptime(body["ts"][:19], "%Y-%m-%dT%H:%M:%S"))
            return start + 1 <= ts < end - 1

        good = [
            b
            for b in cap.on("/healthy/telemetry")
            if in_window(b) and all(v is not None for v in b["values"].values())
        ]
        ticks = int(end - 1) - int(start + 1)
        print(f"healthy polls {len(good)} of {ticks} ticks; sick faults {sick.fault_counts}")
        assert len(good) >= 0.99 * ticks, (len(good), ticks)
        assert sum(sick.fault_counts.values()) >= 3, sick.fault_counts
        # the sick meter is reported degraded, once per change, with an event
        assert any(s["state"] == "degraded" for s in cap.on("/sick/status"))
        assert any(e["event"] == "device_degraded" for e in cap.on("/sick/events"))
        assert "Traceback" not in agent.output()
    finally:
        await sim.stop()


async def test_dropped_tcp_connections_are_survived(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    meter = SimulatedMeter(
        1, load_profile("eastron_sdm120"), seed=9, faults=Faults(drop=0.15, truncate=0.05)
    )
    sim = ModbusTcpSimulator([meter])
    port = await sim.start()
    try:
        cfg = write(
            tmp_path,
            f"{{type: modbus-tcp, host: 127.0.0.1, port: {port}}}",
            "  m: {bus: line, unit: 1, profile: eastron_sdm120, interval: 500ms}\n",
            mosquitto.url,
        )
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg)

        def good() -> int:
            return sum(None not in b["values"].values() for b in cap.on("/m/telemetry"))

        await wait_until(
            lambda: meter.fault_counts.get("drop", 0) >= 3 and good() >= 10,
            60,
            "readings across several dropped connections",
        )
        assert "Traceback" not in agent.output()
    finally:
        await sim.stop()


async def test_a_serial_port_that_does_not_exist(tmp_path):
    import asyncio as aio
    import sys as _sys

    cfg = write(
        tmp_path,
        f"{{type: modbus-rtu, port: {tmp_path}/ttyNONE, baudrate: 9600}}",
        "  m: {bus: line, unit: 1, profile: eastron_sdm120}\n",
        "mqtt://127.0.0.1:1",
    )
    proc = await aio.create_subprocess_exec(
        _sys.executable,
        "-m",
        "vatio.agent.cli",
        "read",
        "-c",
        str(cfg),
        stdout=aio.subprocess.PIPE,
        stderr=aio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 1
    text = out.decode()
    assert f"ERROR cannot connect to bus 'line' ({tmp_path}/ttyNONE 9600 8N1)" in text
    assert "that the port exists" in text and "Traceback" not in text + err.decode()


@pytest.mark.serial  # compares elapsed time with the wire time, within 15 %
async def test_baud_faithful_replies_take_the_wire_time(tmp_path, serial_pair):
    from vatio.common.links import SerialLine
    from vatio.drivers.modbus.profile import RegisterType
    from vatio.drivers.modbus.transport import ModbusTransport, read_wire_time

    meter = SimulatedMeter(1, load_profile("eastron_sdm630"))
    sim = ModbusSerialSimulator([meter], serial_pair.a, baudrate=9600, baud_faithful=True)
    await sim.start()
    transport = ModbusTransport("line", SerialLine(serial_pair.b, 9600), timeout=1.0, retries=0)
    try:
        await transport.read(RegisterType.INPUT, 0, 2, 1)  # connect
        start = time.monotonic()
        for _ in range(5):
            await transport.read(RegisterType.INPUT, 0, 40, 1)
        per_read = (time.monotonic() - start) / 5
    finally:
        transport.close()
        await sim.stop()
    ideal = read_wire_time(40, 9600, bits_per_char=10)  # ~110 ms for 40 registers
    assert ideal <= per_read < ideal * 1.15, (per_read, ideal)

"""Serial lines that behave like wires (simulators/line_emulator.py): paced at the baud rate,
garbled as a UART garbles when the two ends disagree (issue 12, item 11).

The simulated meters are pymodbus RTU servers on the device end; the agent's tools run as
child processes on the other end. The emulator reads each end's settings from its pty, or is
told (parity E: a pty refuses it).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli_async
from vatio.common.links import SerialLine
from vatio.drivers.modbus.profile import RegisterType, load_profile
from vatio.drivers.modbus.transport import ModbusTransport, read_wire_time
from vatio.drivers.reading import DeviceTimeout, GarbledReply
from vatio.simulators.line_emulator import LineEmulator, LineEnd, Uart, transmit
from vatio.simulators.modbus_server import ModbusSerialSimulator, SimulatedMeter

pytestmark = pytest.mark.integration


vatio = run_cli_async


def read_config(tmp_path: Path, agent_end: Path, baudrate: int) -> Path:
    path = tmp_path / "line.yaml"
    path.write_text(
        f"site: line\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\n"
        f"buses:\n  line: {{type: modbus-rtu, port: {agent_end}, baudrate: {baudrate}}}\n"
        "devices:\n  meter: {bus: line, unit: 1, profile: eastron_sdm120, interval: 2s}\n"
    )
    return path


def test_the_uart_model_garbles_only_what_a_uart_would():
    data = bytes(range(0, 256, 7))
    n81 = Uart(9600, "N", 1, 8)
    assert [b for _, b in transmit(data, n81, Uart(9600, "N", 2, 8))] == list(data)
    # an 8E1 sender read as 8N1: a low parity bit is a framing error, and the receiver
    # resynchronises on it: wrong bytes (the first one is always right)
    received = bytes(b for _, b in transmit(data, Uart(9600, "E", 1, 8), n81))
    assert received != data and received[0] == data[0]
    # another speed: nothing like the data, not even the count
    assert bytes(b for _, b in transmit(data, n81, Uart(19200, "N", 1, 8))) != data
    # pacing: each byte arrives when its stop bit ends at the sender's speed
    times = [t for t, _ in transmit(b"\x01\x02", Uart(2400, "N", 1, 8), Uart(2400, "N", 1, 8))]
    assert times == pytest.approx([10 / 2400, 20 / 2400])


async def test_matching_settings_work_at_the_speed_of_the_wire(tmp_path):
    agent_end, device_end = tmp_path / "agent", tmp_path / "meter"
    with LineEmulator(agent_end, device_end) as line:
        sim = ModbusSerialSimulator(
            [SimulatedMeter(1, load_profile("eastron_sdm120"))], str(device_end), baudrate=2400
        )
        await sim.start()
        bus = ModbusTransport("line", SerialLine(str(agent_end), 2400), timeout=1.0, retries=0)
        try:
            started = time.monotonic()
            for _ in range(5):
                assert len(await bus.read(RegisterType.INPUT, 0, 20, 1)) == 20
            took = (time.monotonic() - started) / 5
            bus.close()  # the port is exclusive: free it for `vatio read`
            res = await vatio("read", "-c", str(read_config(tmp_path, agent_end, 2400)))
        finally:
            bus.close()
            await sim.stop()
    # the request, a t3.5 and the 45-byte reply at 2400 8N1: ~0.24 s on the wire
    wire = read_wire_time(20, 2400, bits_per_char=10) - 3.5 * 10 / 2400
    print(f"20-register read at 2400 baud: {took * 1000:.0f} ms (wire {wire * 1000:.0f} ms)")
    assert wire * 0.9 <= took < wire + 0.15
    assert line.directions[1].garbled_chunks == 0
    assert res.returncode == 0 and "ERROR" not in res.stdout, res


async def test_a_parity_mismatch_is_reported_as_garbled_not_as_silence(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    agent_end, device_end = tmp_path / "agent", tmp_path / "meter"
    # the meter is an 8E1 device (its pty is opened 8N1: a pty refuses parity E)
    with LineEmulator(agent_end, device_end, device=LineEnd(parity="E")) as line:
        sim = ModbusSerialSimulator(
            [SimulatedMeter(1, load_profile("eastron_sdm120"))], str(device_end), baudrate=9600
        )
        await sim.start()
        bus = ModbusTransport("line", SerialLine(str(agent_end), 9600), timeout=0.3, retries=0)
        tried, garbled = 10, 0
        try:
            for _ in range(tried):
                with pytest.raises(GarbledReply) as err:
                    await bus.read(RegisterType.INPUT, 0, 10, 1)
                garbled += 1
            assert "replies are garbled" in str(err.value)
            assert "check baud rate and parity" in err.value.hint
            bus.close()  # the port is exclusive: free it for `vatio read` and `vatio run`

            res = await vatio("read", "-c", str(read_config(tmp_path, agent_end, 9600)))
            assert res.returncode == 1
            assert (
                "replies are garbled" in res.stdout and "check baud rate and parity" in res.stdout
            )
            assert "Traceback" not in res.stdout + res.stderr

            cfg = read_config(tmp_path, agent_end, 9600)
            cfg.write_text(cfg.read_text() + f"outputs:\n  mqtt: {{url: '{mosquitto.url}'}}\n")
            cap = capture_factory(mosquitto.port)
            agent = agent_factory(cfg)
            events = await _wait_for(lambda: cap.on("/meter/events"), 15)
            assert events[0]["event"] == "device_degraded"
            assert events[0]["message"].startswith("replies are garbled"), events[0]
            assert "Traceback" not in agent.output()
        finally:
            bus.close()
            await sim.stop()
    print(f"parity mismatch: {tried} reads, {garbled} reported garbled, 0 as silence")
    assert line.directions[1].garbled_chunks >= tried


async def test_a_baud_mismatch_the_meter_cannot_read_is_silence_with_the_baud_hint(tmp_path):
    """A meter at 19200 cannot read a request sent at 9600 (it sees other bytes, none with
    a valid CRC), so it never answers: no bytes come back, and the agent cannot call that
    garbled. The hint names the baud rate."""
    agent_end, device_end = tmp_path / "agent", tmp_path / "meter"
    with LineEmulator(agent_end, device_end) as line:
        sim = ModbusSerialSimulator(
            [SimulatedMeter(1, load_profile("eastron_sdm120"))], str(device_end), baudrate=19200
        )
        await sim.start()
        bus = ModbusTransport("line", SerialLine(str(agent_end), 9600), timeout=0.3, retries=0)
        try:
            with pytest.raises(DeviceTimeout) as err:
                await bus.read(RegisterType.INPUT, 0, 10, 1)
        finally:
            bus.close()
            await sim.stop()
    assert type(err.value) is DeviceTimeout and "baud rate" in err.value.hint
    assert line.directions[0].garbled_chunks >= 1 and line.directions[1].sent == 0


async def test_scan_at_2400_baud_finds_and_names_an_sdm120_and_an_sdm630(tmp_path):
    agent_end, device_end = tmp_path / "agent", tmp_path / "meter"
    with LineEmulator(agent_end, device_end):
        sim = ModbusSerialSimulator(
            [
                SimulatedMeter(1, load_profile("eastron_sdm630"), seed=1),
                SimulatedMeter(2, load_profile("eastron_sdm120"), seed=2),
            ],
            str(device_end),
            baudrate=2400,
        )
        await sim.start()
        try:
            started = time.monotonic()
            res = await vatio("scan", str(agent_end), "--baudrate", "2400", "--units", "1-3", "-q")
            took = time.monotonic() - started
        finally:
            await sim.stop()
    print(res.stdout, f"\nscan took {took:.1f} s")
    assert res.returncode == 0, res
    lines = res.stdout.splitlines()
    assert any(line.split()[:2] == ["1", "eastron_sdm630"] for line in lines), res.stdout
    assert any(line.split()[:2] == ["2", "eastron_sdm120"] for line in lines), res.stdout
    assert "Traceback" not in res.stderr


async def _wait_for(condition, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)
    return value


async def test_scan_on_a_line_with_the_wrong_parity_says_garbled(tmp_path):
    agent_end, device_end = tmp_path / "agent", tmp_path / "meter"
    with LineEmulator(agent_end, device_end, device=LineEnd(parity="E")):
        sim = ModbusSerialSimulator(
            [SimulatedMeter(1, load_profile("eastron_sdm120"))], str(device_end), baudrate=9600
        )
        await sim.start()
        try:
            res = await vatio("scan", str(agent_end), "--units", "1-2", "-q")
        finally:
            await sim.stop()
    assert res.returncode == 1, res
    assert res.stdout.startswith("replies are garbled: check baud rate and parity"), res.stdout
    assert "unit(s) 1" in res.stdout and "no device answered" not in res.stdout
    assert "Traceback" not in res.stderr

"""Lying devices and picky ports, against `vatio run`, `vatio read` and `vatio scan` as child
processes, real Mosquitto, real sockets and real ptys (issue 12, items 5 and 9).

* a Modbus/TCP server that answers every read with a lie (simulators/lying_modbus.py) next
  to a healthy meter: the liar is degraded with "bad reply", nothing it sent is ever
  published as a value, the healthy meter keeps its schedule, and the log has no traceback;
* a serial port that refuses the configured parity (a pty refuses E) next to a working bus:
  the agent keeps polling the working bus; `read` and `scan` name the port and the setting.
"""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli_async, wait_until
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.lying_modbus import LyingModbusServer
from vatio.simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter
from vatio.simulators.serial_pair import SerialPair

pytestmark = pytest.mark.integration

LIARS = 10


vatio = run_cli_async


def config(tmp_path: Path, buses: str, devices: str, mqtt_url: str) -> Path:
    path = tmp_path / "vatio.yaml"
    path.write_text(
        f"site: bad\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\n"
        f"buses:\n{buses}devices:\n{devices}outputs:\n  mqtt: {{url: '{mqtt_url}'}}\n"
    )
    return path


def epoch(body: dict[str, object]) -> int:
    return calendar.timegm(time.strptime(str(body["ts"])[:19], "%Y-%m-%dT%H:%M:%S"))


async def test_a_lying_device_is_degraded_and_its_neighbour_keeps_its_schedule(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    liar = LyingModbusServer()
    liar_port = await liar.start()
    healthy = ModbusTcpSimulator([SimulatedMeter(1, load_profile("eastron_sdm630"), seed=1)])
    healthy_port = await healthy.start()
    try:
        liars = "".join(
            f"  liar-{u}: {{bus: liar, unit: {u}, profile: eastron_sdm120, interval: 500ms}}\n"
            for u in range(1, LIARS + 1)
        )
        cfg = config(
            tmp_path,
            f"  liar: {{type: modbus-tcp, host: 127.0.0.1, port: {liar_port}, timeout: 300ms}}\n"
            f"  good: {{type: modbus-tcp, host: 127.0.0.1, port: {healthy_port}}}\n",
            liars + "  good: {bus: good, unit: 1, profile: eastron_sdm630, interval: 1s}\n",
            mosquitto.url,
        )
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg)
        await wait_until(lambda: cap.on("/good/telemetry"), 20, "the healthy meter's reading")
        start = time.time()
        await wait_until(lambda: time.time() - start > 10, 15, "10 s of polling")
        end = time.time()
        agent.stop()

        ticks = int(end - 1) - int(start + 1)
        good = [
            b
            for b in cap.on("/good/telemetry")
            if start + 1 <= epoch(b) < end - 1 and all(v is not None for v in b["values"].values())
        ]
        lies = sum(liar.sent.values())
        liar_msgs = [
            b for u in range(1, LIARS + 1) for b in cap.on(f"/liar-{u}/telemetry")
        ]  # every one checked
        accepted = [b for b in liar_msgs if any(v is not None for v in b["values"].values())]
        log = agent.output().splitlines()
        print(
            f"lies sent {lies} ({liar.sent}); liar telemetry {len(liar_msgs)}, with a value "
            f"{len(accepted)}; healthy {len(good)} of {ticks} ticks; {len(log)} log lines"
        )
        assert lies >= 3 * LIARS
        assert not accepted, accepted[:3]
        assert all(
            set(b["quality"].values()) <= {"bad_reply", "garbled", "timeout"} for b in liar_msgs
        )
        assert len(good) >= ticks - 1, (len(good), ticks)
        for u in range(1, LIARS + 1):
            events = [e for e in cap.on(f"/liar-{u}/events") if e["event"] == "device_degraded"]
            assert len(events) == 1 and events[0]["message"].startswith("bad reply"), events
        text = "\n".join(log)
        assert "Traceback" not in text and "data_received" not in text
        # one warning per liar (its one state change), not one per bad reply
        assert sum("liar-" in line and "WARNING" in line for line in log) == LIARS
    finally:
        await healthy.stop()
        await liar.stop()


@pytest.fixture
def serial_pair(tmp_path):
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")
    with SerialPair(tmp_path) as pair:
        yield pair


async def test_a_port_that_refuses_a_setting_degrades_only_its_bus(
    tmp_path, serial_pair, mosquitto, capture_factory, agent_factory
):
    healthy = ModbusTcpSimulator([SimulatedMeter(1, load_profile("eastron_sdm120"), seed=1)])
    port = await healthy.start()
    try:
        cfg = config(
            tmp_path,
            f"  picky: {{type: modbus-rtu, port: {serial_pair.b}, baudrate: 9600, parity: E}}\n"
            f"  good: {{type: modbus-tcp, host: 127.0.0.1, port: {port}}}\n",
            "  on-picky: {bus: picky, unit: 1, profile: eastron_sdm120, interval: 1s}\n"
            "  good: {bus: good, unit: 1, profile: eastron_sdm120, interval: 1s}\n",
            mosquitto.url,
        )
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg)
        await wait_until(lambda: len(cap.on("/good/telemetry")) >= 4, 20, "4 good readings")
        assert agent.proc.poll() is None, agent.output()  # still running
        events = [e for e in cap.on("/on-picky/events") if e["event"] == "device_degraded"]
        assert events, cap.on("/on-picky/status")
        message = events[0]["message"]
        assert f"serial port {serial_pair.b} refuses parity E" in message, message
        assert "Traceback" not in agent.output()

        read = await vatio("read", "-c", str(cfg), "on-picky")
        assert read.returncode == 1
        assert f"serial port {serial_pair.b} refuses parity E" in read.stdout, read
        assert "Traceback" not in read.stdout + read.stderr

        scan = await vatio("scan", serial_pair.b, "--parity", "E", "--units", "1-2", "-q")
        assert scan.returncode == 1
        assert f"error: serial port {serial_pair.b} refuses parity E" in scan.stderr, scan
        assert "Traceback" not in scan.stdout + scan.stderr
    finally:
        await healthy.stop()


async def test_a_uart_sensor_port_that_refuses_a_setting_is_named(serial_pair):
    from vatio.common.links import SerialLine
    from vatio.drivers.reading import BusUnavailable
    from vatio.drivers.uart import sds011
    from vatio.drivers.uart.frames import FrameScanner
    from vatio.drivers.uart.link import UartLink

    scanner = FrameScanner(bytes([sds011.HEAD]), sds011.frame_length, sds011.frame_valid)
    link = UartLink("pm", SerialLine(serial_pair.b, 9600, "E"), scanner)
    with pytest.raises(BusUnavailable) as err:  # termios.error used to escape from here
        await link.ensure_open()
    assert f"serial port {serial_pair.b} refuses parity E" in str(err.value)
    assert "parity" in err.value.hint
    await link.close()
    # the half-opened port was released: the same port opens with a setting it accepts
    ok = UartLink("pm", SerialLine(serial_pair.b, 9600, "N"), scanner)
    assert await ok.ensure_open()
    await ok.close()


async def test_scan_names_a_device_that_answers_with_bad_replies():
    liar = LyingModbusServer(["wrong_fc"])
    port = await liar.start()
    try:
        res = await vatio("scan", f"127.0.0.1:{port}", "--units", "1", "-q")
    finally:
        await liar.stop()
    assert res.returncode == 0, res
    assert "answers with bad replies" in res.stdout
    assert "unit 1: bad reply reading" in res.stdout and "function code" in res.stdout
    assert "Traceback" not in res.stderr

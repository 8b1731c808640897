"""End to end: simulated meters (real Modbus/TCP) → `vatio run` (a real process) → Mosquitto.

Nothing here is faked: the simulators are pymodbus servers, the agent is the CLI in a child
process, the broker is Mosquitto on a free loopback port, and the test reads what arrives.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from tests.helpers import expected_on_wire, wait_until
from vatio.drivers.modbus.profile import load_profile
from vatio.drivers.modbus.register_codec import DataType
from vatio.simulators.brokers import MosquittoProcess, free_port
from vatio.simulators.configs import DeviceRow, loopback_config
from vatio.simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter

pytestmark = pytest.mark.integration

FROZEN_T = 1_795_000_000.0  # a fixed instant, so every read serves known values

MIXED_PROFILE = """\
model: Mixed-type test meter
manufacturer: Test
source: made for this test; exercises every data type, word and byte order
defaults: {register_type: holding, data_type: i32, word_order: little}
limits: {max_registers: 20, max_gap: 0}
registers:
  voltage_v: {address: 0, scale: 0.1}
  current_a: {address: 2, data_type: u16, scale: 0.01}
  active_power_w: {address: 3, data_type: i16, scale: 10}
  frequency_hz: {address: 10, data_type: f64, word_order: big}
  energy_import_kwh: {address: 20, data_type: u64, scale: 0.001}
  reactive_power_var: {address: 24, data_type: u32, scale: 0.1}
  energy_export_kwh: {address: 26, data_type: i64, word_order: big}
  power_factor: {address: 30, data_type: f32, register_type: input, byte_order: little}
  apparent_power_va: {address: 32, data_type: f32, register_type: input, word_order: big}
"""


def write_config(
    tmp_path: Path, buses: dict[str, int], devices: list[DeviceRow], mqtt_port: int
) -> Path:
    path = tmp_path / "vatio.yaml"
    path.write_text(
        loopback_config(
            "test-site",
            "gw-test",
            tmp_path / "state",
            buses,
            devices,
            f"mqtt://127.0.0.1:{mqtt_port}",
            "keepalive: 5",
        )
    )
    return path


async def test_telemetry_for_every_device_matches_what_the_simulators_serve(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    (tmp_path / "mixed.yaml").write_text(MIXED_PROFILE)
    mixed = load_profile(str(tmp_path / "mixed.yaml"))
    clock = lambda: FROZEN_T  # noqa: E731
    gateway = [
        SimulatedMeter(1, load_profile("eastron_sdm630"), seed=1, clock=clock),
        SimulatedMeter(2, load_profile("eastron_sdm120"), seed=2, clock=clock),
        SimulatedMeter(3, mixed, seed=3, clock=clock),
    ]
    solo = [SimulatedMeter(1, load_profile("eastron_sdm630"), seed=4, clock=clock)]
    sims = [ModbusTcpSimulator(gateway), ModbusTcpSimulator(solo)]
    ports = [await s.start() for s in sims]
    try:
        cfg = write_config(
            tmp_path,
            {"gw": ports[0], "solo": ports[1]},
            [
                ("sdm630", "gw", 1, "eastron_sdm630", "500ms"),
                ("sdm120", "gw", 2, "eastron_sdm120", "500ms"),
                ("mixed", "gw", 3, "mixed.yaml", "500ms"),
                ("compresor", "solo", 1, "eastron_sdm630", "500ms"),
            ],
            mosquitto.port,
        )
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg)
        names = {
            "sdm630": gateway[0],
            "sdm120": gateway[1],
            "mixed": gateway[2],
            "compresor": solo[0],
        }
        await wait_until(
            lambda: all(cap.on(f"/{n}/telemetry") for n in names), 20, "telemetry from every device"
        )
        for name, meter in names.items():
            body = cap.on(f"/{name}/telemetry")[-1]
            assert body["site"] == "test-site" and body["device"] == name
            assert body.get("quality") is None, body.get("quality")
            expected = expected_on_wire(meter.profile, meter.served)
            assert set(body["values"]) == set(expected)
            for q, v in expected.items():
                assert body["values"][q] == pytest.approx(v, rel=1e-9, abs=1e-9), (name, q)
        online = cap.on("/gw-test/status")
        assert online and online[-1]["state"] == "online"
        # seq is +1 per message per device and stream
        seqs = [b["seq"] for b in cap.on("/sdm630/telemetry")]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))

        # killed without a chance to say goodbye: the broker publishes the last will
        agent.kill()
        await wait_until(
            lambda: cap.on("/gw-test/status")[-1]["state"] == "offline",
            15,
            "offline status after SIGKILL",
        )
        late = capture_factory(mosquitto.port)  # a newcomer sees the retained state
        await wait_until(lambda: late.on("/gw-test/status"), 5, "retained status")
        assert late.on("/gw-test/status")[-1]["state"] == "offline"
    finally:
        for s in sims:
            await s.stop()


async def test_clean_stop_publishes_offline_and_resumes_seq(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    sim = ModbusTcpSimulator([SimulatedMeter(1, load_profile("eastron_sdm120"))])
    port = await sim.start()
    try:
        cfg = write_config(
            tmp_path, {"b": port}, [("m", "b", 1, "eastron_sdm120", "200ms")], mosquitto.port
        )
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg)
        await wait_until(lambda: len(cap.on("/m/telemetry")) >= 3, 20, "three readings")
        assert agent.stop() == 0  # SIGTERM
        await wait_until(lambda: cap.on("/gw-test/status")[-1]["state"] == "offline", 10)
        last = cap.on("/m/telemetry")[-1]["seq"]
        agent_factory(cfg)
        await wait_until(lambda: cap.on("/m/telemetry")[-1]["seq"] > last, 20, "new readings")
        after = [b["seq"] for b in cap.on("/m/telemetry") if b["seq"] > last]
        assert after[0] == last + 1  # a clean restart continues the count: no gap, no reuse
    finally:
        await sim.stop()


async def test_unreachable_broker_then_broker_appears(tmp_path, capture_factory, agent_factory):
    sim = ModbusTcpSimulator([SimulatedMeter(1, load_profile("eastron_sdm120"))])
    modbus_port = await sim.start()
    mqtt_port = free_port()
    try:
        cfg = write_config(
            tmp_path, {"b": modbus_port}, [("m", "b", 1, "eastron_sdm120", "1s")], mqtt_port
        )
        agent = agent_factory(cfg)
        await wait_until(lambda: "retrying in" in agent.output(), 15, "a broker warning")
        out = agent.output()
        assert f"nothing accepts connections at mqtt://127.0.0.1:{mqtt_port}" in out
        assert "is the broker running there?" in out and "wait in the spool" in out
        assert "Traceback" not in out
        await asyncio.sleep(2)  # the agent keeps polling meanwhile
        with MosquittoProcess(port=mqtt_port) as broker:
            cap = capture_factory(broker.port)
            # readings taken while the broker was away arrive after it appears
            await wait_until(
                lambda: any(b["seq"] == 1 for b in cap.on("/m/telemetry")),
                90,
                "the first reading, queued while the broker was down",
            )
        assert agent.proc.poll() is None
    finally:
        await sim.stop()


class SilentServer:
    """Accepts Modbus/TCP connections and never answers (a hung device)."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)
            while await reader.read(256):
                pass

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        for w in self.writers:  # Server.close() leaves accepted connections open
            w.close()
        await self.server.wait_closed()


async def test_devices_that_do_not_answer_do_not_stop_the_others(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    sim = ModbusTcpSimulator([SimulatedMeter(1, load_profile("eastron_sdm630"))])
    port = await sim.start()
    silent = SilentServer()
    silent_port = await silent.start()
    try:
        cfg = write_config(
            tmp_path,
            {"gw": port, "hung": silent_port, "nothing": free_port()},
            [
                ("ok", "gw", 1, "eastron_sdm630", "500ms"),
                ("wrong-id", "gw", 9, "eastron_sdm630", "500ms"),
                ("silent", "hung", 1, "eastron_sdm630", "500ms"),
                ("unplugged", "nothing", 1, "eastron_sdm630", "500ms"),
            ],
            mosquitto.port,
        )
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg)
        await wait_until(lambda: len(cap.on("/ok/telemetry")) >= 8, 30, "healthy readings")
        out = agent.output()
        assert "Traceback" not in out
        assert "device 'wrong-id' (bus 'gw' 127.0.0.1:" in out and "check the unit id" in out
        assert "device 'silent'" in out and "no answer within" in out
        assert "device 'unplugged'" in out and "cannot connect to bus 'nothing'" in out
        for name in ("wrong-id", "silent", "unplugged"):
            # one line per state change, not one per poll
            assert out.count(f"device '{name}'") == 1, out
            status = cap.on(f"/{name}/status")[-1]
            assert status["state"] == "degraded"
            body = cap.on(f"/{name}/telemetry")[-1]
            assert all(v is None for v in body["values"].values())
            assert set(body["quality"].values()) <= {"timeout", "exception", "unavailable"}
        assert cap.on("/silent/events")[0]["event"] == "device_degraded"
        ok = [b for b in cap.on("/ok/telemetry")]
        assert all(b["values"]["voltage_l1_v"] is not None for b in ok)
    finally:
        await silent.stop()
        await sim.stop()


def test_the_mixed_profile_fixture_is_valid(tmp_path):
    (tmp_path / "m.yaml").write_text(textwrap.dedent(MIXED_PROFILE))
    profile = load_profile(str(tmp_path / "m.yaml"))
    assert {p.data_type for p in profile.points} == set(DataType)

"""Home Assistant MQTT discovery on a real broker: one retained sensor config per device and
quantity, pointing at Vatio's own telemetry topic and a template that finds the value, under an
announced gateway; a device taken out of the config has its configs cleared at the next start.
Against a real Home Assistant: bench/homeassistant_check.py."""

from __future__ import annotations

import pytest

from tests.helpers import wait_until
from tests.integration.test_delivery import DEVICES, start_meters
from vatio.simulators.configs import loopback_config

pytestmark = pytest.mark.integration


async def test_meters_announce_themselves_to_home_assistant(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    sim, port = await start_meters()
    try:
        cfg = tmp_path / "vatio.yaml"

        def write(devices):
            cfg.write_text(
                loopback_config(
                    "planta", "gw", tmp_path / "state", {"b": port}, devices, mosquitto.url,
                    "homeassistant: true",
                )
            )  # fmt: skip

        write(DEVICES)
        agent = agent_factory(cfg)
        cap = capture_factory(mosquitto.port, "#")
        await wait_until(lambda: cap.on("/m1/telemetry"), 20, "telemetry")
        configs = {t: b for t, b, _ in cap.messages if t.startswith("homeassistant/")}
        power = configs["homeassistant/sensor/vatio_planta_m1/active_power_w/config"]
        assert power["state_topic"] == "vatio/v1/planta/m1/telemetry"
        assert power["device_class"] == "power" and power["unit_of_measurement"] == "W"
        assert power["name"] == "Power"
        # available while the agent is online, the meter answers and this value was read
        assert power["availability_mode"] == "all"
        assert [a["topic"] for a in power["availability"]] == [
            "vatio/v1/planta/gw/status", "vatio/v1/planta/m1/status",
            "vatio/v1/planta/m1/telemetry",
        ]  # fmt: skip
        energy = configs["homeassistant/sensor/vatio_planta_m1/energy_import_kwh/config"]
        assert energy["state_class"] == "total_increasing"
        # the template's path exists in what the meter publishes
        reading = cap.on("/m1/telemetry")[-1]
        assert "active_power_w" in reading["values"]
        assert "['values'].get('active_power_w'" in power["value_template"]
        assert all(t.endswith("/config") for t in configs)
        nodes = {t.split("/")[2] for t in configs}
        assert nodes == {f"vatio_planta_{d[0]}" for d in DEVICES} | {"vatio_planta_gw"}
        # the gateway every device names as its parent is announced
        assert power["device"]["via_device"] == "vatio_planta_gw"
        gateway = configs["homeassistant/binary_sensor/vatio_planta_gw/connectivity/config"]
        assert gateway["device"]["identifiers"] == ["vatio_planta_gw"]
        assert power["device"]["manufacturer"] == "Eastron"
        status = cap.on("/m1/status")[-1]
        assert status["state"] == "online" and status["answering"] is True
        m5 = {t for t in configs if "/vatio_planta_m5/" in t}
        assert m5
        cap.close()  # it would choke on the empty payloads that clear m5's configs
        assert agent.stop() == 0

        # m5 leaves the config: its configs are cleared, the others stay
        write(DEVICES[:-1])
        agent = agent_factory(cfg)
        live = capture_factory(mosquitto.port, "vatio/#")
        await wait_until(lambda: live.on("/gw/status"), 20, "the agent back")
        await wait_until(lambda: live.on("/m1/telemetry"), 20, "telemetry")
        retained = capture_factory(mosquitto.port, "homeassistant/#")  # what the broker keeps
        await wait_until(
            lambda: {t for t, _, r in retained.messages if r} >= set(configs) - m5, 10,
            "the other configs",
        )  # fmt: skip
        assert not {t for t, _, _ in retained.messages} & m5
        assert agent.stop() == 0
    finally:
        await sim.stop()

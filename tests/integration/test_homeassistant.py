"""Home Assistant MQTT discovery on a real broker: one retained sensor config per device and
quantity, pointing at Vatio's own telemetry topic and a template that finds the value."""

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
        cfg.write_text(
            loopback_config(
                "planta", "gw", tmp_path / "state", {"b": port}, DEVICES, mosquitto.url,
                "homeassistant: true",
            )
        )  # fmt: skip
        agent = agent_factory(cfg)
        cap = capture_factory(mosquitto.port, "#")
        await wait_until(lambda: cap.on("/m1/telemetry"), 20, "telemetry")
        configs = {t: b for t, b, _ in cap.messages if t.startswith("homeassistant/")}
        power = configs["homeassistant/sensor/vatio_planta_m1/active_power_w/config"]
        assert power["state_topic"] == "vatio/v1/planta/m1/telemetry"
        assert power["device_class"] == "power" and power["unit_of_measurement"] == "W"
        assert power["availability_topic"] == "vatio/v1/planta/gw/status"
        energy = configs["homeassistant/sensor/vatio_planta_m1/energy_import_kwh/config"]
        assert energy["state_class"] == "total_increasing"
        # the template's path exists in what the meter publishes
        reading = cap.on("/m1/telemetry")[-1]
        assert "active_power_w" in reading["values"]
        assert "['values']['active_power_w']" in power["value_template"]
        assert all(t.endswith("/config") for t in configs)
        assert {t.split("/")[2] for t in configs} == {f"vatio_planta_{d[0]}" for d in DEVICES}
        assert agent.stop() == 0
    finally:
        await sim.stop()

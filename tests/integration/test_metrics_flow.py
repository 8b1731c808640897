"""Metrics through the real path: simulated meter → `vatio run` → `metrics` messages, and
accumulated energy carried across a restart."""

from __future__ import annotations

import pytest

from tests.helpers import wait_until
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter

pytestmark = pytest.mark.integration


async def test_metrics_are_published_and_survive_a_restart(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    sim = ModbusTcpSimulator([SimulatedMeter(1, load_profile("eastron_sdm630"), seed=3)])
    port = await sim.start()
    cfg = tmp_path / "vatio.yaml"
    cfg.write_text(
        f"site: s\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\n"
        f"buses:\n  gw: {{type: modbus-tcp, host: 127.0.0.1, port: {port}}}\n"
        "devices:\n  main: {bus: gw, unit: 1, profile: eastron_sdm630, interval: 500ms}\n"
        f"outputs:\n  mqtt: {{url: '{mosquitto.url}'}}\n"
        "metrics: {interval: 1s, timezone: America/Mexico_City, region: SIN}\n"
    )
    try:
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg)

        def energy() -> list[float]:
            return [b["values"]["energy_month_kwh"] for b in cap.on("/main/metrics")]

        await wait_until(lambda: len(energy()) >= 3 and energy()[-1] > 0, 30, "metrics")
        body = cap.on("/main/metrics")[-1]
        v = body["values"]
        assert body["site"] == "s" and body["device"] == "main"
        assert v["energy_today_kwh"] > 0 and v["emissions_today_kgco2e"] > 0
        assert v["demand_sliding_kw"] > 0
        parts = (
            v["energy_month_base_kwh"]
            + v["energy_month_intermedia_kwh"]
            + v["energy_month_punta_kwh"]
        )
        assert parts == pytest.approx(v["energy_month_kwh"], rel=1e-6)
        assert agent.stop() == 0
        before = energy()[-1]
        agent_factory(cfg)  # the same state_dir: totals go on from where they were
        await wait_until(
            lambda: len(energy()) > 0 and energy()[-1] > before, 30, "metrics after the restart"
        )
        after = [e for e in energy() if e > 0]
        assert min(after[after.index(before) + 1 :]) >= before  # never reset to zero
    finally:
        await sim.stop()

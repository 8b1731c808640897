"""The agent's pipeline with an I2C city kit: config → scheduler → I2C drivers → simulated
bus (injected behind the transport) → readings, metrics and device states; an unplugged
sensor is degraded while its neighbours on the same bus keep their schedule."""

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from vatio.agent.config import parse_config_text
from vatio.agent.runtime import Agent
from vatio.drivers.reading import PollResult
from vatio.simulators.i2c_sensors import CityKit

CONFIG = """\
site: barrio
agent_id: kit-01
state_dir: {state}
buses:
  kit: {{type: i2c, device: /dev/i2c-1}}
devices:
  aire: {{bus: kit, driver: bme280, interval: 1s}}
  th3: {{bus: kit, driver: sht3x, interval: 1s}}
  th4: {{bus: kit, driver: sht4x, address: 0x45, interval: 1s}}
  co2: {{bus: kit, driver: scd4x, interval: 1s}}
  pm: {{bus: kit, driver: sps30_i2c, interval: 1s}}
"""


async def test_the_agent_polls_an_i2c_kit_and_survives_an_unplugged_sensor(tmp_path: Path):
    kit = CityKit()
    kit.sht3x.unplug()  # never there: a wrong wire from the start
    loaded = parse_config_text(CONFIG.format(state=tmp_path / "state"))
    agent = Agent(loaded, i2c_opener=kit.bus.opener)
    results: list[PollResult] = []
    states: list[tuple[str, str, str]] = []
    readings, device_state = agent.pipeline.readings, agent.pipeline.device_state

    def record(result: PollResult) -> None:
        results.append(result)
        readings(result)

    def record_state(device: str, state: str, reason: str) -> None:
        states.append((device, state, reason))
        device_state(device, state, reason)

    agent.pipeline.readings = record  # type: ignore[method-assign]
    agent.pipeline.device_state = record_state  # type: ignore[method-assign]
    stop = asyncio.Event()
    run = asyncio.create_task(agent.run(stop))
    healthy = ("aire", "th4", "co2", "pm")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ok = {d: sum(1 for r in results if r.device == d and r.ok) for d in healthy}
        if min(ok.values()) >= 2:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(run, 10)

    def last(device: str) -> PollResult:
        return [r for r in results if r.device == device and r.ok][-1]

    assert last("aire").values["pressure_hpa"] == pytest.approx(kit.bme280.pressure_hpa, abs=0.01)
    assert last("th4").values["humidity_pct"] == pytest.approx(kit.sht4x.humidity_pct, abs=0.01)
    assert last("co2").values["co2_ppm"] == kit.scd4x.co2_ppm
    assert last("pm").values["pm2_5_ugm3"] == pytest.approx(kit.sps30.mass[1], abs=1e-3)
    # the unplugged one: degraded once, with the reason, and null values flagged "nak"
    failed = [r for r in results if r.device == "th3"]
    assert failed and all(not r.ok for r in failed)
    assert failed[0].quality == {"temperature_c": "nak", "humidity_pct": "nak"}
    th3_states = [s for s in states if s[0] == "th3"]
    assert th3_states[0][1] == "degraded"
    assert "no acknowledge from address 0x44 on /dev/i2c-1" in th3_states[0][2]
    # its neighbours kept a poll per second meanwhile (the SHT4x from the first second on)
    th4 = [r.ts for r in results if r.device == "th4"]
    assert len(th4) >= 2 and all(0.5 < b - a < 1.5 for a, b in itertools.pairwise(th4))
    # shut down: the periodic sensors were stopped and the bus closed
    assert kit.scd4x.started is None and kit.sps30.started is None
    assert kit.bus.closed

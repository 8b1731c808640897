"""SPS30 (SHDLC, ``driver: sps30`` on a serial bus), PMS7003 and PMSA003 end to end: byte-exact
simulators on pty pairs, noisy lines, `vatio run` in a child process, what reaches Mosquitto."""

from __future__ import annotations

import pytest

from tests.helpers import wait_until
from vatio.drivers.uart import sps30
from vatio.simulators.serial_pair import SerialPair
from vatio.simulators.uart_sensors import (
    SPS30_VALUES,
    LineNoise,
    Pms7003Sim,
    Pmsa003Sim,
    Sps30Sim,
)

pytestmark = pytest.mark.integration

NOISY = LineNoise(garbage=0.2, partial=0.05, bad_checksum=0.1)

# device: (simulator class, bus settings, device options)
SENSORS = {
    "sps": (Sps30Sim, "baudrate: 115200", "driver: sps30"),
    "pms7": (Pms7003Sim, "baudrate: 9600", "driver: pms7003, mode: passive"),
    "pmsa": (Pmsa003Sim, "baudrate: 9600", "driver: pmsa003"),
}


async def test_particle_sensors_through_noisy_lines(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")
    pairs = {n: SerialPair(tmp_path, n).start() for n in SENSORS}
    sims = {}
    try:
        for n, (cls, _, _) in SENSORS.items():
            sims[n] = cls(pairs[n].a, noise=NOISY, seed=len(sims) + 3)
            sims[n].fixed = {"pm2_5_ugm3": 35} if n != "sps" else dict(SPS30_VALUES)
            await sims[n].start()
        buses = "".join(
            f"  {n}: {{type: serial, port: {pairs[n].b}, {bus}}}\n"
            for n, (_, bus, _) in SENSORS.items()
        )
        devices = "".join(
            f"  {n}: {{bus: {n}, {opts}, interval: 1s}}\n" for n, (_, _, opts) in SENSORS.items()
        )
        config = tmp_path / "vatio.yaml"
        config.write_text(
            f"site: city\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\n"
            f"buses:\n{buses}devices:\n{devices}outputs:\n  mqtt: {{url: '{mosquitto.url}'}}\n"
        )
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(config)

        def good(n):
            return [b for b in cap.on(f"/{n}/telemetry") if None not in b["values"].values()]

        await wait_until(lambda: all(len(good(n)) >= 2 for n in SENSORS), 15, "readings")

        sps = good("sps")[-1]["values"]
        assert set(sps) == set(sps30.QUANTITIES)
        assert sps == pytest.approx(sims["sps"].sent, abs=5e-4)
        assert sps["pm2_5_ugm3"] == 15.84 and sps["typical_particle_size_um"] == 0.99
        for n in ("pms7", "pmsa"):
            sim = sims[n]
            expected = {**sim.sent, **sim.sent_cf1_names, **sim.sent_counts}
            assert good(n)[-1]["values"] == pytest.approx(expected), n
        assert not sims["pms7"].active and sims["pmsa"].active  # passive over the wire
        assert sims["sps"].measuring
        assert "Traceback" not in agent.output()
    finally:
        for s in sims.values():
            await s.stop()
        for p in pairs.values():
            p.stop()

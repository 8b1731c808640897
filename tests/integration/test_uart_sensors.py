"""UART air-quality sensors end to end: byte-exact simulators on pty pairs, a noisy line,
`vatio run` in a child process, and what reaches Mosquitto."""

from __future__ import annotations

import pytest

from tests.helpers import wait_until
from vatio.simulators.serial_pair import SerialPair
from vatio.simulators.uart_sensors import LineNoise, Mhz19Sim, Pms5003Sim, Sds011Sim

pytestmark = pytest.mark.integration

NOISY = LineNoise(garbage=0.3, partial=0.1, bad_checksum=0.1)

# device: (simulator class, options YAML, pinned values)
SENSORS = {
    "sds-query": (
        Sds011Sim,
        "driver: sds011, mode: query",
        {"pm2_5_ugm3": 23.4, "pm10_ugm3": 37.9},
    ),
    "sds-active": (
        Sds011Sim,
        "driver: sds011, mode: active",
        {"pm2_5_ugm3": 8.1, "pm10_ugm3": 12.5},
    ),
    "pms-active": (Pms5003Sim, "driver: pms5003", {"pm2_5_ugm3": 30}),
    "pms-passive": (Pms5003Sim, "driver: pms5003, mode: passive, values: cf1", {"pm2_5_ugm3": 50}),
    "co2": (Mhz19Sim, "driver: mhz19b", {"co2_ppm": 812}),
}


@pytest.fixture
def need_socat():
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")


def write_config(tmp_path, pairs, mqtt_url, extra=""):
    buses = "".join(f"  {n}: {{type: serial, port: {p.b}}}\n" for n, p in pairs.items())
    devices = "".join(
        f"  {n}: {{bus: {n}, {SENSORS[n][1] if n in SENSORS else extra}, interval: 1s}}\n"
        for n in pairs
    )
    path = tmp_path / "vatio.yaml"
    path.write_text(
        f"site: city\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\n"
        f"buses:\n{buses}devices:\n{devices}outputs:\n  mqtt: {{url: '{mqtt_url}'}}\n"
    )
    return path


async def test_every_sensor_through_a_noisy_line(
    tmp_path, need_socat, mosquitto, capture_factory, agent_factory
):
    pairs = {n: SerialPair(tmp_path, n).start() for n in SENSORS}
    sims = {}
    try:
        for n, (cls, _, values) in SENSORS.items():
            sims[n] = cls(pairs[n].a, noise=NOISY, seed=len(sims))
            sims[n].fixed = dict(values)
            await sims[n].start()
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(write_config(tmp_path, pairs, mosquitto.url))

        def good(n):
            return [b for b in cap.on(f"/{n}/telemetry") if None not in b["values"].values()]

        await wait_until(lambda: all(len(good(n)) >= 3 for n in SENSORS), 40, "readings")
        for n, (_, _, values) in SENSORS.items():
            body = good(n)[-1]
            sim = sims[n]
            expected = getattr(sim, "sent_cf1", None) if "cf1" in SENSORS[n][1] else sim.sent
            for q, v in (expected or values).items():
                assert body["values"][q] == pytest.approx(v), (n, q, body)
        # the query-mode drivers put their sensors in query/passive mode over the wire
        assert not sims["sds-query"].active and not sims["pms-passive"].active
        assert sims["sds-active"].active
        assert "Traceback" not in agent.output()
    finally:
        for s in sims.values():
            await s.stop()
        for p in pairs.values():
            p.stop()


async def test_sds011_duty_cycle_sleeps_between_polls(
    tmp_path, need_socat, mosquitto, capture_factory, agent_factory
):
    pair = SerialPair(tmp_path, "duty").start()
    sim = Sds011Sim(pair.a)
    sim.fixed = {"pm2_5_ugm3": 5.0, "pm10_ugm3": 9.0}
    await sim.start()
    try:
        cfg = write_config(
            tmp_path,
            {"duty": pair},
            mosquitto.url,
            "driver: sds011, mode: query, duty_cycle: true, warmup: 500ms",
        )
        cap = capture_factory(mosquitto.port)
        agent_factory(cfg)
        await wait_until(lambda: len(cap.on("/duty/telemetry")) >= 2, 30, "readings")
        cmds = [(c[2], c[3], c[4]) for c in sim.commands]
        wake, sleep, query = (6, 1, 1), (6, 1, 0), (4, 0, 0)
        i = cmds.index(query)
        assert wake in cmds[:i] and sleep in cmds[i:]
        # resting between polls (awake ~0.5 s of each 1 s interval: poll, not one instant)
        await wait_until(lambda: sim.asleep, 3, "the sensor to sleep between polls")
    finally:
        await sim.stop()
        pair.stop()


async def test_unplugged_sensor_recovers_by_itself(
    tmp_path, need_socat, mosquitto, capture_factory, agent_factory
):
    pair = SerialPair(tmp_path, "co2").start()
    sim = Mhz19Sim(pair.a)
    sim.fixed = {"co2_ppm": 600}
    await sim.start()
    cap = capture_factory(mosquitto.port)
    agent = agent_factory(write_config(tmp_path, {"co2": pair}, mosquitto.url, "driver: mhz19b"))
    try:
        await wait_until(lambda: cap.on("/co2/telemetry"), 20, "first reading")
        await sim.stop()
        pair.stop()  # the USB adapter is pulled: the port disappears
        await wait_until(
            lambda: any(s["state"] == "degraded" for s in cap.on("/co2/status")),
            20,
            "degraded status",
        )
        pair = SerialPair(tmp_path, "co2").start()  # plugged back in
        sim = Mhz19Sim(pair.a)
        sim.fixed = {"co2_ppm": 640}
        await sim.start()
        await wait_until(
            lambda: any(b["values"]["co2_ppm"] == 640 for b in cap.on("/co2/telemetry")),
            60,
            "recovery",
        )
        assert any(e["event"] == "device_recovered" for e in cap.on("/co2/events"))
        out = agent.output()
        assert "device 'co2'" in out and "Traceback" not in out
    finally:
        await sim.stop()
        pair.stop()

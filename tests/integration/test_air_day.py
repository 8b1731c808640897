"""A known city day through `vatio run`: a Vaisala AQT530 gas analyzer (pymodbus simulator,
real Modbus/TCP bytes) and a PMS5003 particle sensor (byte-exact UART simulator on a pty) on
a simulated clock (3 600× real time: 8 hours take 8 s), into Mosquitto.

Checked in the published messages:

* the PMS5003's PM2.5 corrected for the humidity the AQT530 reads (``humidity_from: aqt``):
  CF=1 33 µg/m³ at 60 % RH is in the 30–50 blending segment: f = 33/20 − 1.5 = 0.15,
  (0.786·0.15 + 0.524·0.85)·33 − 0.0862·60 + 5.75 = 19.17 µg/m³, next to the raw value;
* the AQT530's gas indicators at 17:00 local: each checked against the hourly means worked
  out here from the analyzer's own telemetry (so a poll stamped a few simulated seconds
  across an hour boundary cannot fail the test), and the levels against the known day
  (simulators/air_day.py), whose hours sit far from every band edge: O3 at 16 h is 104 ppb
  → 0.104 ppm → Mala; NO2 80 ppb → Aceptable; SO2 20 ppb → Buena; CO 8-h mean 1.50 ppm → Buena;
  PM2.5 20 µg/m³ → Aceptable (2026 stage). Overall: Mala, set by O3.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import wait_until
from vatio.common.clock import SimulatedClock
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.air_day import AirDay
from vatio.simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter
from vatio.simulators.serial_pair import SerialPair
from vatio.simulators.uart_sensors import Pms5003Sim

pytestmark = pytest.mark.integration

TZ = ZoneInfo("America/Mexico_City")
SPEED = 3600.0
START = dt.datetime(2026, 11, 3, 8, 59, tzinfo=TZ)
END = dt.datetime(2026, 11, 3, 17, 0, tzinfo=TZ)  # hours 09–16 complete: 8-h means valid
CORRECTED = (0.786 * 0.15 + 0.524 * 0.85) * 33 - 0.0862 * 60 + 5.75  # 19.1669 µg/m³


def half_up(x: float, places: str) -> float:
    return float(Decimal(str(x)).quantize(Decimal(places), rounding=ROUND_HALF_UP))


async def test_a_day_of_gases_gives_the_ias_and_the_corrected_pm(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")
    anchor = time.time() + 3.0
    clock = SimulatedClock(START.timestamp(), SPEED, anchor)
    aqt = SimulatedMeter(1, load_profile("vaisala_aqt530"), clock=clock.now, load=AirDay())
    sim = ModbusTcpSimulator([aqt])
    port = await sim.start()
    pair = SerialPair(tmp_path, "pms").start()
    pms = Pms5003Sim(pair.a)
    pms.fixed = {"pm2_5_ugm3": 30}  # atmospheric 30, CF=1 round(30 × 1.1) = 33
    await pms.start()
    cfg = tmp_path / "vatio.yaml"
    cfg.write_text(
        f"site: ciudad\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\n"
        f"buses:\n  gw: {{type: modbus-tcp, host: 127.0.0.1, port: {port}}}\n"
        f"  uart: {{type: serial, port: {pair.b}}}\n"
        "devices:\n"
        "  aqt: {bus: gw, unit: 1, profile: vaisala_aqt530, interval: 2m}\n"
        "  pms: {bus: uart, driver: pms5003, mode: passive, values: cf1, interval: 2m,\n"
        "        metrics: {humidity_from: aqt, humidity_input: pm2_5_ugm3}}\n"
        f"outputs:\n  mqtt: {{url: '{mosquitto.url}'}}\n"
        "metrics: {interval: 1h, timezone: America/Mexico_City, ias_stage: '2026'}\n"
    )
    env = {"VATIO_SIMULATED_TIME": f"{START.isoformat()},{SPEED},{anchor}"}
    try:
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg, env)

        def at_the_end() -> list[dict]:
            return [
                b
                for b in cap.on("/aqt/metrics")
                if dt.datetime.fromisoformat(b["ts"]).timestamp() >= END.timestamp()
            ]

        await wait_until(at_the_end, 3.0 + 8.2 * 3600 / SPEED + 20, "the 17:00 metrics")
        body = at_the_end()[0]
        v = body["values"]
        now = dt.datetime.fromisoformat(body["ts"]).timestamp()

        # hourly means of what the analyzer reported, by UTC epoch hour
        sums: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for t in cap.on("/aqt/telemetry"):
            ts = dt.datetime.fromisoformat(t["ts"]).timestamp()
            for q in ("o3_ppb", "no2_ppb", "so2_ppb", "co_ppm"):
                if t["values"].get(q) is not None and ts < now // 3600 * 3600:
                    sums[q][int(ts // 3600)].append(t["values"][q])
        last = int(now // 3600) - 1
        means = {q: {h: sum(xs) / len(xs) for h, xs in hs.items()} for q, hs in sums.items()}
        assert v["o3_1h_ppm"] == half_up(means["o3_ppb"][last] / 1000, "0.001")
        assert v["no2_1h_ppm"] == half_up(means["no2_ppb"][last] / 1000, "0.001")
        assert v["so2_1h_ppm"] == half_up(means["so2_ppb"][last] / 1000, "0.001")
        eight = [means["co_ppm"][h] for h in range(last - 7, last + 1) if h in means["co_ppm"]]
        assert len(eight) == 8
        assert v["co_8h_ppm"] == half_up(sum(eight) / 8, "0.01")
        o3_8 = [means["o3_ppb"][h] for h in range(last - 7, last + 1)]
        assert v["o3_8h_ppm"] == half_up(sum(o3_8) / 8 / 1000, "0.001")
        # the known day (simulators/air_day.py), far from every band edge
        assert v["o3_1h_ppm"] == pytest.approx(0.104, abs=0.002)
        assert v["co_8h_ppm"] == pytest.approx(1.50, abs=0.02)
        assert (v["ias_mx_o3"], v["ias_mx_no2"], v["ias_mx_so2"], v["ias_mx_co"]) == (3, 2, 1, 1)
        assert v["ias_mx_pm2_5"] == 2 and v["ias_mx_pm10"] == 1
        assert v["ias_mx"] == 3 and body["ias_mx_pollutant"] == "o3"

        # the PMS5003: raw CF=1 value kept, the corrected one next to it, and its hourly mean
        good = [t for t in cap.on("/pms/telemetry") if t["values"].get("pm2_5_ugm3") == 33]
        assert good, cap.on("/pms/telemetry")[-3:]
        corrected = [t["values"]["pm2_5_corrected_ugm3"] for t in good]
        assert corrected[-1] == pytest.approx(CORRECTED, abs=0.005)
        assert "pm2_5_corrected_ugm3" not in good[-1].get("quality", {})
        pm_metrics = [b["values"] for b in cap.on("/pms/metrics")]
        assert pm_metrics[-1]["pm2_5_corrected_1h_ugm3"] == pytest.approx(CORRECTED, abs=0.005)
        assert "Traceback" not in agent.output()
    finally:
        await pms.stop()
        pair.stop()
        await sim.stop()

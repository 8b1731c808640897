"""A known 24-hour load played by a simulated meter through `vatio run`, on a simulated clock
(1 440× real time: the day takes a minute), and the published day totals checked against the
totals worked out by hand from the tariff rules.

The meter integrates its step profile exactly, and the agent splits each poll's energy at
15-minute boundaries, so per-period totals are exact up to one effect of the fast clock:
a poll stamped a few real milliseconds away from the moment the meter read its counter
(event-loop wake-ups on a busy machine, the reply's trip) is several simulated seconds off.
Across a period boundary that moves at most 120 kW × 7 s ≈ 0.25 kWh; in a 15-minute block it
moves the block's mean by up to 120 kW × 7 s / 900 s ≈ 1 kW. The day's total has no boundary
error at all (midnight falls in a flat stretch), so it is held to 0.05 kWh.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
import time
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import wait_until
from vatio.common.clock import SimulatedClock
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.load_curve import DailyProfile
from vatio.simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter

pytestmark = [pytest.mark.integration, pytest.mark.serial]

TZ = ZoneInfo("America/Mexico_City")
SPEED = 1440.0
START = dt.datetime(2026, 11, 2, 23, 0, tzinfo=TZ)  # an hour before the day under test
DAY = dt.datetime(2026, 11, 3, tzinfo=TZ)  # a Tuesday in the SIN winter, not a holiday
# (local hour the step starts, kW); no step on a period boundary or at midnight
PROFILE = DailyProfile(((0, 20.0), (7, 80.0), (12, 60.0), (19, 120.0), (23, 20.0)), pf=0.95)

# SIN invierno Mon–Fri: base 0–6, intermedia 6–18 and 22–24, punta 18–22 (domain.md §4.3)
BASE = 6 * 20.0
INTERMEDIA = 1 * 20.0 + 5 * 80.0 + 6 * 60.0 + 1 * 120.0 + 1 * 20.0
PUNTA = 1 * 60.0 + 3 * 120.0
FACTOR_2026 = 0.444  # the latest published national factor (2024) applies (domain.md §3.1)


async def test_a_known_day_gives_the_expected_totals(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    anchor = time.time() + 3.0  # simulated START at this real time, in both processes
    clock = SimulatedClock(START.timestamp(), SPEED, anchor)
    meter = SimulatedMeter(1, load_profile("eastron_sdm630"), clock=clock.now, load=PROFILE)
    sim = ModbusTcpSimulator([meter])
    port = await sim.start()
    cfg = tmp_path / "vatio.yaml"
    cfg.write_text(
        f"site: s\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\n"
        f"buses:\n  gw: {{type: modbus-tcp, host: 127.0.0.1, port: {port}}}\n"
        "devices:\n  main: {bus: gw, unit: 1, profile: eastron_sdm630, interval: 1m}\n"
        f"outputs:\n  mqtt: {{url: '{mosquitto.url}'}}\n"
        "metrics: {interval: 1h, timezone: America/Mexico_City, region: SIN}\n"
    )
    env = {"VATIO_SIMULATED_TIME": f"{START.isoformat()},{SPEED},{anchor}"}
    try:
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg, env)
        end = (DAY + dt.timedelta(days=1)).timestamp()

        def after_the_day() -> list[dict]:
            return [
                b
                for b in cap.on("/main/metrics")
                if dt.datetime.fromisoformat(b["ts"]).timestamp() > end + 900
            ]

        await wait_until(after_the_day, 3.0 + 26 * 3600 / SPEED + 30, "the next day's metrics")
        v = after_the_day()[0]["values"]
        assert v["energy_yesterday_base_kwh"] == pytest.approx(BASE, abs=0.25)
        assert v["energy_yesterday_intermedia_kwh"] == pytest.approx(INTERMEDIA, abs=0.25)
        assert v["energy_yesterday_punta_kwh"] == pytest.approx(PUNTA, abs=0.25)
        total = BASE + INTERMEDIA + PUNTA
        assert v["energy_yesterday_kwh"] == pytest.approx(total, abs=0.05)
        assert v["emissions_yesterday_kgco2e"] == pytest.approx(total * FACTOR_2026, abs=0.05)
        # the 19:00–23:00 blocks run at 120 kW; blocks beside a step only average it
        assert v["demand_peak_yesterday_kw"] == pytest.approx(120.0, abs=1.5)
        assert v["demand_peak_punta_kw"] == pytest.approx(120.0, abs=1.5)
        # any fraction of a kW rounds up (GDMTH §7.3)
        assert v["demand_peak_month_kw"] == math.ceil(v["demand_peak_punta_kw"] - 1e-9)
        # kVArh = kWh·tan(acos 0.95) → FP 95.00 %; credit 1/4·(1 − 90/95) = 1.3 % (§4.4)
        assert v["power_factor_month_pct"] == pytest.approx(95.0)
        assert v["pf_bonus_pct"] == pytest.approx(1.3)
        assert v["pf_surcharge_pct"] == 0.0
        assert agent.stop() == 0

        # the closed day is kept on the device too
        out = subprocess.run(
            [sys.executable, "-m", "vatio.agent.cli", "history", "-c", str(cfg), "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        days = {r["day"]: r for r in map(json.loads, out.stdout.splitlines())}
        kept = days["2026-11-03"]
        assert kept["kwh"] == pytest.approx(total, abs=0.05)
        assert kept["kwh_by_period"]["punta"] == pytest.approx(PUNTA, abs=0.25)
    finally:
        await sim.stop()

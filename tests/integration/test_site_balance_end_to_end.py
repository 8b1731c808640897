"""The site balance and the running bill end to end: a utility meter that exports at noon
and a PV meter, both simulated on Modbus TCP, polled by `vatio run` on a simulated clock
(2 880× real time), and the site-level `metrics` message (`vatio/v1/{site}/_site/metrics`)
read from a real Mosquitto.

Tuesday 3 November 2026 (SIN winter, an ordinary weekday: intermedia 06:00–18:00), from
08:30 to 12:45 local. The plant draws 50 kW from 08:40 to 12:30; PV gives 70 kW from 10:00
to 12:30, so the grid meter imports 50 kW before 10:00 and exports 20 kW after, and the PV
meter (on the inverter's output, counting production on its export register) counts 70 kW:

* import 80 min × 50 kW = 66.67 kWh (all intermedia); export 2.5 h × 20 = 50 kWh;
* generation 2.5 h × 70 = 175 kWh; consumption 66.67 + 175 − 50 = 191.67 kWh (= 3 h 50 min
  × 50);
* self-consumption (175 − 50)/175 = 71.43 %; self-sufficiency 125/191.67 = 65.22 %;
* avoided 175 × 0.444 = 77.70 kgCO2e;
* the bill (net metering off: exports are not credited): energía intermedia 67 kWh (whole
  kWh) × 1.90 = 127.30; transmisión 67 × 0.10 = 6.70.

The month itself is checked line by line at the engine level (test_known_month.py); this run
checks that the same numbers travel the real path: Modbus registers → agent → MQTT. A poll
stamped a few real milliseconds away from the moment the simulator read its counters is
several simulated seconds off: across the 10:00 step that moves at most 70 kW × 12 s ≈ 0.25 kWh.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.by import By

from tests.helpers import wait_until
from tests.integration.test_status_page import chromium, open_page
from vatio.common.clock import SimulatedClock
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.brokers import free_port
from vatio.simulators.load_curve import DailyProfile
from vatio.simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter

pytestmark = pytest.mark.integration

TZ = ZoneInfo("America/Mexico_City")
SPEED = 2880.0
START = dt.datetime(2026, 11, 3, 8, 30, tzinfo=TZ)
CHECK = dt.datetime(2026, 11, 3, 12, 45, tzinfo=TZ)
# the plant starts at 08:40, well after the agent's first poll: no start-up race in the totals
# … and everything stops at 12:30, so the 12:45 message does not depend on when the last
# poll before it fell (a minute of 70 kW is 1.2 kWh)
GRID = DailyProfile(((0, 0.0), (8 + 40 / 60, 50.0), (10, -20.0), (12.5, 0.0)), pf=0.95)
PV = DailyProfile(((0, 0.0), (10, -70.0), (12.5, 0.0)), pf=1.0)
PRICES = """\
rows:
  - {month: 2026-11, division: test, energy_base: 1.10, energy_intermedia: 1.90,
     energy_punta: 2.20, transmission: 0.10, cenace: 0.01, scnmem: 0.005, fixed: 500,
     capacity: 350, distribution: 100, vat_pct: 16, source: "hand-made for this test"}
"""


async def test_the_site_message_carries_the_balance_and_the_bill(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    anchor = time.time() + 3.0
    clock = SimulatedClock(START.timestamp(), SPEED, anchor)
    sim = ModbusTcpSimulator(
        [
            SimulatedMeter(1, load_profile("eastron_sdm630"), clock=clock.now, load=GRID),
            SimulatedMeter(2, load_profile("eastron_sdm120"), clock=clock.now, load=PV),
        ]
    )
    port = await sim.start()
    (tmp_path / "prices.yaml").write_text(PRICES)
    http_port = free_port()
    cfg = tmp_path / "vatio.yaml"
    cfg.write_text(
        f"site: s\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\n"
        f"buses:\n  gw: {{type: modbus-tcp, host: 127.0.0.1, port: {port}}}\n"
        "devices:\n"
        "  red: {bus: gw, unit: 1, profile: eastron_sdm630, interval: 1m, role: grid}\n"
        "  fv: {bus: gw, unit: 2, profile: eastron_sdm120, interval: 1m, role: generation}\n"
        f"outputs:\n  mqtt: {{url: '{mosquitto.url}'}}\n"
        "metrics: {interval: 15m, timezone: America/Mexico_City, region: SIN}\n"
        "bill: {division: test, prices: prices.yaml}\n"
        f"http: {{listen: '127.0.0.1:{http_port}'}}\n"
    )
    env = {"VATIO_SIMULATED_TIME": f"{START.isoformat()},{SPEED},{anchor}"}
    try:
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg, env)

        def at_check() -> list[dict]:
            return [
                b
                for b in cap.on("/_site/metrics")
                if dt.datetime.fromisoformat(b["ts"]).timestamp() >= CHECK.timestamp()
            ]

        wait = 3.0 + (CHECK - START).total_seconds() / SPEED + 20
        msg = (await wait_until(at_check, wait, "the site message at 12:45"))[0]
        assert msg["device"] == "_site" and msg["site"] == "s"
        v = msg["values"]
        assert v["site_import_today_kwh"] == pytest.approx(200 / 3, abs=0.3)
        assert v["site_export_today_kwh"] == pytest.approx(50.0, abs=0.3)
        assert v["site_generation_today_kwh"] == pytest.approx(175.0, abs=0.3)
        assert v["site_consumption_today_kwh"] == pytest.approx(575 / 3, abs=0.5)
        assert v["site_self_consumption_today_pct"] == pytest.approx(125 / 175 * 100, abs=0.3)
        assert v["site_self_sufficiency_today_pct"] == pytest.approx(125 / (575 / 3) * 100, abs=0.3)
        assert v["site_avoided_today_kgco2e"] == pytest.approx(175 * 0.444, abs=0.2)
        assert v["bill_energy_intermedia_mxn"] == pytest.approx(127.30)
        assert v["bill_transmission_mxn"] == pytest.approx(6.70)
        assert v["bill_energy_base_mxn"] == 0 and v["bill_energy_punta_mxn"] == 0
        lines = {x["key"]: x for x in msg["bill"]["lines"]}
        assert lines["energy_intermedia"]["quantity"] == 67
        assert lines["energy_intermedia"]["label"] == "Energía intermedia"
        assert msg["bill"]["flags"] == []
        assert v["bill_projected_total_mxn"] > v["bill_total_mxn"]
        # the status page's data holds the same bill and balance
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/status", timeout=5) as r:
            page = json.load(r)
        assert page["site"] == "s"
        shown = page["site_metrics"]
        assert shown["bill"]["lines"][1]["key"] == "energy_intermedia"
        assert shown["values"]["site_export_today_kwh"] == pytest.approx(50.0, abs=0.3)
        # … and a real browser draws it as the paper bill's lines
        browser = chromium(tmp_path)
        try:
            await open_page(browser, f"http://127.0.0.1:{http_port}/")
            bill = browser.find_element(By.ID, "bill").text
            balance = browser.find_element(By.ID, "balance").text
        finally:
            browser.quit()
        assert "Energía intermedia 67 kWh 1.9 127.30" in bill, bill
        assert "site export month 50" in balance, balance
        assert agent.stop() == 0
    finally:
        await sim.stop()

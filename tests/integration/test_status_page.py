"""The technicians' status page, loaded in a real headless Chromium (Debian's chromium and
chromium-driver through Selenium): devices with their state and last values, recent events,
and charts of the last hour of power and PM2.5.

A meter on Modbus TCP and an SDS011 on a pty (`vatio simulate`) and the agent run on a
simulated clock at 240× real time, so the charts hold a whole hour after 15 s. A third device
points at a closed port and becomes `degraded`, which is the event the page must list.
The screenshot is saved to build/test-artifacts/status-page.png (and the test's temp dir).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.conftest import AgentProcess
from tests.helpers import wait_until
from vatio.simulators.brokers import free_port

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
SPEED = 240.0


def status(base: str) -> dict:
    with urllib.request.urlopen(base + "/api/status", timeout=5) as r:
        return json.load(r)


def chromium(tmp_path: Path, lang: str = "en-US"):
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.fail("chromium and chromedriver are not installed: run ./scripts/test as root")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1400",
        f"--user-data-dir={tmp_path / ('chromium-' + lang)}",
        f"--lang={lang}",
    ):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    # an explicit driver path: Selenium Manager (which would download one) is never asked
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


async def open_page(browser, url: str) -> None:
    """Load the page and wait for its first render from /api/status."""
    browser.get(url)
    await wait_until(
        lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"),
        20,
        "the page's first render",
    )


async def test_the_status_page_shows_devices_events_and_an_hour_of_charts(tmp_path, mosquitto):
    modbus_port, http_port, closed_port = free_port(), free_port(), free_port()
    devices = (
        "  tablero-principal: {bus: meters, unit: 1, profile: eastron_sdm630, interval: 1m}\n"
        "  pm-patio: {bus: pm, driver: sds011, mode: query, duty_cycle: false, interval: 1m}\n"
    )
    buses = (
        f"  meters: {{type: modbus-tcp, host: 127.0.0.1, port: {modbus_port}}}\n"
        f"  pm: {{type: serial, port: {tmp_path / 'ttyPM'}, baudrate: 9600}}\n"
    )
    head = f"site: planta-norte\nagent_id: gw-1\nstate_dir: {tmp_path / 'state'}\n"
    simulated = tmp_path / "simulated.yaml"  # what `vatio simulate` serves: not the closed port
    simulated.write_text(f"{head}buses:\n{buses}devices:\n{devices}")
    cfg = tmp_path / "vatio.yaml"
    cfg.write_text(
        f"{head}buses:\n{buses}"
        f"  gone: {{type: modbus-tcp, host: 127.0.0.1, port: {closed_port}}}\n"
        f"devices:\n{devices}"
        "  compresor: {bus: gone, unit: 2, profile: eastron_sdm120, interval: 1m}\n"
        f"outputs:\n  mqtt: {{url: '{mosquitto.url}', password: hunter2-secret}}\n"
        f"http: {{listen: '127.0.0.1:{http_port}'}}\n"
    )
    env = {"VATIO_SIMULATED_TIME": f"2026-11-23T09:00:00-06:00,{SPEED},{time.time() + 2}"}
    sim = AgentProcess(simulated, env, ("simulate",), tmp_path / "simulate.log")
    agent = None
    try:
        await wait_until(lambda: (tmp_path / "ttyPM").exists(), 20, "the simulated sensor's pty")
        # JSON logs here, so the degraded device's line can be checked for its fields too
        agent = AgentProcess(cfg, env, ("run", "--log-format", "json"))
        await _check_agent(tmp_path, agent, http_port)
    finally:
        if agent is not None:
            agent.stop()
        sim.stop()


async def _check_agent(tmp_path: Path, agent: AgentProcess, http_port: int) -> None:
    base = f"http://127.0.0.1:{http_port}"
    await wait_until(lambda: "status on http" in agent.output(), 20, "the status endpoint")

    def an_hour_charted() -> bool:
        s = status(base)["series"]
        power = s["active_power_w"].get("tablero-principal", [])
        pm = s["pm2_5_ugm3"].get("pm-patio", [])
        return len(power) >= 50 and len(pm) >= 50

    await wait_until(an_hour_charted, 60, "an hour of power and PM2.5 readings")
    api = status(base)
    states = {d["name"]: d["state"] for d in api["devices"]}
    assert states == {"tablero-principal": "online", "compresor": "degraded", "pm-patio": "online"}
    assert any(
        e["event"] == "device_degraded" and e["device"] == "compresor" for e in api["events"]
    )

    browser = chromium(tmp_path)
    try:
        await open_page(browser, base + "/")
        rows = browser.find_elements(By.CSS_SELECTOR, "#devices tr")
        text = {r.find_element(By.TAG_NAME, "strong").text: r.text for r in rows}
        assert set(text) == {"tablero-principal", "compresor", "pm-patio"}
        assert "online" in text["tablero-principal"]
        assert "active power" in text["tablero-principal"] and " kW" in text["tablero-principal"]
        # the state, and why: the reason names the bus's address ("cannot connect to bus
        # 'gone' (127.0.0.1:N)" or "bus 'gone' (127.0.0.1:N) is down; next reconnect …")
        assert "degraded" in text["compresor"]
        assert "(127.0.0.1:" in text["compresor"], text["compresor"]
        assert "PM2.5" in text["pm-patio"] and "µg/m³" in text["pm-patio"]
        events = browser.find_element(By.ID, "events").text
        assert "device_degraded" in events and "compresor" in events
        for chart, device in (("chart-power", "tablero-principal"), ("chart-pm", "pm-patio")):
            line = browser.find_element(
                By.CSS_SELECTOR, f"#{chart} polyline[data-device='{device}']"
            )
            points = line.get_attribute("points").split()
            assert len(points) >= 50, f"{chart}: {len(points)} points"
            xs = [float(p.split(",")[0]) for p in points]
            width = browser.execute_script(
                f"return document.getElementById('{chart}').viewBox.baseVal.width"
            )
            assert xs[-1] - xs[0] > 0.7 * width, f"{chart} spans less than most of the hour"
        page = browser.page_source
        assert "hunter2-secret" not in page
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = tmp_path / "status-page.png"
        assert browser.save_screenshot(str(shot))
        shutil.copy(shot, ARTIFACTS / "status-page.png")
        assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    finally:
        browser.quit()
    browser = chromium(tmp_path, "es-MX")  # a technician's browser set to Spanish
    try:
        await open_page(browser, base + "/")
        # the bill section stays hidden on a site with no grid meter
        headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2") if h.is_displayed()]
        assert headings == ["Equipos", "Potencia, última hora (kW)",
                            "PM2.5, última hora (µg/m³)", "Eventos recientes"]  # fmt: skip
    finally:
        browser.quit()
    assert agent.stop() == 0
    assert "hunter2-secret" not in agent.output()
    lines = agent.output().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    down = [r for r in records if r.get("device") == "compresor" and r.get("state") == "degraded"]
    assert len(down) == 1 and down[0]["level"] == "warning", down

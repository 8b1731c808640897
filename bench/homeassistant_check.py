"""Vatio against a real Home Assistant: discovery, values, availability, removal, Energy dashboard.

Not part of the test suite (Home Assistant is a large install). Run on demand::

    python3 -m venv /tmp/ha-venv
    /tmp/ha-venv/bin/pip download --no-deps homeassistant==2024.3.3 -d /tmp/ha-wheel
    unzip -p /tmp/ha-wheel/homeassistant-2024.3.3-*.whl homeassistant/package_constraints.txt \\
        | grep -v '^#' > /tmp/ha-constraints.txt       # HA's own pins: pip then resolves at once
    /tmp/ha-venv/bin/pip install -c /tmp/ha-constraints.txt homeassistant==2024.3.3 \\
        'josepy<2' paho-mqtt==1.6.1 SQLAlchemy==2.0.27 fnv-hash-fast==0.5.0 \\
        psutil-home-assistant==0.0.1 Pillow==10.2.0 janus==1.0.0 \\
        home-assistant-frontend==20240307.0 mutagen==1.47.0
    .venv/bin/python -m bench.homeassistant_check [--hass /tmp/ha-venv/bin/hass]

Home Assistant 2024.3.3 is the newest release that installs on Python 3.11; ``josepy<2`` or
every HTTP request answers 500 (stack-notes §8); the other packages are what the MQTT,
recorder, person and frontend integrations import (without the frontend HA starts in recovery
mode). The check starts, on free 127.0.0.1 ports in a temporary folder:

* Mosquitto; a Modbus/TCP simulator with an SDM630 grid meter (``role: grid``, importing
  30 kW), an SDM120 on a PV inverter's output (``role: generation``, exporting 3 kW) and an
  SDM120 sub-meter (``role: load``); a PMS5003 on a pty pair; ``vatio run`` with
  ``homeassistant: true``;
* Home Assistant with a fresh config folder: onboarding (owner user, token) and the MQTT
  integration through its config-flow API, as the web UI does.

Then it asserts, through ``/api/states`` and the websocket API: every announced entity exists
(enabled ones with the value Vatio published; disabled ones in the entity registry), devices
hang under the gateway (``via_device``) with manufacturer and model; the sub-meter made silent
turns ``unavailable`` (and back); the PMS5003 taken out of the config disappears after the
agent's restart (entities and device); and, with the Energy dashboard set to the grid
meter's counters, the generation meter and the sub-meter (``energy/save_prefs``),
``energy/validate`` reports no problem once the recorder compiled statistics (at the next
5-minute boundary). It prints versions, counts and timings; exit status 1 on a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from websockets.asyncio.client import connect

from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.brokers import MosquittoProcess, free_port
from vatio.simulators.load_curve import DailyProfile
from vatio.simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter
from vatio.simulators.serial_pair import SerialPair
from vatio.simulators.uart_sensors import Pms5003Sim

SITE, AGENT = "casa", "gw"
LACKS = "phase_angle_l1_deg"  # the register bomba's firmware does not have
CLIENT_ID = "http://127.0.0.1/"  # onboarding's OAuth client: any URL
T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f} s] {text}", flush=True)


class Failed(Exception):
    pass


def check(ok: object, what: str) -> None:
    if not ok:
        raise Failed(what)


# -- the broker side: what Vatio announced and published ----------------------------------


class Recorder:
    """Everything on ``homeassistant/#`` and ``vatio/#``, empty payloads included."""

    def __init__(self, port: int) -> None:
        self.configs: dict[str, dict[str, Any] | None] = {}  # topic → config (None: cleared)
        self.published: dict[str, list[dict[str, Any]]] = {}  # vatio topic → bodies
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ha-check-recorder")
        self.client.on_connect = lambda c, *a: c.subscribe([("homeassistant/#", 1), ("vatio/#", 1)])
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            if msg.topic.startswith("homeassistant/"):
                if not msg.topic.endswith("/config"):
                    return  # homeassistant/status: Home Assistant's own birth message
                self.configs[msg.topic] = json.loads(msg.payload) if msg.payload else None
            else:
                self.published.setdefault(msg.topic, []).append(json.loads(msg.payload))

    def announced(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {t: c for t, c in self.configs.items() if c is not None}

    def values(self, state_topic: str, key: str) -> list[Any]:
        with self._lock:
            return [b.get("values", {}).get(key) for b in self.published.get(state_topic, [])]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# -- Home Assistant's side -----------------------------------------------------------------


class HomeAssistantProcess:
    def __init__(self, hass: str, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.token = ""
        self.refresh_token = ""
        folder.mkdir(parents=True)
        (folder / "configuration.yaml").write_text(
            "homeassistant:\n  name: Vatio check\n  latitude: 19.43\n  longitude: -99.13\n"
            "  elevation: 2240\n  unit_system: metric\n  time_zone: America/Mexico_City\n"
            "  currency: MXN\n  country: MX\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n"
            "api:\nwebsocket_api:\nonboarding:\nconfig:\nenergy:\n"
            "recorder:\n  commit_interval: 1\nlogger:\n  default: warning\n"
        )
        self.log = (folder / "hass.log").open("w")
        self.proc = subprocess.Popen(
            [hass, "-c", str(folder), "--skip-pip"], stdout=self.log, stderr=subprocess.STDOUT
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def http(self, method: str, path: str, body: Any = None, form: bool = False) -> Any:
        data = None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data, headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    async def ahttp(self, method: str, path: str, body: Any = None, form: bool = False) -> Any:
        return await asyncio.to_thread(self.http, method, path, body, form)

    async def started(self, timeout: float = 120) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            check(self.proc.poll() is None, f"Home Assistant exited: see {self.folder}/hass.log")
            try:
                await self.ahttp("GET", "/api/onboarding")
                return time.monotonic() - start
            except (urllib.error.URLError, ConnectionError):
                await asyncio.sleep(0.5)
        raise Failed(f"Home Assistant did not answer within {timeout:.0f} s")

    async def onboard(self) -> None:
        user = await self.ahttp(
            "POST", "/api/onboarding/users",
            {"client_id": CLIENT_ID, "name": "Vatio", "username": "vatio",
             "password": "vatio-check-1234", "language": "en"},
        )  # fmt: skip
        token = await self.ahttp(
            "POST", "/auth/token",
            {"grant_type": "authorization_code", "code": user["auth_code"],
             "client_id": CLIENT_ID},
            form=True,
        )  # fmt: skip
        self.token = token["access_token"]
        self.refresh_token = token.get("refresh_token", "")
        # the other steps, or the frontend shows onboarding instead of the Energy dashboard;
        # core_config also sets up Met and Google Translate, whose packages are not
        # installed here: it answers 500 but is marked done, which is what counts
        with contextlib.suppress(urllib.error.HTTPError):
            await self.ahttp("POST", "/api/onboarding/core_config", {})
        await self.ahttp("POST", "/api/onboarding/analytics", {})
        back = f"{CLIENT_ID}?auth_callback=1"
        await self.ahttp(
            "POST", "/api/onboarding/integration", {"client_id": CLIENT_ID, "redirect_uri": back}
        )
        steps = await self.ahttp("GET", "/api/onboarding")
        check(all(s["done"] for s in steps), f"onboarding not done: {steps}")

    async def add_mqtt(self, broker_port: int) -> None:
        flow = await self.ahttp("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        check(flow.get("type") == "form", f"MQTT flow: {flow}")
        done = await self.ahttp(
            "POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
            {"broker": "127.0.0.1", "port": broker_port},
        )  # fmt: skip
        check(done.get("type") == "create_entry", f"MQTT flow did not create an entry: {done}")

    async def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in await self.ahttp("GET", "/api/states")}

    async def ws(self, *commands: dict[str, Any]) -> list[Any]:
        """Run websocket commands in order; their results."""
        async with connect(f"ws://127.0.0.1:{self.port}/api/websocket", max_size=2**24) as ws:
            json.loads(await ws.recv())  # auth_required
            await ws.send(json.dumps({"type": "auth", "access_token": self.token}))
            check(json.loads(await ws.recv())["type"] == "auth_ok", "websocket auth")
            out = []
            for n, cmd in enumerate(commands, 1):
                await ws.send(json.dumps({"id": n, **cmd}))
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("id") == n and msg.get("type") == "result":
                        break
                check(msg["success"], f"websocket {cmd['type']}: {msg.get('error')}")
                out.append(msg["result"])
            return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# -- the agent ------------------------------------------------------------------------------


def agent_config(folder: Path, modbus: int, serial: str, broker: int, with_air: bool) -> Path:
    air = "  aire: {bus: aire, driver: pms5003, interval: 1s}\n" if with_air else ""
    path = folder / "vatio.yaml"
    path.write_text(
        f"site: {SITE}\nagent_id: {AGENT}\nstate_dir: {folder / 'state'}\n"
        f"buses:\n  tablero: {{type: modbus-tcp, host: 127.0.0.1, port: {modbus}}}\n"
        f"  aire: {{type: serial, port: {serial}}}\n"
        "devices:\n"
        "  red: {bus: tablero, unit: 1, profile: eastron_sdm630, interval: 1s, role: grid}\n"
        "  solar: {bus: tablero, unit: 2, profile: eastron_sdm120, interval: 1s,"
        " role: generation}\n"
        "  bomba: {bus: tablero, unit: 3, profile: eastron_sdm120, interval: 1s, role: load}\n"
        f"{air}"
        "metrics: {interval: 5s}\ntime: {require_sync: false}\n"
        "bill: {division: valle-de-mexico-centro}\n"  # the shipped (example) price table
        f"outputs:\n  mqtt: {{url: 'mqtt://127.0.0.1:{broker}', homeassistant: true}}\n"
    )
    return path


def start_agent(config: Path, lang: str) -> subprocess.Popen[bytes]:
    log = config.with_suffix(".log").open("a")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    return subprocess.Popen(
        [sys.executable, "-m", "vatio.agent.cli", "run", "-c", str(config)],
        stdout=log, stderr=subprocess.STDOUT,
        env={**env, "PYTHONUNBUFFERED": "1", "LANG": lang},
    )  # fmt: skip


def stop_agent(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(20)


# -- the checks -----------------------------------------------------------------------------


async def until(what: str, condition: Any, timeout: float, every: float = 1.0) -> Any:
    """Await ``condition()`` (a coroutine function) until truthy; its last falsy answer in
    the failure message."""
    start = time.monotonic()
    last: Any = None
    while time.monotonic() - start < timeout:
        last = await condition()
        if last[0] if isinstance(last, tuple) else last:
            return last
        await asyncio.sleep(every)
    raise Failed(f"{what}: not within {timeout:.0f} s (last: {str(last)[:1500]})")


def same(state: str, published: list[Any]) -> bool:
    """The entity's state is one of the values Vatio published (or unknown for a null)."""
    if state == "unknown":
        return None in published[-3:]
    try:
        x = float(state)
    except ValueError:
        return False
    return any(v is not None and math.isclose(x, float(v), rel_tol=1e-9, abs_tol=1e-9)
               for v in published)  # fmt: skip


async def entities_match(ha: HomeAssistantProcess, rec: Recorder) -> tuple[bool, list[str]]:
    """Every announced config is an entity; enabled ones show a published value."""
    (registry,) = await ha.ws({"type": "config/entity_registry/list"})
    by_uid = {e["unique_id"]: e for e in registry if e["platform"] == "mqtt"}
    states = await ha.states()
    problems = []
    for t, c in rec.announced().items():
        entry = by_uid.get(c["unique_id"])
        if entry is None:
            problems.append(f"no entity for {t}")
            continue
        if c.get("enabled_by_default", True) is False:
            if entry.get("disabled_by") != "integration":
                problems.append(f"{entry['entity_id']} should be disabled by default")
            continue
        state = states.get(entry["entity_id"])
        if state is None:
            problems.append(f"{entry['entity_id']}: no state")
        elif t.split("/")[1] == "sensor" and "values" in c["value_template"]:
            key = c["unique_id"].removeprefix(t.split("/")[2] + "_")
            published = rec.values(c["state_topic"], key)
            if state["state"] == "unavailable" and published and published[-1] is None:
                continue  # a value the device does not give: unavailable, as it should be
            if not same(state["state"], published):
                problems.append(f"{entry['entity_id']}={state['state']} not published")
        elif t.endswith("/connectivity/config") and state["state"] != "on":
            problems.append(f"{entry['entity_id']}={state['state']}")
    return not problems, problems


async def main(hass: str, keep: bool, lang: str, screenshot: Path | None = None) -> int:
    folder = Path(tempfile.mkdtemp(prefix="vatio-ha-check-"))
    version = subprocess.run(
        [hass, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    say(f"Home Assistant {version} ({hass}); agent LANG={lang}; work folder {folder}")
    broker = MosquittoProcess().start()
    meters = [
        SimulatedMeter(1, load_profile("eastron_sdm630"), load=DailyProfile(((0, 30.0),))),
        SimulatedMeter(2, load_profile("eastron_sdm120"), load=DailyProfile(((0, -3.0),), 1.0)),
        # a sub-meter whose firmware lacks one register: degraded, but it answers
        SimulatedMeter(3, load_profile("eastron_sdm120"), seed=3, strict=True, lacks=(LACKS,)),
    ]
    sim = ModbusTcpSimulator(meters)
    modbus = await sim.start()
    pair = SerialPair(folder, "pms").start()
    pms = Pms5003Sim(pair.a)
    await pms.start()
    rec = Recorder(broker.port)
    ha = HomeAssistantProcess(hass, folder / "ha")
    agent: subprocess.Popen[bytes] | None = None
    failed: str | None = None
    try:
        cfg = agent_config(folder, modbus, pair.b, broker.port, with_air=True)
        agent = start_agent(cfg, lang)
        took = await ha.started()
        say(f"Home Assistant answers after {took:.1f} s")
        await ha.onboard()
        await ha.add_mqtt(broker.port)
        say("onboarded (owner user, token); MQTT integration added through the config flow")

        # 1. every announced quantity is an entity with the published value
        await until("the agent's metrics announced", lambda: _has_metrics(rec), 60)
        await until("entities with Vatio's values", lambda: entities_match(ha, rec), 90)
        announced = rec.announced()
        kinds: dict[str, int] = {}
        for c in announced.values():
            stream = c["state_topic"].rsplit("/", 1)[1]
            key = stream if c.get("enabled_by_default", True) else f"{stream} (disabled)"
            kinds[key] = kinds.get(key, 0) + 1
        say(f"{len(announced)} configs announced, all entities with published values: {kinds}")

        # 2. devices under the gateway, with manufacturer and model
        (devices,) = await ha.ws({"type": "config/device_registry/list"})
        by_ident = {tuple(d["identifiers"][0]): d for d in devices if d["identifiers"]}
        gateway = by_ident[("mqtt", f"vatio_{SITE}_{AGENT}")]
        expected = [("red", "Eastron", "SDM630"), ("solar", "Eastron", "SDM120"),
                    ("aire", "Plantower", "PMS5003"), ("_site", "Vatio", None)]  # fmt: skip
        for name, maker, model in expected:
            d = by_ident[("mqtt", f"vatio_{SITE}_{name}")]
            check(d["via_device_id"] == gateway["id"], f"{name} is not under the gateway: {d}")
            check(d["manufacturer"] == maker, f"{name}: manufacturer {d['manufacturer']}")
            check(model is None or d["model"] == model, f"{name}: model {d['model']}")
        states = await ha.states()
        shown = ("red_energy_import_kwh", "solar_energy_export_kwh", "red_voltage_l1_v",
                 "aire_pm2_5_ugm3", "red_energy_today_kwh", "site_bill_total_mxn")  # fmt: skip
        sample = {
            e: states[f"sensor.vatio_{SITE}_{e}"]["attributes"].get("friendly_name") for e in shown
        }
        say(f"{len(devices)} devices, all under the gateway, makers and models right; "
            f"names: {sample}")  # fmt: skip

        # 3. the Energy dashboard: grid, solar, one device
        red, solar, bomba_kwh = (
            f"sensor.vatio_{SITE}_{n}"
            for n in ("red_energy_import_kwh", "solar_energy_export_kwh", "bomba_energy_import_kwh")
        )
        prefs = {
            "energy_sources": [
                {"type": "grid", "cost_adjustment_day": 0,
                 "flow_from": [{"stat_energy_from": red,
                                "stat_cost": None, "entity_energy_price": None,
                                "number_energy_price": None}],
                 "flow_to": [{"stat_energy_to": red.replace("import", "export"),
                              "stat_compensation": None, "entity_energy_price": None,
                              "number_energy_price": None}]},
                {"type": "solar", "stat_energy_from": solar,
                 "config_entry_solar_forecast": None},
            ],
            "device_consumption": [{"stat_consumption": bomba_kwh}],
        }  # fmt: skip
        await ha.ws({"type": "energy/save_prefs", **prefs})
        say("Energy dashboard set: grid from/to 'red', solar 'solar', device 'bomba'")

        # 4. a meter that refuses one register: that value unavailable, the rest shown
        bomba = [e for e in states if e.startswith(f"sensor.vatio_{SITE}_bomba_")]
        lacking = f"sensor.vatio_{SITE}_bomba_{LACKS}"

        async def partial() -> tuple[bool, list[str]]:
            now = await ha.states()
            wrong = [e for e in bomba if (now[e]["state"] == "unavailable") != (e == lacking)]
            return not wrong, [f"{e}={now[e]['state']}" for e in wrong]

        await until("only bomba's lacking value unavailable", partial, 60)
        status = rec.published[f"vatio/v1/{SITE}/bomba/status"][-1]
        check(status["state"] == "degraded" and status["answering"] is True, f"{status}")
        shown = [e for e in bomba if e != lacking]
        say(f"bomba refuses {LACKS}: status degraded and answering; {lacking} unavailable, "
            f"its other {len(shown)} sensors show values")  # fmt: skip

        # 5. a silent meter is unavailable, and comes back
        meters[2].faults.timeout = 1.0
        t = time.monotonic()
        await until(
            "bomba's entities unavailable", lambda: _all_state(ha, bomba, "unavailable"), 60
        )
        problem = (await ha.states())[f"binary_sensor.vatio_{SITE}_bomba_problem"]
        check(problem["state"] == "on", f"bomba's problem sensor: {problem}")
        say(f"bomba silent: its {len(bomba)} sensors unavailable after {time.monotonic() - t:.1f} s"
            f" (problem sensor on: {problem['attributes'].get('reason', '')[:60]}…)")  # fmt: skip
        meters[2].faults.timeout = 0.0
        t = time.monotonic()
        others = [e for e in bomba if e != lacking]
        await until("bomba back", lambda: _none_state(ha, others, "unavailable"), 120)
        say(f"bomba answers again: available after {time.monotonic() - t:.1f} s")

        # 6. a device taken out of the config disappears
        stop_agent(agent)
        air_uids = {c["unique_id"] for c in rec.announced().values()
                    if c["unique_id"].startswith(f"vatio_{SITE}_aire_")}  # fmt: skip
        agent = start_agent(agent_config(folder, modbus, pair.b, broker.port, False), lang)
        t = time.monotonic()
        await until("aire gone", lambda: _gone(ha, air_uids), 60)
        say(
            f"aire removed from the config: its {len(air_uids)} entities and its device gone "
            f"{time.monotonic() - t:.1f} s after the agent's restart"
        )
        await until("the rest still right", lambda: entities_match(ha, rec), 60)

        # 7. the Energy dashboard's validation, once statistics exist (5-minute compile)
        t = time.monotonic()
        result = await until("energy/validate clean", lambda: _validate(ha), 420, every=10)
        say(
            f"energy/validate: no issue for grid, solar and device ({result[1]}), "
            f"{time.monotonic() - t:.0f} s after the first try"
        )
        log = cfg.with_suffix(".log").read_text()
        check("Traceback" not in log, "the agent logged a traceback")
        hass_log = (folder / "ha" / "hass.log").read_text()
        words = ("mqtt", "vatio", "value_json", "sensor")
        ours = [
            ln
            for ln in hass_log.splitlines()
            if ("ERROR" in ln or "WARNING" in ln) and any(w in ln.lower() for w in words)
        ]
        for ln in ours[:10]:
            print("   ", ln[:300])
        check(not ours, f"{len(ours)} warnings/errors about MQTT or the sensors in hass.log")
        say("Home Assistant's log: no warning or error about MQTT, templates or the sensors")
        if screenshot is not None:
            await take_screenshot(ha, red, screenshot, folder)
    except Failed as exc:
        failed = str(exc)
    finally:
        if agent is not None and agent.poll() is None:
            stop_agent(agent)
        ha.stop()
        rec.close()
        await pms.stop()
        pair.stop()
        await sim.stop()
        broker.stop()
    if failed:
        say(f"FAILED: {failed} (logs in {folder})")
        return 1
    say(f"PASSED in {time.monotonic() - T0:.0f} s")
    if not keep:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    return 0


async def take_screenshot(ha: HomeAssistantProcess, stat: str, path: Path, folder: Path) -> None:
    """The Energy dashboard in headless Chromium, once an hour of statistics exists."""
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) - timedelta(hours=2)).isoformat()

    async def hourly() -> bool:
        (stats,) = await ha.ws({"type": "recorder/statistics_during_period", "period": "hour",
                                "start_time": start, "statistic_ids": [stat]})  # fmt: skip
        return bool(stats.get(stat))

    say("waiting for the hourly statistics the Energy dashboard draws")
    await until("hourly statistics", hourly, 3900, every=20)
    await asyncio.to_thread(_browse, ha, path, folder)
    say(f"Energy dashboard: {path}")


def _browse(ha: HomeAssistantProcess, path: Path, folder: Path) -> None:
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1100", f"--user-data-dir={folder / 'chromium'}"):  # fmt: skip
        options.add_argument(arg)
    driver = shutil.which("chromedriver") or "chromedriver"
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        browser.get(ha.url + "/")
        tokens = {"access_token": ha.token, "token_type": "Bearer", "expires_in": 1800,
                  "hassUrl": ha.url, "clientId": CLIENT_ID, "refresh_token": ha.refresh_token,
                  "expires": int(time.time() * 1000) + 1_800_000}  # fmt: skip
        browser.execute_script("localStorage.setItem('hassTokens', arguments[0])",
                               json.dumps(tokens))  # fmt: skip
        browser.get(ha.url + "/energy")
        time.sleep(20)  # the frontend loads its statistics and draws
        browser.save_screenshot(str(path))
    finally:
        browser.quit()


async def _has_metrics(rec: Recorder) -> bool:
    cfgs = rec.announced().values()
    return {"red", "aire", "_site"} <= {
        c["state_topic"].split("/")[3] for c in cfgs if c["state_topic"].endswith("/metrics")
    }


async def _all_state(ha: HomeAssistantProcess, ids: list[str], value: str) -> bool:
    states = await ha.states()
    return all(states[e]["state"] == value for e in ids)


async def _none_state(ha: HomeAssistantProcess, ids: list[str], value: str) -> bool:
    states = await ha.states()
    return all(states[e]["state"] != value for e in ids)


async def _gone(ha: HomeAssistantProcess, uids: set[str]) -> bool:
    registry, devices = await ha.ws(
        {"type": "config/entity_registry/list"}, {"type": "config/device_registry/list"}
    )
    left = [e for e in registry if e["unique_id"] in uids]
    device = [d for d in devices if ["mqtt", f"vatio_{SITE}_aire"] in d["identifiers"]]
    return not left and not device


async def _validate(ha: HomeAssistantProcess) -> tuple[bool, str]:
    (result,) = await ha.ws({"type": "energy/validate"})
    issues = [i for group in result["energy_sources"] + result["device_consumption"]
              for i in group]  # fmt: skip
    return not issues, json.dumps(issues) if issues else f"{len(result['energy_sources'])} sources"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hass", default="/tmp/ha-venv/bin/hass")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--lang", default="C.UTF-8", help="the agent's LANG (es_MX.UTF-8: Spanish)")
    parser.add_argument(
        "--screenshot", type=Path, help="PNG of the Energy dashboard (waits for the next hour's "
        "statistics: Home Assistant compiles them after each full hour)",
    )  # fmt: skip
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.hass, args.keep, args.lang, args.screenshot)))

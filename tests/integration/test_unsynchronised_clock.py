"""`vatio run` on a gateway whose clock is not synchronised yet: it booted 3 days behind
(the test override of common/timesync.py makes the agent's clock read 3 days off and the
sync state "no"), then NTP answers (the test rewrites the override file: synchronised, no
offset, so the agent's clock steps +3 days).

Checked at the real broker and on the real HTTP endpoint: every telemetry message taken
before the sync carries the flag and none after; no metrics message is published under the
wrong date; the status and /healthz say so past the grace and stop saying it after; the
energy the metrics report equals the meter's counter difference (held readings included);
and no day is closed under the boot clock's date.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import wait_until
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.brokers import free_port
from vatio.simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter

pytestmark = pytest.mark.integration

STEP = 3 * 86400


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def epoch(body: dict) -> float:
    return dt.datetime.fromisoformat(body["ts"]).timestamp()


async def test_readings_before_sync_are_flagged_and_metrics_wait_for_the_true_time(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    meter = SimulatedMeter(1, load_profile("eastron_sdm630"), rated_kw=60.0)
    sim = ModbusTcpSimulator([meter])
    port = await sim.start()
    http = free_port()
    base = f"http://127.0.0.1:{http}"
    sync = tmp_path / "timesync"
    sync.write_text(f"no offset=-{STEP}\n")
    cfg = tmp_path / "vatio.yaml"
    cfg.write_text(
        f"site: s\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\n"
        f"buses:\n  b: {{type: modbus-tcp, host: 127.0.0.1, port: {port}}}\n"
        "devices:\n  m1: {bus: b, unit: 1, profile: eastron_sdm630, interval: 500ms}\n"
        f"outputs:\n  mqtt: {{url: '{mosquitto.url}'}}\n"
        "metrics: {interval: 1s}\n"
        f"http: {{listen: '127.0.0.1:{http}'}}\n"
        "time: {unsynced_grace: 1s}\n"
    )
    try:
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(cfg, {"VATIO_TIME_SYNC": str(sync)})
        await wait_until(lambda: len(cap.on("/m1/telemetry")) >= 4, 20, "telemetry")
        before = cap.on("/m1/telemetry")
        assert all(b["quality"]["_clock"] == "unsynchronised" for b in before)
        assert all(abs(epoch(b) - (time.time() - STEP)) < 60 for b in before)  # the boot clock
        # past the grace: /healthz is 503 with the reason, the retained status says it too
        await wait_until(lambda: get(base + "/healthz")[0] == 503, 10, "an unhealthy /healthz")
        code, health = get(base + "/healthz")
        assert code == 503
        assert any("clock not synchronised" in p for p in health["problems"])
        assert health["clock"]["trusted"] is False and health["clock"]["source"] == "override"
        await wait_until(
            lambda: [b for b in cap.on("/gw/status") if b.get("clock", {}).get("trusted") is False],
            10,
            "a status saying the clock is not trusted",
        )
        assert cap.on("/m1/metrics") == []  # metrics wait: nothing under the boot clock's day
        held = len(cap.on("/m1/telemetry"))

        sync.write_text("yes\n")  # NTP answers: the clock steps +3 days
        stepped = time.time()

        def fresh_metrics() -> list[dict]:
            return [b for b in cap.on("/m1/metrics") if epoch(b) > stepped + 1.5]

        await wait_until(lambda: len(fresh_metrics()) >= 3, 15, "metrics after the sync")
        await wait_until(lambda: get(base + "/healthz")[0] == 200, 10, "a healthy /healthz")
        assert get(base + "/healthz")[1]["clock"]["trusted"] is True
        await wait_until(
            lambda: cap.on("/gw/status")[-1].get("clock", {}).get("trusted") is True,
            10,
            "a status saying the clock is trusted again",
        )
        assert agent.stop() == 0

        telemetry = sorted(cap.on("/m1/telemetry"), key=lambda b: b["seq"])
        flagged = [b for b in telemetry if "_clock" in b.get("quality", {})]
        clean = [b for b in telemetry if "_clock" not in b.get("quality", {})]
        # the flag is on every reading of the boot clock and on none after the step
        assert len(flagged) >= held and clean and flagged[-1]["seq"] < clean[0]["seq"]
        assert all(epoch(b) < stepped - STEP + 60 for b in flagged)
        assert all(abs(epoch(b) - time.time()) < 120 for b in clean)
        # no metrics message was ever stamped by the boot clock
        metrics = cap.on("/m1/metrics")
        assert metrics and all(abs(epoch(b) - time.time()) < 120 for b in metrics)
        # energy is the counter's difference, the held readings included (counted exactly:
        # the readings a metrics message covers are those taken before it was published)
        counters = [(epoch(b), b["values"]["energy_import_kwh"]) for b in telemetry]
        first = counters[0][1]
        checked = 0
        for m in metrics:
            v = m["values"]
            got = v["energy_today_kwh"] + (v.get("energy_yesterday_kwh") or 0.0)
            covered = [kwh for t, kwh in counters if t <= epoch(m)]
            sure = [kwh for t, kwh in counters if t <= epoch(m) - 1.0]
            low = (sure[-1] if sure else first) - first
            assert low - 0.005 <= got <= covered[-1] - first + 0.005, (got, low, covered[-1])
            checked += 1
        assert checked == len(metrics)
        print(
            f"telemetry: {len(flagged)} flagged (boot clock), {len(clean)} clean; metrics "
            f"messages checked against the counter: {checked}, wrong-day ones: 0; energy "
            f"{metrics[-1]['values']['energy_today_kwh']:.4f} kWh attributed"
        )
        assert metrics[0]["values"]["energy_today_kwh"] > 0  # the held hour's energy arrived
        # nothing closed under the boot clock's date
        out = subprocess.run(
            [sys.executable, "-m", "vatio.agent.cli", "history", "-c", str(cfg), "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        days = [json.loads(line)["day"] for line in out.stdout.splitlines()]
        boot_day = dt.date.fromtimestamp(stepped - STEP).isoformat()
        assert boot_day not in days and len(days) <= 1, days
    finally:
        await sim.stop()

"""The example configs run as shipped: `vatio simulate` impersonates every device (TCP,
RS-485 over a pty, UART sensors) and `vatio run` delivers telemetry for all of them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import wait_until
from vatio.agent.config import load_config
from vatio.simulators.brokers import free_port
from vatio.simulators.serial_pair import SerialPair

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs"


def localise(name: str, tmp_path: Path, mqtt_url: str) -> Path:
    """The example with its ports, paths and broker moved into this test's sandbox."""
    text = (CONFIGS / name).read_text()
    text = text.replace("/tmp/", f"{tmp_path}/")
    text = re.sub(r"port: 50\d\d", lambda m: f"port: {free_port()}", text)
    text = text.replace("mqtt://127.0.0.1:1883", mqtt_url).replace("./state", str(tmp_path))
    # keep the duty-cycled SDS011 quick
    text = text.replace("warmup: 30s", "warmup: 1s").replace("interval: 2m", "interval: 5s")
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["example.yaml", "city.yaml", "factory-rs485.yaml"])
async def test_example_config_simulated_end_to_end(
    name, tmp_path, mosquitto, capture_factory, agent_factory
):
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")
    cfg = localise(name, tmp_path, mosquitto.url)
    loaded = load_config(cfg)
    devices = list(loaded.entries)
    assert len(devices) >= 4
    sim = subprocess.Popen(
        [sys.executable, "-m", "vatio.agent.cli", "simulate", "-c", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        cap = capture_factory(mosquitto.port)
        ports = [b.port for b in loaded.config.buses.values() if b.type in ("serial", "modbus-rtu")]
        await wait_until(lambda: all(Path(p).exists() for p in ports), 20, "the pty pairs")
        agent_factory(cfg)

        def answered(d: str) -> bool:
            return any(None not in b["values"].values() for b in cap.on(f"/{d}/telemetry"))

        await wait_until(lambda: all(answered(d) for d in devices), 60, f"telemetry from {devices}")
    finally:
        sim.terminate()
        out = sim.communicate(timeout=20)[0]
    assert "Traceback" not in out, out

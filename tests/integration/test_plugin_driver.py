"""A third-party driver package, installed from tests/fixtures, loaded by the agent from config.

The package registers ``thermo-line`` in the ``vatio.drivers`` entry-point group, exactly as
the built-in ``modbus`` driver does; the agent finds it with no change to Vatio. Its sensor
is simulated on the far end of a pty pair (real serial bytes).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import serial_asyncio_fast

from tests.helpers import wait_until
from vatio.simulators.serial_pair import SerialPair

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "vatio_demo_driver"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The fixture package installed into its own folder (added to PYTHONPATH below)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(FIXTURE),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def config(tmp_path: Path, port: str, mqtt_url: str, driver: str = "thermo-line") -> Path:
    path = tmp_path / "vatio.yaml"
    path.write_text(
        f"site: lab\nagent_id: gw\nstate_dir: {tmp_path / 'state'}\n"
        f"buses:\n  uart: {{type: serial, port: {port}, baudrate: 9600}}\n"
        f"devices:\n  th: {{bus: uart, driver: {driver}, channel: 2, interval: 500ms}}\n"
        f"outputs:\n  mqtt: {{url: '{mqtt_url}'}}\n"
    )
    return path


def env_with(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_check_lists_the_plugin_and_rejects_an_unknown_one(tmp_path, plugin_site):
    cfg = config(tmp_path, "/dev/null", "mqtt://127.0.0.1:1883")
    res = subprocess.run(
        [sys.executable, "-m", "vatio.agent.cli", "check", "-c", str(cfg)],
        capture_output=True,
        text=True,
        env=env_with(plugin_site),
    )
    assert res.returncode == 0, res.stderr
    assert "th: every 0.5 s, driver thermo-line on 'uart'" in res.stdout
    res = subprocess.run(
        [sys.executable, "-m", "vatio.agent.cli", "check", "-c", str(cfg)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert "devices.th.driver: unknown driver 'thermo-line'" in res.stderr
    assert "Traceback" not in res.stderr


async def test_agent_loads_the_third_party_driver(
    tmp_path, plugin_site, mosquitto, capture_factory
):
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")
    with SerialPair(tmp_path) as pair:
        reader, writer = await serial_asyncio_fast.open_serial_connection(url=pair.a)
        requests: list[bytes] = []

        async def sensor() -> None:
            while line := await reader.readline():
                requests.append(line)
                writer.write(b"T=21.5 H=40.0\n")

        task = asyncio.create_task(sensor())
        cap = capture_factory(mosquitto.port)
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vatio.agent.cli",
                "run",
                "-c",
                str(config(tmp_path, pair.b, mosquitto.url)),
            ],
            env=env_with(plugin_site),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            await wait_until(lambda: len(cap.on("/th/telemetry")) >= 3, 20, "sensor readings")
            body = cap.on("/th/telemetry")[-1]
            assert body["values"] == {"temperature_c": 21.5, "humidity_pct": 40.0}
            assert requests[0] == b"READ 2\n"  # the option from the YAML reached the driver
        finally:
            agent.terminate()
            out = agent.communicate(timeout=15)[0].decode()
            task.cancel()
            writer.close()
        assert "Traceback" not in out

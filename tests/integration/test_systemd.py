"""The shipped systemd units: `systemd-analyze verify` with --recursive-errors=yes (plain
verify exits 0 on unknown keys), their `systemd-analyze security` exposure (goal ≤ 2.5), and
the notify protocol as the agent speaks it: READY, WATCHDOG keepalives, STOPPING."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.test_delivery import DEVICES, start_meters
from vatio.simulators.configs import loopback_config

pytestmark = pytest.mark.integration

UNITS = Path(__file__).resolve().parent.parent.parent / "systemd"
VATIO = Path(sys.executable).parent / "vatio"  # the installed console script


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd (./scripts/test does)")
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60)


def local_copy(name: str, tmp_path: Path, edit: str = "") -> Path:
    """The unit with ExecStart pointing at this checkout's vatio (verify wants it to exist)."""
    text = (UNITS / name).read_text().replace("/opt/vatio/bin/vatio", str(VATIO))
    if edit:
        text = text.replace("[Service]\n", f"[Service]\n{edit}\n")
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "name", ["vatio-agent.service", "vatio-ingest.service", "vatio-ingest@.service"]
)
def test_the_unit_verifies_and_is_hardened(name, tmp_path):
    unit = local_copy(name, tmp_path)
    verify = analyze("verify", "--recursive-errors=yes", str(unit))
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    security = analyze("security", "--offline=yes", str(unit))
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert found, security.stdout[-500:]
    exposure = float(found.group(1))
    print(f"{name}: systemd-analyze security exposure {exposure}")
    assert exposure <= 2.5


def test_a_unit_edited_wrongly_is_caught(tmp_path):
    unit = local_copy("vatio-agent.service", tmp_path, edit="ProtectSytem=strict")
    verify = analyze("verify", "--recursive-errors=yes", str(unit))
    assert verify.returncode != 0 and "ProtectSytem" in verify.stderr


async def test_the_agent_says_ready_feeds_the_watchdog_and_says_stopping(
    tmp_path, mosquitto, agent_factory
):
    sim, port = await start_meters()
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    got: list[str] = []

    def drain() -> list[str]:
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except BlockingIOError:
                return got

    try:
        cfg = tmp_path / "vatio.yaml"
        cfg.write_text(
            loopback_config("s", "gw", tmp_path / "state", {"b": port}, DEVICES, mosquitto.url)
        )
        agent = agent_factory(cfg, {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
        await wait_until(lambda: sum("WATCHDOG=1" in m for m in drain()) >= 3, 20, "keepalives")
        assert got[0].startswith("READY=1")
        assert any("STATUS=" in m and "polls" in m for m in got)
        assert agent.stop() == 0
        await asyncio.sleep(0.2)
        assert any(m.startswith("STOPPING=1") for m in drain())
    finally:
        sock.close()
        await sim.stop()

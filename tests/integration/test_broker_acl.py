"""The shipped Mosquitto config and ACL (configs/mosquitto/) on a real Mosquitto: an agent
logs in with its own credentials and may publish only under its own site. A refused message
is logged once with what to fix, and stays in the agent's spool; bad credentials say so."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.test_delivery import start_meters
from vatio.simulators.brokers import MosquittoProcess
from vatio.simulators.configs import loopback_config

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs" / "mosquitto"
DEVICES = [("m1", "b", 1, "eastron_sdm120", "500ms")]


def shipped_broker(tmp_path: Path) -> MosquittoProcess:
    passwd = tmp_path / "vatio.passwd"
    for i, (user, password) in enumerate(
        [("gw-planta-norte-01", "norte-secret"), ("operator", "op-secret")]
    ):
        create = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", *create, "-b", str(passwd), user, password], check=True)
    conf = (CONFIGS / "vatio.conf").read_text()
    conf = conf.replace("listener 1883\n", "listener {port} 127.0.0.1\n")
    conf = conf.replace("/var/lib/mosquitto/", "{dir}/")
    conf = conf.replace("/etc/mosquitto/vatio.passwd", str(passwd))
    conf = conf.replace("/etc/mosquitto/vatio.acl", str(CONFIGS / "vatio.acl"))
    return MosquittoProcess(config=conf)


def agent_yaml(tmp_path: Path, site: str, port: int, url: str, password: str) -> Path:
    path = tmp_path / f"{site}-{password}.yaml"
    path.write_text(
        loopback_config(
            site, "gw1", tmp_path / f"state-{site}", {"b": port}, DEVICES, url,
            f"username: gw-planta-norte-01, password: {password}",
        )
    )  # fmt: skip
    return path


async def test_an_agent_publishes_under_its_own_site_only(tmp_path, capture_factory, agent_factory):
    sim, port = await start_meters()
    try:
        with shipped_broker(tmp_path) as broker:
            cap = capture_factory(broker.port, login=("operator", "op-secret"))
            own = agent_factory(
                agent_yaml(tmp_path, "planta-norte", port, broker.url, "norte-secret")
            )
            await wait_until(lambda: cap.on("planta-norte/m1/telemetry"), 20, "own site")

            other = agent_factory(agent_yaml(tmp_path, "centro", port, broker.url, "norte-secret"))
            await wait_until(
                lambda: "refused a message" in other.output(), 20, "the refusal to be logged"
            )
            await asyncio.sleep(2)
            assert not cap.on("centro/m1/telemetry")
            log = other.output()
            assert "not authori" in log.lower() and "ACL" in log
            assert log.count("refused a message") == 1  # once, not once per message
            assert "Traceback" not in log

            wrong = agent_factory(agent_yaml(tmp_path, "planta-norte", port, broker.url, "nope"))
            await wait_until(
                lambda: "check username and password" in wrong.output(), 20, "the hint"
            )
            for agent in (own, other, wrong):
                assert agent.stop() == 0
            assert "Traceback" not in wrong.output()
            # what the broker refused is still in the spool, for when the ACL is fixed
            with sqlite3.connect(tmp_path / "state-centro" / "spool.sqlite") as db:
                assert db.execute("SELECT count(*) FROM q").fetchone()[0] >= 3
    finally:
        await sim.stop()

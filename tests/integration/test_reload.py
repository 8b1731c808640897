"""SIGHUP re-reads the config without losing what the agent buffered: a reload while the broker
is away (so the spool holds the readings) hands over to the new config, and every seq number
still reaches the subscriber once the broker is back. A broken config is refused and the agent
goes on as it was."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.helpers import wait_until
from tests.integration.test_delivery import DEVICES, gaps, seqs, start_meters
from vatio.simulators.brokers import MosquittoProcess
from vatio.simulators.configs import loopback_config

pytestmark = pytest.mark.integration


async def test_a_reload_during_a_broker_outage_loses_nothing(
    tmp_path, capture_factory, agent_factory
):
    sim, port = await start_meters()
    with MosquittoProcess(persistent=True) as broker:
        try:
            cap = capture_factory(broker.port, session=True)
            cfg = tmp_path / "vatio.yaml"

            def write(devices: list[tuple[str, str, int, str, str]]) -> None:
                text = loopback_config("s", "gw", tmp_path / "state", {"b": port}, devices,
                                       broker.url)  # fmt: skip
                cfg.write_text(text)

            write(DEVICES[:3])
            agent = agent_factory(cfg)
            await wait_until(lambda: len(seqs(cap, "m1")) >= 10, 20, "telemetry")
            broker._stop_process()  # readings now wait in the spool
            await asyncio.sleep(2)
            write(DEVICES)  # two more meters
            agent.proc.send_signal(signal.SIGHUP)
            await wait_until(lambda: "handed over" in agent.output(), 20, "the hand-over")
            await asyncio.sleep(2)
            broker.start()
            await wait_until(lambda: len(seqs(cap, "m5")) >= 5, 30, "the added meter's telemetry")

            cfg.write_text(cfg.read_text().replace("interval:", "intervall:", 1))
            agent.proc.send_signal(signal.SIGHUP)
            await wait_until(lambda: "reload refused" in agent.output(), 20, "the refusal")
            before = len(seqs(cap, "m1"))
            await wait_until(lambda: len(seqs(cap, "m1")) > before + 5, 20, "polling going on")

            write(DEVICES[1:])  # a reload while connected: m1 goes away
            statuses = len(cap.on("/gw/status"))
            agent.proc.send_signal(signal.SIGHUP)
            await wait_until(lambda: agent.output().count("handed over") == 2, 20, "hand-over")
            await wait_until(lambda: len(cap.on("/gw/status")) > statuses, 20, "the new status")
            # a reload is not a stop: the agent says `online` again, never `offline`
            assert [b["state"] for b in cap.on("/gw/status")[statuses:]] == ["online"]
            assert sorted(cap.on("/gw/status")[-1]["devices"]) == ["m2", "m3", "m4", "m5"]
            assert agent.stop() == 0
            await asyncio.sleep(1)
        finally:
            await sim.stop()
    out = agent.output()
    assert "intervall" in out.split("reload refused")[1].splitlines()[0]  # the problem, named
    for name, *_ in DEVICES:
        got = seqs(cap, name)
        assert got[0] == 1, name
        assert gaps(got) == [], f"{name} lost messages across the reload: {gaps(got)}"
    assert "Traceback" not in out

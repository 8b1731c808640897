"""Nothing lost between the agent and the broker: the broker restarted mid-stream, the agent
SIGKILLed at random moments. Every telemetry message carries ``seq`` (+1 per message of one
device, kept across restarts), so a lost message is a gap in what the subscriber received."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from tests.helpers import wait_until
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.brokers import MosquittoProcess
from vatio.simulators.configs import loopback_config
from vatio.simulators.modbus_server import ModbusTcpSimulator, SimulatedMeter

pytestmark = pytest.mark.integration

DEVICES = [(f"m{u}", "b", u, "eastron_sdm120", "200ms") for u in range(1, 6)]


def seqs(cap, device: str) -> list[int]:
    return sorted({b["seq"] for b in cap.on(f"/{device}/telemetry")})


def gaps(numbers: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in itertools.pairwise(numbers) if b != a + 1]


async def start_meters() -> tuple[ModbusTcpSimulator, int]:
    profile = load_profile("eastron_sdm120")
    sim = ModbusTcpSimulator([SimulatedMeter(u, profile, seed=u) for u in range(1, 6)])
    return sim, await sim.start()


async def test_a_broker_restart_mid_stream_loses_nothing(tmp_path, capture_factory, agent_factory):
    sim, port = await start_meters()
    with MosquittoProcess(persistent=True) as broker:
        try:
            cap = capture_factory(broker.port, session=True)
            cfg = tmp_path / "vatio.yaml"
            cfg.write_text(
                loopback_config("s", "gw", tmp_path / "state", {"b": port}, DEVICES, broker.url)
            )
            agent = agent_factory(cfg)
            await wait_until(lambda: len(seqs(cap, "m1")) >= 10, 20, "telemetry")
            broker._stop_process()  # the broker goes away for a while; the agent keeps polling
            await asyncio.sleep(4)
            broker.start()
            await wait_until(
                lambda: "connected to MQTT broker" in agent.output().split("connection lost")[-1],
                30,
                "the agent to reconnect",
            )
            await asyncio.sleep(3)
            assert agent.stop() == 0
            await asyncio.sleep(1)  # the last acknowledged messages reach the subscriber
            for name, *_ in DEVICES:
                got = seqs(cap, name)
                assert got[0] == 1 and len(got) > 4 * 5, name  # readings from the outage too
                assert gaps(got) == [], f"{name} lost messages: {gaps(got)}"
            assert "Traceback" not in agent.output()
        finally:
            await sim.stop()


async def test_an_agent_killed_at_random_moments_loses_nothing_it_stored(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    """SIGKILL drops only what was not yet in the spool (the last commit interval, 0.2 s):
    it ends a run of seq numbers, and the next process starts a new run (a jump, by design).
    A message lost from the spool would be a gap inside a run, so runs = processes."""
    sim, port = await start_meters()
    rng = random.Random(7)
    try:
        cap = capture_factory(mosquitto.port)
        cfg = tmp_path / "vatio.yaml"
        cfg.write_text(
            loopback_config("s", "gw", tmp_path / "state", {"b": port}, DEVICES, mosquitto.url)
        )
        kills = 4
        for _ in range(kills):
            agent = agent_factory(cfg)
            await asyncio.sleep(rng.uniform(1.5, 3.5))
            agent.kill()
        agent = agent_factory(cfg)
        await asyncio.sleep(3)
        assert agent.stop() == 0
        await asyncio.sleep(1)
        for name, *_ in DEVICES:
            got = seqs(cap, name)
            assert got[0] == 1
            assert len(gaps(got)) <= kills, f"{name}: {gaps(got)}"
    finally:
        await sim.stop()


async def test_a_message_committed_while_reconnecting_is_sent_on_the_new_connection(
    tmp_path, capture_factory
):
    """A commit still writing when the connection comes back: its messages are not on disk
    for the backlog reader yet, so they must go out as live ones (this once lost a message
    in the broker-restart test above)."""
    import json
    import threading

    from vatio.agent.config import MqttOutputConfig
    from vatio.agent.messages import Message
    from vatio.agent.outputs.mqtt import MqttOutput
    from vatio.agent.spool import Spool

    with MosquittoProcess(persistent=True) as broker:
        cap = capture_factory(broker.port, session=True)
        spool = Spool(tmp_path / "spool.sqlite")
        gate = threading.Event()
        real_commit = spool._commit

        def held_commit(pending, acked):
            if pending and not gate.is_set():
                gate.wait(20)  # the disk is slow, just when the broker comes back
            return real_commit(pending, acked)

        spool._commit = held_commit
        gate.set()
        status = Message("vatio/v1/s/gw/status", b"{}", retain=True)
        out = MqttOutput(
            MqttOutputConfig(url=broker.url), spool, "gw", lambda: status, lambda: status, 0.05
        )
        task = asyncio.create_task(out.run())
        try:
            out.submit(Message("vatio/v1/s/gw/m1/telemetry", json.dumps({"seq": 1}).encode()))
            await wait_until(lambda: seqs(cap, "m1") == [1], 10, "the first message")
            broker._stop_process()
            await wait_until(lambda: not out.stats.connected, 10, "the agent to see the outage")
            gate.clear()
            out.submit(Message("vatio/v1/s/gw/m1/telemetry", json.dumps({"seq": 2}).encode()))
            broker.start()
            await wait_until(lambda: out.stats.connects == 2, 20, "the agent to reconnect")
            gate.set()
            await wait_until(lambda: seqs(cap, "m1") == [1, 2], 10, "the message of the commit")
            await wait_until(lambda: spool.backlog == 0, 5, "the spool to empty")
        finally:
            gate.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await spool.close()

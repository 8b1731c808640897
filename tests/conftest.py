"""Shared fixtures: a real Mosquitto on a free loopback port, MQTT capture, agent processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from vatio.simulators.brokers import MosquittoProcess
from vatio.simulators.databases import InfluxdProcess, VictoriaMetricsProcess

# The machines the tests run on may have no time source at all (a container's kernel says
# "not synchronised" forever), and the agent would then rightly flag every reading and hold
# its metrics. Tests are not about that clock: they say it is synchronised, through the test
# override of common/timesync.py, unless they set VATIO_TIME_SYNC themselves (in-process and
# in the `vatio` child processes, which inherit the environment).
os.environ.setdefault("VATIO_TIME_SYNC", "yes")


@pytest.fixture
def mosquitto() -> Iterator[MosquittoProcess]:
    if not MosquittoProcess.available():
        pytest.fail(
            "mosquitto is not installed: run ./scripts/test as root, or apt-get install mosquitto"
        )
    with MosquittoProcess() as broker:
        yield broker


class Capture:
    """Subscribes to a topic filter (paho, background thread) and keeps every message."""

    def __init__(
        self,
        port: int,
        topic: str = "vatio/#",
        session: bool = False,
        login: tuple[str, str] | None = None,
    ) -> None:
        """``session``: a persistent session (QoS 1), so a broker that keeps sessions
        delivers what arrived while this subscriber was reconnecting."""
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"capture-{port}-{id(self)}",
            clean_session=not session,
        )
        self.client.reconnect_delay_set(0.1, 1.0)
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("capture could not subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))

    def where(self, predicate: Callable[[str, dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._lock:
            return [body for topic, body, _ in self.messages if predicate(topic, body)]

    def on(self, suffix: str) -> list[dict[str, Any]]:
        return self.where(lambda t, b: t.endswith(suffix))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def capture_factory() -> Iterator[Callable[..., Capture]]:
    made: list[Capture] = []

    def make(
        port: int,
        topic: str = "vatio/#",
        session: bool = False,
        login: tuple[str, str] | None = None,
    ) -> Capture:
        made.append(Capture(port, topic, session, login))
        return made[-1]

    yield make
    for c in made:
        c.close()


class AgentProcess:
    """``vatio run -c FILE`` (or another command) in a child process, as the service runs it."""

    def __init__(
        self,
        config: Path,
        env: dict[str, str] | None = None,
        command: tuple[str, ...] = ("run",),
        log: Path | None = None,
    ) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log = log or config.with_suffix(".log")
        self._log_file = self.log.open("a" if log else "w")  # a restarted bridge appends
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vatio.agent.cli", *command, "-c", str(config)],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.proc.returncode


@pytest.fixture
def agent_factory() -> Iterator[Callable[[Path], AgentProcess]]:
    made: list[AgentProcess] = []

    def start(config: Path, env: dict[str, str] | None = None) -> AgentProcess:
        made.append(AgentProcess(config, env))
        return made[-1]

    yield start
    for a in made:
        a.stop()


@pytest.fixture
def ingest_factory() -> Iterator[Callable[[Path, str], AgentProcess]]:
    """``vatio ingest -c FILE --client-id ID``; its log is FILE's name + the id + .log."""
    made: list[AgentProcess] = []

    def start(config: Path, client_id: str) -> AgentProcess:
        log = config.with_name(f"{config.stem}-{client_id}.log")
        made.append(AgentProcess(config, None, ("ingest", "--client-id", client_id), log))
        return made[-1]

    yield start
    for a in made:
        a.stop()


def _server(kind: type[Any]) -> Iterator[Any]:
    if kind.binary() is None:
        pytest.fail(
            f"{kind.binary_name} is not installed: run ./scripts/test as root, "
            f"or {kind.install_hint}"
        )
    with kind() as server:
        yield server


@pytest.fixture
def influxd() -> Iterator[InfluxdProcess]:
    """InfluxDB 1.6 (v1 API) on a free loopback port, data in a temp dir."""
    yield from _server(InfluxdProcess)


@pytest.fixture
def victoria() -> Iterator[VictoriaMetricsProcess]:
    """VictoriaMetrics (InfluxDB's v2 write API) on a free loopback port, data in a temp dir."""
    yield from _server(VictoriaMetricsProcess)

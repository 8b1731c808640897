"""MQTT brokers on 127.0.0.1 for the demo, tests and benchmarks.

* :class:`MosquittoProcess`: the real Mosquitto (Debian package), started on a free loopback
  port with a config in a temp dir, stopped by PID. Tests and benchmarks use this one.
* :class:`InProcessBroker`: amqtt in this process (the ``demo`` extra), for a demo on a machine
  with nothing but Python. It speaks MQTT 3.1.1 only and has no shared subscriptions.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on ``port`` (Linux ``/proc/net``); ``None`` elsewhere."""
    found: set[str] = set()
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return None
    for table in tables:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                # local address is HEXIP:HEXPORT, state 0A is LISTEN
                if len(fields) > 9 and fields[3] == "0A" and fields[1].endswith(f":{port:04X}"):
                    found.add(fields[9])
    return found


def serves(pid: int, port: int) -> bool:
    """Is process ``pid`` the one listening on ``port``? Two test workers may pick the same
    free port, or one may take the port of another's stopped server: the one that lost the
    race must not talk to the other's server. True where ``/proc`` cannot tell."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return True
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    return False


def wait_until_serving(
    proc: subprocess.Popen[bytes], port: int, what: str, timeout: float = 20.0
) -> None:
    """Wait until ``proc`` itself listens on ``port``; raise if it exits or another process
    holds the port (:class:`PortTaken`) or nothing happens within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise PortTaken(f"{what} exited (code {proc.returncode}) before serving on {port}")
        if serves(proc.pid, port):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} does not serve on 127.0.0.1:{port} after {timeout:g} s")
        time.sleep(0.05)


class PortTaken(RuntimeError):
    """The server exited before serving: most often, its port was taken meanwhile."""


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout:g} s"
                ) from None
            time.sleep(0.05)


class MosquittoProcess:
    """A private Mosquitto on ``127.0.0.1:port``; ``with MosquittoProcess() as b: b.port``."""

    def __init__(
        self,
        port: int | None = None,
        extra_config: str = "",
        persistent: bool = False,
        config: str | None = None,
    ) -> None:
        """``persistent``: keep sessions and queued messages across :meth:`restart`.
        ``config``: a whole mosquitto.conf instead of the default one; ``{port}`` and
        ``{dir}`` (a private directory) are filled in."""
        # a port we chose may change if another process takes it first, until clients know it
        self._may_move = port is None
        self.port = port or free_port()
        self.extra_config = extra_config
        self.persistent = persistent
        self.config = config
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return MosquittoProcess.binary() is not None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> MosquittoProcess:
        binary = self.binary()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="vatio-mosquitto-")
        conf = Path(self._dir.name) / "mosquitto.conf"
        persistence = (
            f"persistence true\npersistence_location {self._dir.name}/\n"
            if self.persistent
            else "persistence false\n"
        )
        text = (
            f"listener {self.port} 127.0.0.1\n"
            # Started as root, mosquitto would drop to the ``mosquitto`` user, which cannot
            # write its persistence file into our temp dir: stay the user that started it.
            f"user {getpass.getuser()}\n"
            "allow_anonymous true\n" + persistence + "log_dest stderr\n"
            "log_type error\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n" + self.extra_config
        )
        if self.config is not None:
            text = f"user {getpass.getuser()}\n" + self.config.format(
                port=self.port, dir=self._dir.name
            )
        conf.write_text(text)
        conf.chmod(0o644)  # started as root, mosquitto drops to its own user
        Path(self._dir.name).chmod(0o755)
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_until_serving(self.proc, self.port, "mosquitto")
            wait_for_port("127.0.0.1", self.port)
        except PortTaken:
            self._stop_process()
            if self._may_move:
                self._may_move = False
                self.port = free_port()  # lost a race for a free port: take another, once
                return self.start()
            self.stop()
            raise
        except TimeoutError:
            self.stop()
            raise
        self._may_move = False
        return self

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash or power cut would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        """Stop (SIGTERM: a persistent broker saves its sessions) and start again."""
        self._stop_process()
        self.start()

    def stop(self) -> None:
        self._stop_process()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _stop_process(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None

    def __enter__(self) -> MosquittoProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InProcessBroker:
    """amqtt running in the current event loop on ``127.0.0.1:port``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> None:
        from amqtt.broker import Broker  # the demo extra; imported only when used

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            # an explicit plugin list replaces amqtt's defaults ($SYS every 20 s, loggers)
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._broker = Broker(config)
        await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            with contextlib.suppress(Exception):
                await self._broker.shutdown()
            self._broker = None

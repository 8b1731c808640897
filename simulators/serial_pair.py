"""Virtual serial cables: two pty devices joined by socat (Debian package ``socat``), or one
pseudo-terminal Python opens itself (:class:`PtyPair`, no socat: ``vatio demo`` uses it).

Whatever one end writes, the other end reads, as on a real RS-485 or UART line, except that
a pty ignores the baud rate (stack-notes §2.3): the simulators delay their replies
themselves when wire timing matters.

    with SerialPair(tmp_path) as pair:
        device_side, agent_side = pair.a, pair.b
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import tty
from pathlib import Path


class SerialPair:
    def __init__(self, directory: Path, name: str = "tty") -> None:
        self.a = str(directory / f"{name}-device")
        self.b = str(directory / f"{name}-agent")
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def at(cls, agent_path: str) -> SerialPair:
        """A pair whose agent end is ``agent_path`` (the device end sits beside it)."""
        pair = cls(Path(agent_path).parent)
        pair.b, pair.a = agent_path, agent_path + "-device"
        return pair

    @staticmethod
    def available() -> bool:
        return shutil.which("socat") is not None

    def start(self) -> SerialPair:
        if not self.available():
            raise FileNotFoundError("socat is not installed (apt-get install socat)")
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (Path(self.a).exists() and Path(self.b).exists()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise TimeoutError("socat did not create the pty pair")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None

    def __enter__(self) -> SerialPair:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PtyPair:
    """One pseudo-terminal from :func:`os.openpty`: the agent opens ``path`` (the slave end,
    ``/dev/pts/N``) as its serial port; a simulator reads and writes ``fd`` (the master end,
    non-blocking; :meth:`vatio.simulators.uart_sensors.UartSensorSim.start_fd`).

    The slave end is kept open here too, so the master never sees the line hang up while
    the agent closes and reopens its port. Like a socat pair it ignores the baud rate."""

    def __init__(self) -> None:
        self.fd = -1
        self.path = ""
        self._slave = -1

    def start(self) -> PtyPair:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes pass as they are
        os.set_blocking(master, False)
        self.fd, self._slave, self.path = master, slave, os.ttyname(slave)
        return self

    def stop(self) -> None:
        for fd in (self.fd, self._slave):
            if fd >= 0:
                os.close(fd)
        self.fd = self._slave = -1

    def __enter__(self) -> PtyPair:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

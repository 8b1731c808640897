"""A serial line between two programs that behaves like a wire: paced at the baud rate, and
garbled, as a real UART garbles, when the two ends disagree on baud rate or parity.

A socat pty pair ignores both (stack-notes §8): anything "works" at any speed. This emulator
makes two pty pairs (``os.openpty``; it holds both masters, so no socat is needed) and links
their slave ends at two paths, one per program (the agent, the meter). Every chunk one end
writes is

* **paced**: delivered byte by byte at the times its characters finish on the wire at the
  *sender's* baud rate (start bit, data bits, parity, stop bits), one chunk after the other
  in each direction, so a 150-byte reply at 2400 baud takes its 0.69 s;
* **received with the receiver's settings**: when the two ends' settings are the same the
  bytes pass unchanged; when they differ, the sender's bit stream is sampled as a 16550-style
  UART with the receiver's baud rate, data bits and parity would sample it (start bit on a
  falling edge, bits read mid-cell, a framing error taken as the next start bit), so the
  receiver gets what a real one would: wrong bytes, fewer or more of them. Bytes with parity
  or framing errors are delivered as read, as Linux does when INPCK is off (pyserial always
  clears it).

**Where each end's settings come from (decision).** By default, from the pty itself: a pty
does not apply termios settings, but it stores them, and ``tcgetattr`` on the master returns
what the program on the slave set (baud rate, data bits, parity, stop bits), read again for
every chunk, so a program that reconfigures its port is followed. An explicit setting
(``LineEnd(parity="E")``) overrides what the pty says: needed for parity E/O, which this
kernel's ptys refuse (``termios.error`` 22), so a simulated meter opens its pty at N and the
emulator is told it is an 8E1 meter.

    with LineEmulator(tmp_path / "agent", tmp_path / "meter", meter=LineEnd(parity="E")):
        ...  # the agent opens tmp_path/"agent", the simulated meter tmp_path/"meter"

``python -m vatio.simulators.line_emulator AGENT_PATH DEVICE_PATH [--device-parity E] …`` runs one
until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import termios
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path

_SPEEDS = {
    getattr(termios, f"B{b}"): b
    for b in (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
}
_SIZES = {termios.CS5: 5, termios.CS6: 6, termios.CS7: 7, termios.CS8: 8}


@dataclass(frozen=True)
class LineEnd:
    """One end's UART settings; None = read from the pty (what its program set)."""

    baudrate: int | None = None
    parity: str | None = None  # N, E, O
    stopbits: int | None = None
    bytesize: int | None = None


@dataclass(frozen=True)
class Uart:
    baudrate: int
    parity: str
    stopbits: int
    bytesize: int

    @property
    def bits(self) -> int:
        """Bits per character on the wire."""
        return 1 + self.bytesize + (self.parity != "N") + self.stopbits

    def same_wire(self, other: Uart) -> bool:
        # a receiver checks one stop bit only: 1 vs 2 stop bits does not garble
        return (self.baudrate, self.parity, self.bytesize) == (
            other.baudrate,
            other.parity,
            other.bytesize,
        )


def settings_of(fd: int, override: LineEnd) -> Uart:
    """What the program on this pty set, with ``override`` on top."""
    _, _, cflag, _, ispeed, _, _ = termios.tcgetattr(fd)
    parity = "N" if not cflag & termios.PARENB else ("O" if cflag & termios.PARODD else "E")
    return Uart(
        override.baudrate or _SPEEDS.get(ispeed, 9600),
        override.parity or parity,
        override.stopbits or (2 if cflag & termios.CSTOPB else 1),
        override.bytesize or _SIZES.get(cflag & termios.CSIZE, 8),
    )


def _frame_bits(byte: int, uart: Uart) -> list[int]:
    bits = [0] + [(byte >> i) & 1 for i in range(uart.bytesize)]
    if uart.parity != "N":
        ones = sum(bits[1:])
        bits.append(ones & 1 if uart.parity == "E" else 1 - (ones & 1))
    return bits + [1] * uart.stopbits


def transmit(data: bytes, tx: Uart, rx: Uart) -> list[tuple[float, int]]:
    """The bytes ``rx`` reads when ``tx`` sends ``data`` back to back, each with the time
    (seconds from the first start bit) at which the receiver has it."""
    if tx.same_wire(rx):
        cell = tx.bits / tx.baudrate
        return [((i + 1) * cell, b) for i, b in enumerate(data)]
    wire = [bit for b in data for bit in _frame_bits(b, tx)]
    t_bit = 1.0 / tx.baudrate
    r_bit = 1.0 / rx.baudrate
    end = len(wire) * t_bit

    def level(t: float) -> int:
        k = int(t / t_bit)
        return wire[k] if 0 <= k < len(wire) else 1  # idle line is high

    out: list[tuple[float, int]] = []
    step = r_bit / 16  # a 16550 looks for the start bit at 16× its baud rate
    t = 0.0
    while t < end:
        if level(t) or level(t + r_bit / 2):  # no start bit here (or a glitch)
            t += step
            continue
        value = 0
        for i in range(rx.bytesize):
            value |= level(t + (1.5 + i) * r_bit) << i
        stop_at = t + (1.5 + rx.bytesize + (rx.parity != "N")) * r_bit
        out.append((stop_at, value))  # delivered even with a parity/framing error
        # a low stop bit is a framing error: the 16550 takes it for the next start bit
        t = stop_at - r_bit / 2 if level(stop_at) == 0 else stop_at + r_bit / 2
    return out


class _Direction:
    """One way of the line: reads the sender's master, delivers to the receiver's master."""

    def __init__(self, line: LineEmulator, src: int, dst: int, name: str) -> None:
        self.line, self.src, self.dst, self.name = line, src, dst, name
        self.busy_until = 0.0  # monotonic time the wire in this direction is free again
        self.sent = 0
        self.delivered = 0
        self.garbled_chunks = 0


class LineEmulator:
    """Two pty ends joined by an emulated UART line (see the module docstring)."""

    def __init__(
        self,
        agent_path: str | Path,
        device_path: str | Path,
        agent: LineEnd | None = None,
        device: LineEnd | None = None,
    ) -> None:
        self.agent_path = str(agent_path)
        self.device_path = str(device_path)
        self.agent = agent or LineEnd()
        self.device = device or LineEnd()
        self._fds: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.directions: list[_Direction] = []

    # lifecycle: the emulator runs its own event loop in a thread, so its pacing does not
    # depend on what the test's loop (or a simulator in it) is busy with

    def start(self) -> LineEmulator:
        ends = []
        for path in (self.agent_path, self.device_path):
            master, slave = os.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.symlink(os.ttyname(slave), path)
            os.set_blocking(master, False)
            # the slave stays open here too: a master whose every slave fd is closed reads
            # EIO, and programs open and close their port as they please
            self._fds += [master, slave]
            ends.append(master)
        a, d = ends
        self.directions = [
            _Direction(self, a, d, "agent→device"),
            _Direction(self, d, a, "device→agent"),
        ]
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        for d in self.directions:
            loop.add_reader(d.src, self._on_readable, d)
        ready.set()
        try:
            loop.run_forever()
        finally:
            for d in self.directions:
                loop.remove_reader(d.src)
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop = None
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
        for path in (self.agent_path, self.device_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def __enter__(self) -> LineEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # the line ---------------------------------------------------------------------------

    def _settings(self, fd: int) -> Uart:
        agent_fd = self.directions[0].src
        return settings_of(fd, self.agent if fd == agent_fd else self.device)

    def _on_readable(self, d: _Direction) -> None:
        try:
            chunk = os.read(d.src, 4096)
        except (BlockingIOError, OSError):
            return
        if not chunk:
            return
        tx, rx = self._settings(d.src), self._settings(d.dst)
        d.sent += len(chunk)
        if not tx.same_wire(rx):
            d.garbled_chunks += 1
        received = transmit(chunk, tx, rx)
        now = time.monotonic()
        start = max(now, d.busy_until)
        d.busy_until = start + len(chunk) * tx.bits / tx.baudrate
        assert self._loop is not None
        # deliver in groups of bytes due within a millisecond of each other
        group: list[int] = []
        due = 0.0
        for at, byte in received:
            when = start + at
            if group and when - due > 0.001:
                self._deliver_at(d, due, bytes(group))
                group = []
            if not group:
                due = when
            group.append(byte)
        if group:
            self._deliver_at(d, due, bytes(group))

    def _deliver_at(self, d: _Direction, when: float, data: bytes) -> None:
        assert self._loop is not None
        delay = max(0.0, when - time.monotonic())
        self._loop.call_later(delay, self._write, d, data)

    def _write(self, d: _Direction, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(d.dst, data)
            d.delivered += len(data)


def main() -> None:
    ap = argparse.ArgumentParser(description="an emulated UART line between two ptys")
    ap.add_argument("agent_path")
    ap.add_argument("device_path")
    for end in ("agent", "device"):
        ap.add_argument(f"--{end}-baudrate", type=int)
        ap.add_argument(f"--{end}-parity", choices=["N", "E", "O"])
        ap.add_argument(f"--{end}-stopbits", type=int, choices=[1, 2])
    args = ap.parse_args()
    ends = {
        end: LineEnd(
            getattr(args, f"{end}_baudrate"),
            getattr(args, f"{end}_parity"),
            getattr(args, f"{end}_stopbits"),
        )
        for end in ("agent", "device")
    }
    line = LineEmulator(args.agent_path, args.device_path, ends["agent"], ends["device"])
    with line:
        print(f"line: {args.agent_path} <-> {args.device_path}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()

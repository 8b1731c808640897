"""bench/scan: `vatio scan` of one RS-485 line with eight different meters, against the wire.

    python -m bench.scan                      # unit ids 1-247 at 9600 baud, turnaround 0.2 s
    python -m bench.scan --ids 1-20 --timeout 0.1

The line is the one of :mod:`vatio.simulators.mixed_line` (EM24, OR-WE-516, PM5000, PAC3200,
DTSU666, CVM-C10, EM340, Acuvim II at units 1-8), served in its own process
(``python -m vatio.simulators.mixed_line``): each reply takes its real time on the wire at the
baud rate, and unit ids nobody has stay silent, as on a real line. (Exception replies, to
reads of registers a model does not have, come back at once: see simulators/modbus_server.) The
scanner is the agent's own (:func:`vatio.agent.scan.scan` over the agent's transport), in
this process, with the same per-read timeout as ``vatio scan`` (wire time + ``--timeout``).

Printed: whether every meter was named correctly, the time taken, the transactions (answered,
exception replies, silent), the theoretical wire time of those transactions (the bytes that
were on the wire, 10-bit 8N1 characters, plus a t3.5 after each frame), and the ratio of the
time taken to it. A silent unit id has no bytes to wait for but still costs its timeout: the
time spent waiting on silence is printed apart, with the ratio of the rest to its wire time.
1-247 is the whole unicast range a technician scans when the ids are unknown.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vatio.agent.scan import ScanBus, make_client, scan
from vatio.drivers.modbus.profile import RegisterType
from vatio.drivers.modbus.transport import char_time, t35
from vatio.drivers.reading import DeviceExceptionReply, DeviceTimeout
from vatio.simulators import mixed_line


@dataclass
class Transaction:
    count: int
    outcome: str  # "reply", "exception", "silent", "other"
    seconds: float


class RecordingBus:
    """The scanner's bus, recording each transaction's outcome and duration."""

    def __init__(self, bus: ScanBus) -> None:
        self.bus = bus
        self.garbled = bus.garbled
        self.bad = bus.bad
        self.log: list[Transaction] = []

    async def read(self, rtype: RegisterType, start: int, count: int, unit: int) -> list[int]:
        t0 = time.perf_counter()
        outcome = "other"
        try:
            regs = await self.bus.read(rtype, start, count, unit)
            outcome = "reply"
            return regs
        except DeviceExceptionReply:
            outcome = "exception"
            raise
        except DeviceTimeout:
            outcome = "silent"
            raise
        finally:
            self.log.append(Transaction(count, outcome, time.perf_counter() - t0))


def wire_seconds(tx: Transaction, baud: int) -> float:
    """Bus time of what was on the wire: the 8-byte request and its t3.5, and the reply (a
    normal one 5 + 2n bytes, an exception 5 bytes, silence nothing) and its t3.5."""
    reply = {"reply": 5 + 2 * tx.count, "exception": 5}.get(tx.outcome, 0)
    seconds = 8 * char_time(baud, 10) + t35(baud)
    if reply:
        seconds += reply * char_time(baud, 10) + t35(baud)
    return seconds


async def run(ids: range, baud: int, turnaround: float) -> int:
    with tempfile.TemporaryDirectory(prefix="vatio-bench-scan-") as tmp:
        port = Path(tmp) / "ttyRS485"
        sim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vatio.simulators.mixed_line", str(port), "--baud", str(baud),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(200):
                if port.exists():
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the RTU server opens its end after the pty appears
            bus = make_client(host=None, tcp_port=0, serial_port=str(port), baudrate=baud,
                              parity="N", rtu_over_tcp=False, timeout=turnaround)  # fmt: skip
            await bus.open()
            recorder = RecordingBus(bus)
            t0 = time.perf_counter()
            found = await scan(recorder, ids, progress=False)  # type: ignore[arg-type]
            took = time.perf_counter() - t0
            bus.close()
        finally:
            sim.terminate()
            await sim.wait()
    named = {f.unit: " or ".join(f.profiles) or "?" for f in found}
    expected = {u: n for u, n in mixed_line.LINE.items() if u in ids}
    for unit, name in sorted(named.items()):
        mark = "ok" if expected.get(unit) == name else f"WRONG (is {expected.get(unit)})"
        print(f"  unit {unit:>3}: {name:<24} {mark}")
    correct = named == expected
    log = recorder.log
    by = {k: [t for t in log if t.outcome == k] for k in ("reply", "exception", "silent", "other")}
    wire = sum(wire_seconds(t, baud) for t in log)
    silent_wait = sum(t.seconds for t in by["silent"])
    rest_wire = sum(wire_seconds(t, baud) for t in log if t.outcome != "silent")
    print(
        f"named {len(found)} of {len(expected)} meters correctly: {'yes' if correct else 'NO'}\n"
        f"ids {ids.start}-{ids.stop - 1} at {baud} baud, turnaround {turnaround:g} s: "
        f"{took:.2f} s, {len(log)} transactions ({len(by['reply'])} answered, "
        f"{len(by['exception'])} exception replies, {len(by['silent'])} silent, "
        f"{len(by['other'])} other)\n"
        f"theoretical wire time {wire:.2f} s -> ratio {took / wire:.2f}\n"
        f"of which waiting on silent ids {silent_wait:.2f} s; the rest {took - silent_wait:.2f} s "
        f"for {rest_wire:.2f} s on the wire -> ratio {(took - silent_wait) / rest_wire:.2f}"
    )
    return 0 if correct else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ids", default="1-247", help="unit ids to scan (default 1-247)")
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--timeout", type=float, default=0.2, help="device turnaround (as vatio scan)")
    args = ap.parse_args()
    low, _, high = args.ids.partition("-")
    ids = range(int(low), int(high or low) + 1)
    print(f"bench/scan: {len(mixed_line.LINE)} different meters on one baud-faithful RTU line")
    sys.exit(asyncio.run(run(ids, args.baud, args.timeout)))


if __name__ == "__main__":
    main()

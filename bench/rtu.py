"""bench/rtu: meters on one baud-faithful RS-485 line, against the line's theoretical maximum.

    python -m bench.rtu                     # 9600, 19200, 38400 baud, 8 meters, 20 s per case
    python -m bench.rtu --duration 60

The line is a pty pair made by ``vatio simulate --baud-faithful`` (a separate process): the
simulated meters hold every reply for the frames' time on the wire at the configured baud
rate (a pty itself ignores the baud rate), so bus time is real. The agent's own scheduler and
Modbus transport poll them, in this process.

For each baud rate, two cases:

* saturated: the schedule asks for more than the line can carry. Printed: transactions per
  second achieved, the theoretical maximum for the same frames (request + t3.5 + reply +
  t3.5 per transaction, 10-bit characters for 8N1), and the ratio (goal >= 0.90), with the
  agent's CPU (this process: scheduler, transport, decoding), once with the transport's
  precise silence (a spin of at most ``SPIN_S`` at the end of each wait) and once with the
  event loop's timers alone (``spin 0``, the way before issue 18);
* fits: intervals chosen so the schedule needs ~75 % of the line. Printed: polls, missed
  ticks (goal 0) and the share of the line `vatio check` estimates for that config.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vatio.agent.config import parse_config_text
from vatio.agent.runtime import build_scheduler, bus_timing
from vatio.drivers.modbus.planner import plan_reads
from vatio.drivers.modbus.profile import load_profile
from vatio.drivers.modbus.transport import SPIN_S, ModbusTransport, read_wire_time
from vatio.drivers.reading import PollResult

# A plain meter: 12 float32 values in two blocks -> 2 requests per poll, no extra gap.
PROFILE = """\
model: Bench meter
source: made up for bench/rtu
defaults: {register_type: input, data_type: f32}
limits: {max_registers: 40}
registers:
  voltage_l1_v: 0
  voltage_l2_v: 2
  voltage_l3_v: 4
  current_l1_a: 6
  current_l2_a: 8
  current_l3_a: 10
  active_power_w: 12
  power_factor: 14
  frequency_hz: 16
  reactive_power_var: 18
  energy_import_kwh: 72
  energy_export_kwh: 74
"""


class CountingSink:
    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0

    def readings(self, result: PollResult) -> None:
        if result.ok:
            self.ok += 1
        else:
            self.failed += 1

    def device_state(self, device: str, state: str, reason: str) -> None:
        pass


async def run_case(
    workdir: Path,
    baud: int,
    meters: int,
    interval: float,
    warmup: float,
    duration: float,
    spin: float = SPIN_S,
) -> dict[str, float]:
    ModbusTransport.spin = spin
    (workdir / "bench_meter.yaml").write_text(PROFILE)
    profile = load_profile(str(workdir / "bench_meter.yaml"))
    port = workdir / f"ttyRS485-{baud}-{interval}"
    devices = "".join(
        f"  m{i + 1}: {{bus: line, unit: {i + 1}, profile: bench_meter.yaml, "
        f"interval: {interval}}}\n"
        for i in range(meters)
    )
    config = workdir / f"rtu-{baud}-{interval}.yaml"
    config.write_text(
        f"site: bench\nstate_dir: {workdir}\nbuses:\n"
        f"  line: {{type: modbus-rtu, port: {port}, baudrate: {baud}}}\n"
        f"devices:\n{devices}"
    )
    # the meters live in their own process, as real devices would: `vatio simulate`
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vatio.agent.cli",
        "simulate",
        "-c",
        str(config),
        "--baud-faithful",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if port.exists():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the RTU server opens its end after the pty appears
        loaded = parse_config_text(config.read_text(), base_dir=workdir)
        sink = CountingSink()
        scheduler, transports, _ = build_scheduler(loaded, sink)  # type: ignore[arg-type]
        task = asyncio.create_task(scheduler.run())
        await asyncio.sleep(warmup)
        req0 = transports[0].requests
        missed0 = sum(d.stats.missed_ticks for d in scheduler.devices)
        ok0 = sink.ok
        cpu0 = time.process_time()
        await asyncio.sleep(duration)
        cpu = time.process_time() - cpu0
        req1 = transports[0].requests
        missed1 = sum(d.stats.missed_ticks for d in scheduler.devices)
        ok1 = sink.ok
        scheduler.stop()
        task.cancel()
        await asyncio.wait([task], timeout=5)
        for t in transports:
            t.close()
    finally:
        sim.terminate()
        await sim.wait()
    plan = plan_reads(profile.points, profile.limits)
    per_tx = statistics.fmean(read_wire_time(r.count, baud, 10) for r in plan)
    return {
        "tx_per_s": (req1 - req0) / duration,
        "cpu_share": cpu / duration,
        "max_tx_per_s": 1 / per_tx,
        "polls": ok1 - ok0,
        "missed": missed1 - missed0,
        "failed": sink.failed,
        "check_load": bus_timing("line", loaded).load,
        "poll_time": per_tx * len(plan),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bauds", default="9600,19200,38400")
    ap.add_argument("--meters", type=int, default=8)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    args = ap.parse_args()
    print(
        f"bench/rtu: {args.meters} meters (2 requests per poll) on one baud-faithful RTU line "
        f"over a pty, {args.duration:g} s per case"
    )
    with tempfile.TemporaryDirectory(prefix="vatio-bench-rtu-") as tmp:
        for baud in (int(b) for b in args.bauds.split(",")):
            for spin in (0.0, SPIN_S):
                sat = await run_case(
                    Path(tmp), baud, args.meters, 0.05, args.warmup, args.duration, spin
                )
                ratio = sat["tx_per_s"] / sat["max_tx_per_s"]
                print(
                    f"{baud:>6} baud saturated, spin {spin * 1e3:.1f} ms: {sat['tx_per_s']:.1f}"
                    f" tx/s of a theoretical {sat['max_tx_per_s']:.1f} tx/s -> ratio"
                    f" {ratio:.3f} (goal >= 0.90); agent CPU {sat['cpu_share']:.1%} of a core;"
                    f" failed polls {sat['failed']}",
                    flush=True,
                )
            # an interval at which the schedule needs ~75 % of the line
            interval = round(args.meters * sat["poll_time"] / 0.75, 2)
            fit = await run_case(Path(tmp), baud, args.meters, interval, args.warmup, args.duration)
            print(
                f"{baud:>6} baud fits (interval {interval:g} s, check estimates "
                f"{fit['check_load']:.0%} of the line): {fit['polls']:.0f} polls, "
                f"missed ticks {fit['missed']:.0f} (goal 0), failed polls {fit['failed']}; "
                f"agent CPU {fit['cpu_share']:.1%} of a core",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())

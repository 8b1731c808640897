"""bench/pipeline: N simulated meters at 1 Hz through the whole path to a local Mosquitto.

    python -m bench.pipeline                      # N = 10, 100, 500; 60 s each
    python -m bench.pipeline --sizes 100 --duration 20

For each N, side by side in one run:

* agent: ``vatio run`` (a child process) polls N simulated SDM630-like meters (ten float32
  quantities, one request per poll) every second and publishes telemetry to Mosquitto. The
  meters are unit ids 1..k of Modbus/TCP gateways of up to 200 units (one gateway up to 200
  meters), served by ``vatio simulate`` (one process per gateway, at most two);
* baselines: ``bench/baseline_loop.py``, the competent bare loop of issue 18: pymodbus's
  async client on one shared connection per gateway, one request per meter, the floats
  decoded with a single ``struct.unpack``, ``json.dumps``, paho publish at QoS 1 and,
  second, at QoS 0.

A subscriber counts the telemetry that reaches the broker. Printed per run: readings (polls)
delivered per CPU-second of the polling process, missed ticks, peak RSS (VmHWM), and the
agent's CPU per reading over each bare loop's (issue 18: 1.0× is the bare loop's cost).
The first ``--warmup`` seconds are not measured. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from vatio.simulators.brokers import MosquittoProcess, free_port, wait_for_port
from vatio.simulators.configs import loopback_config

ROOT = Path(__file__).resolve().parent.parent


class Counter:
    """Counts telemetry messages on the broker (paho, its own thread)."""

    def __init__(self, port: int) -> None:
        self.count = 0
        self.nulls = 0
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter")
        self.client.on_connect = lambda c, *a: c.subscribe([("vatio/#", 0), ("bench/#", 0)])
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        ready.wait(10)

    def _on_message(self, client: object, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/telemetry"):
            with self._lock:
                self.count += 1
                if b"null" in msg.payload:
                    self.nulls += 1

    def read(self) -> tuple[int, int]:
        with self._lock:
            return self.count, self.nulls

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Result:
    name: str
    delivered: int
    nulls: int
    cpu_s: float
    missed: int
    peak_rss_mib: float
    sim_cpu_s: float
    written: int = 0  # bytes the process made the kernel write to disk (/proc/PID/io)

    @property
    def per_cpu_s(self) -> float:
        return self.delivered / self.cpu_s if self.cpu_s else 0.0


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def missed_from(log: Path, marker: str = "stats: ") -> list[int]:
    """missed_ticks from every `stats:` line the process printed (agent or baseline)."""
    text = log.read_text()
    return (
        [int(m) for m in re.findall(r'missed_ticks"?[=:] ?(\d+)', text.split(marker, 1)[-1])]
        if marker in text
        else []
    )


def measure(
    name: str,
    cmd: list[str],
    counter: Counter,
    sims: list[psutil.Process],
    warmup: float,
    duration: float,
    log: Path,
    profile: Path | None = None,
) -> Result:
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    ps = psutil.Process(proc.pid)
    time.sleep(warmup)
    proc.send_signal(signal.SIGUSR1)
    c0, n0 = counter.read()
    w0 = ps.io_counters().write_bytes
    cpu0 = cpu_seconds(ps)
    sim0 = sum(cpu_seconds(s) for s in sims)
    spy = None
    if profile is not None:  # py-spy samples the process from outside (its own CPU is not counted)
        spy = subprocess.Popen(
            ["py-spy", "record", "--pid", str(proc.pid), "--duration", str(int(duration)),
             "--rate", "200", "--format", "raw", "--output", str(profile), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    time.sleep(duration)
    proc.send_signal(signal.SIGUSR1)
    c1, n1 = counter.read()
    cpu1 = cpu_seconds(ps)
    sim1 = sum(cpu_seconds(s) for s in sims)
    hwm = peak_rss_mib(proc.pid)
    written = ps.io_counters().write_bytes - w0
    if spy is not None:
        spy.wait(30)
    time.sleep(0.5)
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        print(f"warning: {name} did not stop within 30 s of SIGTERM; killed", file=sys.stderr)
        proc.kill()
        proc.wait()
    print(log.read_text()[-1500:], file=sys.stderr)
    missed = missed_from(log)
    window_missed = missed[-1] - missed[0] if len(missed) >= 2 else -1
    return Result(name, c1 - c0, n1 - n0, cpu1 - cpu0, window_missed, hwm, sim1 - sim0, written)


# The meter: ten float32 quantities of an SDM630 in one block, so a poll is one
# request for the agent and the bare loop alike (the built-in SDM630 plan is 4 requests).
BENCH_PROFILE = """\
model: SDM630-like bench meter
source: the first ten input registers of Eastron's SDM630 map (drivers/profiles)
defaults: {register_type: input, data_type: f32}
limits: {max_registers: 80}
registers:
  voltage_l1_v: 0x0000
  voltage_l2_v: 0x0002
  voltage_l3_v: 0x0004
  current_l1_a: 0x0006
  current_l2_a: 0x0008
  current_l3_a: 0x000A
  active_power_l1_w: 0x000C
  active_power_l2_w: 0x000E
  active_power_l3_w: 0x0010
  apparent_power_l1_va: 0x0012
"""
MAX_UNITS = 200  # meters per simulated gateway (Modbus unit ids stop at 247)


def run_size(
    n: int, warmup: float, duration: float, workdir: Path, profile: Path | None = None
) -> list[Result]:
    """N meters as unit ids 1..k on as few Modbus/TCP gateways as the unit ids allow (one up
    to 200 meters): the agent and the bare loop each hold one connection per gateway."""
    gateways = -(-n // MAX_UNITS)
    ports: list[int] = []
    while len(ports) < gateways:  # distinct ports (the OS may hand one out twice)
        if (p := free_port()) not in ports:
            ports.append(p)
    per_gateway = -(-n // gateways)
    meter_file = workdir / "bench-meter.yaml"
    meter_file.write_text(BENCH_PROFILE)
    where = [(i // per_gateway, i % per_gateway + 1) for i in range(n)]  # (gateway, unit)
    with MosquittoProcess() as broker:
        rows = [(f"m{i}", f"g{g}", u, str(meter_file), "1s") for i, (g, u) in enumerate(where)]

        def config(name: str, gws: list[int]) -> Path:
            path = workdir / f"{name}-{n}.yaml"
            path.write_text(
                loopback_config(
                    "bench",
                    f"bench-{n}",
                    workdir / f"state-{n}",
                    {f"g{g}": ports[g] for g in gws},
                    [r for r, (g, _) in zip(rows, where, strict=True) if g in gws],
                    broker.url,
                )
            )
            return path

        agent_cfg = config("agent", list(range(gateways)))
        halves = [list(range(0, gateways, 2)), list(range(1, gateways, 2))]
        sim_procs = []
        for k, gws in enumerate(halves):
            if gws:
                cfg = config(f"sim{k}", gws)
                with (workdir / f"sim{k}-{n}.log").open("w") as out:
                    sim_procs.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "vatio.agent.cli", "simulate", "-c", str(cfg)],
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            cwd=ROOT,
                        )
                    )
        try:
            for p in ports:
                wait_for_port("127.0.0.1", p, 60)
        except TimeoutError:
            for k in range(len(sim_procs)):
                print((workdir / f"sim{k}-{n}.log").read_text()[-3000:], file=sys.stderr)
            raise
        sims = [psutil.Process(p.pid) for p in sim_procs]
        counter = Counter(broker.port)
        units = [sum(1 for g, _ in where if g == k) for k in range(gateways)]
        try:
            agent = measure(
                "agent",
                [sys.executable, "-m", "vatio.agent.cli", "run", "-c", str(agent_cfg)],
                counter,
                sims,
                warmup,
                duration,
                workdir / f"agent-{n}.log",
                profile.with_name(f"{profile.stem}-{n}{profile.suffix}") if profile else None,
            )
            baselines = [
                measure(
                    f"bare qos{qos}",
                    [
                        sys.executable,
                        "-m",
                        "bench.baseline_loop",
                        "--mqtt-port",
                        str(broker.port),
                        "--gateways",
                        ",".join(f"{p}:{u}" for p, u in zip(ports, units, strict=True)),
                        "--profile",
                        str(meter_file),
                        "--qos",
                        str(qos),
                    ],
                    counter,
                    sims,
                    warmup,
                    duration,
                    workdir / f"baseline-qos{qos}-{n}.log",
                )
                for qos in (1, 0)
            ]
        finally:
            counter.close()
            for p in sim_procs:
                p.terminate()
                p.wait(30)
    return [agent, *baselines]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10,100,500")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=6.0)
    ap.add_argument(
        "--py-spy",
        type=Path,
        help="record the agent with py-spy (raw collapsed stacks) to FILE-<N>.txt",
    )
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 500 meters: >1000 sockets
    print(
        f"bench/pipeline: {args.duration:g} s per run after {args.warmup:g} s warm-up, "
        f"1 Hz, ten float32 values per meter (1 request per poll); {os.cpu_count()} CPUs"
    )
    header = (
        f"{'N':>4} {'process':<9} {'delivered':>9} {'expected':>8} {'null':>5} "
        f"{'cpu s':>7} {'per cpu-s':>9} {'missed':>6} {'peak RSS':>9} {'sim cpu s':>9}"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="vatio-bench-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            results = run_size(n, args.warmup, args.duration, Path(tmp), args.py_spy)
            rows.append((n, results))
            print(header)
            for r in results:
                print(
                    f"{n:>4} {r.name:<9} {r.delivered:>9} {int(n * args.duration):>8} "
                    f"{r.nulls:>5} {r.cpu_s:>7.2f} {r.per_cpu_s:>9.0f} {r.missed:>6} "
                    f"{r.peak_rss_mib:>6.1f} MiB {r.sim_cpu_s:>9.2f}"
                )
            for r in results:
                print(
                    f"{n:>4} {r.name}: {r.written / max(1, r.delivered):,.0f} bytes written to"
                    " disk per message delivered"
                )
            agent, *bases = results
            for base in bases:
                ratio = base.per_cpu_s / agent.per_cpu_s if agent.per_cpu_s else 0.0
                print(
                    f"{n:>4} agent CPU per reading ÷ {base.name} loop's: {ratio:.2f}×"
                    f" (goal ≤ 1.1× the QoS 1 loop at 100 and 500 meters, ≤ 1.3× at 10)",
                    flush=True,
                )
            print()


if __name__ == "__main__":
    main()

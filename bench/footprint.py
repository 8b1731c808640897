"""bench/footprint: the agent's memory (RSS) and idle CPU with 0, 10 and 100 devices.

    python -m bench.footprint [--seconds 30]

For each size, ``vatio simulate`` impersonates the devices (SDM120 meters on Modbus/TCP, one
gateway per 10 meters, polled every 5 s) in its own process, a private Mosquitto takes the
MQTT output, and ``vatio run`` runs as a child process. After a 10 s warm-up, its VmRSS is
read from /proc and its CPU time is measured over ``--seconds``.

The floor, measured in the same run: a bare Python process that imports what the agent
imports (``vatio.agent.cli`` and everything it pulls in) and then sleeps. Ratio: agent RSS / floor.
Goal (issue 6): the agent with 10 devices and MQTT output under 40 MiB RSS.

Where the floor goes: the RSS of a process importing a growing list of modules (the
interpreter alone, then asyncio, paho, pymodbus, PyYAML + sqlite3, pydantic, Vatio itself).
Every process runs from compiled bytecode, as an installed agent does: the bench compiles
agent/ and drivers/ first and ignores PYTHONDONTWRITEBYTECODE (compiling at each start would
add about 1 MiB that an installed agent does not pay).
"""

from __future__ import annotations

import argparse
import compileall
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vatio.simulators.brokers import MosquittoProcess, free_port, wait_for_port
from vatio.simulators.configs import loopback_config

TICK = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def measure(pid: int, seconds: float) -> tuple[float, float]:
    time.sleep(10)  # warm-up: imports, connections, first polls
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100
    return rss_mib(pid), cpu


LAYERS = [
    ("python alone", []),
    ("+ asyncio (and ssl)", ["asyncio"]),
    ("+ paho-mqtt", ["paho.mqtt.client"]),
    ("+ pymodbus client", ["pymodbus.client"]),
    ("+ PyYAML, sqlite3", ["yaml", "sqlite3"]),
    ("+ pydantic", ["pydantic"]),
    ("+ vatio (config models, drivers, runtime)", ["vatio.agent.cli", "vatio.agent.runtime"]),
]


def layers() -> list[tuple[str, float]]:
    out, imports = [], []
    for label, modules in LAYERS:
        imports += modules
        code = f"import time{''.join(', ' + m for m in imports)}; time.sleep(60)"
        proc = subprocess.Popen([sys.executable, "-c", code])
        try:
            time.sleep(3)
            out.append((label, rss_mib(proc.pid)))
        finally:
            proc.kill()
            proc.wait()
    return out


def floor(seconds: float) -> tuple[float, float]:
    code = "import vatio.agent.cli, vatio.agent.runtime, pymodbus.client, time; time.sleep(3600)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        return measure(proc.pid, seconds)
    finally:
        proc.kill()
        proc.wait()


def agent(devices: int, seconds: float, broker: MosquittoProcess, tmp: Path) -> tuple[float, float]:
    gateways = max(1, (devices + 9) // 10)
    ports = {f"gw{g}": free_port() for g in range(gateways)}
    rows = [
        (f"m{i:03d}", f"gw{i // 10}", i % 10 + 1, "eastron_sdm120", "5s") for i in range(devices)
    ]
    if not rows:  # no device at all: one entry, disabled
        rows = [("m000", "gw0", 1, "eastron_sdm120", "5s")]
    text = loopback_config("bench", "gw", tmp / f"state{devices}", ports, rows, broker.url)
    if devices == 0:
        text = text.replace("interval: 5s}", "interval: 5s, enabled: false}")
    config = tmp / f"footprint-{devices}.yaml"
    config.write_text(text)
    sim = subprocess.Popen(
        [sys.executable, "-m", "vatio.agent.cli", "simulate", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run = None
    try:
        if devices:
            for port in ports.values():
                wait_for_port("127.0.0.1", port, 30)
        run = subprocess.Popen(
            [sys.executable, "-m", "vatio.agent.cli", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return measure(run.pid, seconds)
    finally:
        for p in (run, sim):
            if p is not None:
                p.terminate()
                p.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    root = Path(__file__).resolve().parents[1]
    for package in ("agent", "drivers", "simulators", "common"):
        compileall.compile_dir(root / package, quiet=1)
    print(f"bench/footprint: RSS after a 10 s warm-up, CPU over {args.seconds:g} s")
    before = 0.0
    for label, rss in layers():
        print(f"  {label:44s} {rss:5.1f} MiB  ({rss - before:+.1f})")
        before = rss
    floor_rss, floor_cpu = floor(args.seconds)
    print(f"  floor (python importing what the agent imports): {floor_rss:.1f} MiB, "
          f"{floor_cpu:.2f} % CPU")  # fmt: skip
    results = {}
    with MosquittoProcess() as broker, tempfile.TemporaryDirectory() as d:
        for n in (0, 10, 100):
            rss, cpu = agent(n, args.seconds, broker, Path(d))
            results[n] = rss
            print(f"  agent, {n:3d} devices every 5 s: {rss:.1f} MiB "
                  f"(ratio to floor {rss / floor_rss:.2f}), {cpu:.2f} % CPU")  # fmt: skip
    verdict = "met" if results[10] < 40 else "NOT met"
    print(f"  goal: under 40 MiB with 10 devices and MQTT: {verdict} ({results[10]:.1f} MiB)")


if __name__ == "__main__":
    main()

"""bench/startup: how long a technician waits for ``vatio check`` and ``vatio read``.

    python -m bench.startup [--rounds 15]

Each round runs, one after the other (so a busy moment on this shared machine hits them all
alike): ``python -c pass`` (the interpreter's own start, the floor), ``vatio check -c
configs/example.yaml``, and ``vatio read`` of one SDM630 served by ``vatio simulate`` on
127.0.0.1 (a poll of its whole plan over Modbus/TCP, printed as a table). Every process runs
from compiled bytecode, as an installed agent does. Printed: the median wall time of each and
its ratio to ``python -c pass``. Goal (issue 18): both commands under 0.5 s on these machines.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vatio.simulators.brokers import free_port, wait_for_port
from vatio.simulators.configs import loopback_config

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 0.5


def wall(argv: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    for package in ("agent", "drivers", "simulators", "common"):
        compileall.compile_dir(ROOT / package, quiet=1)
    vatio = [sys.executable, "-m", "vatio.agent.cli"]
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        config = Path(d) / "read.yaml"
        config.write_text(
            loopback_config(
                "bench",
                "gw",
                Path(d) / "state",
                {"line": port},
                [("m1", "line", 1, "eastron_sdm630", "1s")],
                "mqtt://127.0.0.1:1",  # never connected: check and read do not publish
            )
        )
        sim = subprocess.Popen(
            [*vatio, "simulate", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port("127.0.0.1", port, 30)
            commands = {
                "python -c pass": [sys.executable, "-c", "pass"],
                "vatio check -c configs/example.yaml": [
                    *vatio,
                    "check",
                    "-c",
                    str(ROOT / "configs" / "example.yaml"),
                ],
                "vatio read (one SDM630, Modbus/TCP)": [*vatio, "read", "-c", str(config)],
            }
            times: dict[str, list[float]] = {name: [] for name in commands}
            for argv in commands.values():
                wall(argv)  # a first run warms the page cache, as on a device in use
            for _ in range(args.rounds):
                for name, argv in commands.items():
                    times[name].append(wall(argv))
        finally:
            sim.terminate()
            sim.wait(30)
    floor = statistics.median(times["python -c pass"])
    print(f"bench/startup: median wall time of {args.rounds} rounds, side by side")
    for name, values in times.items():
        median = statistics.median(values)
        verdict = ""
        if name.startswith("vatio"):
            verdict = "  goal < 0.5 s: " + ("met" if median < GOAL_S else "NOT met")
        print(
            f"  {name:40s} {median:6.3f} s  (min {min(values):.3f}, max {max(values):.3f}; "
            f"{median / floor:5.1f}× python -c pass){verdict}"
        )


if __name__ == "__main__":
    main()

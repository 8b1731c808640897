"""bench/fleet_status: `vatio fleet-status` over 10,000 retained statuses (issue 15).

    python -m bench.fleet_status [--agents 1000] [--devices 9] [--repeat 5]

The fleet simulator publishes, retained, every agent's and device's status (default 1,000
agents × (1 + 9 devices) = 10,000 statuses, 50 agents offline, 100 devices degraded) into a
private Mosquitto. Then, each ``--repeat`` times, the best kept:

1. ``vatio fleet-status --json`` as a user runs it (a new process: interpreter start included);
2. the same in-process: :func:`read_retained` + :func:`summarise` (no interpreter start);
3. the baseline: a bare paho subscriber to ``vatio/v1/+/+/status`` that stops when it has
   counted the known number of retained messages (it knows the answer in advance; the
   command does not, and uses the second-SUBACK marker instead).

Goal: < 5 s for 10,000 statuses; the ratio command / bare subscriber is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from vatio.agent.fleetstatus import STATUS_FILTER, read_retained, summarise
from vatio.simulators.brokers import MosquittoProcess
from vatio.simulators.fleet import Fleet, publish


def bare_subscriber(port: int, expected: int, timeout: float = 60.0) -> float:
    got = 0
    done = threading.Event()
    started = time.perf_counter()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-{time.time_ns()}")

    def on_message(c: object, u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal got
        got += 1
        if got >= expected:
            done.set()

    client.on_connect = lambda c, u, f, rc, p: c.subscribe(STATUS_FILTER, qos=0)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not done.wait(timeout):
        raise TimeoutError(f"bare subscriber got {got} of {expected}")
    took = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--devices", type=int, default=9)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    fleet = Fleet(args.agents, args.devices)
    offline = frozenset(range(1, args.agents + 1, 20))
    degraded = frozenset((a, 1) for a in range(2, args.agents + 1, 10))
    statuses = list(fleet.statuses(offline, degraded))
    n = len(statuses)
    print(f"bench/fleet_status: {n:,} retained statuses ({args.agents:,} agents, "
          f"{len(offline)} offline, {len(degraded)} devices degraded)")  # fmt: skip
    with MosquittoProcess(extra_config="max_queued_messages 0\n") as broker:
        publish(broker.url, statuses)
        cli, inproc, bare = [], [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            res = subprocess.run(
                [sys.executable, "-m", "vatio.agent.cli", "fleet-status", "--url", broker.url,
                 "--json"], capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            cli.append(time.perf_counter() - t)
            agents = json.loads(res.stdout)["agents"]
            assert res.returncode == 1 and len(agents) == args.agents, res.stderr
            assert sum(a["state"] == "offline" for a in agents) == len(offline)
            t = time.perf_counter()
            rows, bad = summarise(read_retained(broker.url, timeout=60))
            inproc.append(time.perf_counter() - t)
            assert len(rows) == args.agents and bad == 0
            bare.append(bare_subscriber(broker.port, n))
    best = min(cli), min(inproc), min(bare)
    print(f"  vatio fleet-status --json (new process): {best[0]:.2f} s "
          f"(goal < 5 s: {'met' if best[0] < 5 else 'NOT met'})")  # fmt: skip
    print(f"  in-process read + summary: {best[1]:.3f} s")
    print(f"  bare paho subscriber, counting to {n:,}: {best[2]:.3f} s")
    print(f"  ratio command / bare: {best[0] / best[2]:.1f} (in-process / bare: "
          f"{best[1] / best[2]:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()

"""bench/metrics: readings per CPU-second through the metrics engine, 100 devices.

    python -m bench.metrics [--devices 100] [--seconds 600]

Feeds simulated SDM630 readings (every quantity, counters growing with power), one per
device per simulated second, through :class:`vatio.agent.metrics.engine.MetricsEngine`, and the
same readings through a bare loop that only copies them (the baseline), side by side. Then
it states what share of the agent's CPU the engine would take at 500 meters × 1 Hz, using
the agent's own cost per reading measured by bench/pipeline (pass --agent-cpu-per-reading).
"""

from __future__ import annotations

import argparse
import time

from vatio.agent.config import DeviceMetricsConfig, MetricsConfig
from vatio.agent.metrics.engine import MetricsEngine
from vatio.drivers.modbus.profile import load_profile
from vatio.drivers.reading import PollResult
from vatio.simulators.modbus_server import SimulatedMeter

T0 = 1_780_000_000.0


def readings(devices: int, seconds: int) -> list[PollResult]:
    profile = load_profile("eastron_sdm630")
    meters = [SimulatedMeter(1, profile, seed=i, clock=lambda: T0) for i in range(devices)]
    out = []
    for s in range(seconds):
        for i, m in enumerate(meters):
            out.append(PollResult(f"m{i}", T0 + s, dict(m.values_at(T0 + s))))
    return out


def cpu(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument(
        "--agent-cpu-per-reading",
        type=float,
        default=33.06 / 30084,
        help="agent CPU-seconds per reading at 500 meters (bench/pipeline)",
    )
    args = ap.parse_args()
    data = readings(args.devices, args.seconds)
    engine = MetricsEngine(
        MetricsConfig(), {f"m{i}": DeviceMetricsConfig() for i in range(args.devices)}
    )
    sink: list[PollResult] = []

    def bare() -> None:
        for r in data:
            sink.append(PollResult(r.device, r.ts, dict(r.values)))

    def through_engine() -> None:
        for r in data:
            engine.observe(r)

    base_s = cpu(bare)
    engine_s = cpu(through_engine)
    n = len(data)
    print(f"bench/metrics: {args.devices} devices × {args.seconds} s = {n} readings")
    print(f"  bare copy loop : {n / base_s:>10.0f} readings per CPU-second")
    print(
        f"  metrics engine : {n / engine_s:>10.0f} readings per CPU-second "
        f"({engine_s / n * 1e6:.1f} µs per reading)"
    )
    print(f"  ratio engine/baseline (readings per CPU-second): {base_s / engine_s:.3f}")
    share = (engine_s / n) / (args.agent_cpu_per_reading + engine_s / n)
    print(
        f"  at 500 meters × 1 Hz the engine would take {share:.1%} of the agent's CPU "
        f"(goal < 20 %), with the agent at {args.agent_cpu_per_reading * 1e6:.0f} µs per "
        "reading (bench/pipeline)"
    )


if __name__ == "__main__":
    main()

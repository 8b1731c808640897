"""bench/ingest: points per second from Mosquitto into VictoriaMetrics through `vatio ingest`.

    python -m bench.ingest [--agents 1000] [--devices 10] [--rounds 10] [--protocol 5]

For one bridge, then for two bridges sharing a subscription, in one run:

1. the bridges' persistent sessions are made (each bridge starts once, subscribes, stops);
2. the fleet simulator publishes agents × devices × rounds telemetry messages (default
   100,000), which Mosquitto queues for the offline sessions;
3. the bridges start (``vatio ingest``, separate processes) and the clock runs until
   VictoriaMetrics has inserted every sample (``vm_rows_inserted_total``); then the distinct
   points are counted (export) to show nothing was lost.

A point is one line (one message: 8 values + seq, so 9 samples in VictoriaMetrics). The
baseline, measured in the same run, is influxdb-client writing the same points, pre-built as
line protocol, straight to VictoriaMetrics: the ceiling a bridge could reach if MQTT cost
nothing. Ratios: two bridges / one bridge (goal ≥ 1.8) and one bridge / the baseline.
Goal (issue 5): ≥ 100k points/s for one bridge.

    python -m bench.ingest --completeness [--agents 1000] [--devices 10] [--rounds 10]

Completeness tracking on vs off (issue 15): one bridge into InfluxDB 1.6 (completeness needs
InfluxQL, so not VictoriaMetrics), same queued fleet, ``fleet.completeness`` true (with a pass
every second, so passes run during the drain) and false, alternated, each ``--repeat`` times;
the best of each. Goal: on ≥ 0.9 × off.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from vatio.agent.config import InfluxConfig
from vatio.agent.influx import make_writer
from vatio.agent.ingest.completeness import CompletenessTracker, InfluxQL
from vatio.agent.ingest.lineproto import Converter, to_line
from vatio.simulators.brokers import MosquittoProcess, free_port
from vatio.simulators.databases import InfluxdProcess, VictoriaMetricsProcess
from vatio.simulators.fleet import Fleet, publish

SAMPLES_PER_POINT = 9  # 8 values + seq


def rows_inserted(vm: VictoriaMetricsProcess) -> int:
    with urllib.request.urlopen(f"{vm.url}/metrics", timeout=10) as r:
        for raw in r:
            line = raw.decode()
            if line.startswith('vm_rows_inserted_total{type="influx"}'):
                return int(float(line.split()[-1]))
    return 0


def bridge(config: Path, client_id: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vatio.agent.cli",
            "ingest",
            "-c",
            str(config),
            "--client-id",
            client_id,
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_connected(log: Path, times: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text().count("connected to MQTT broker") < times:
        if time.monotonic() > deadline:
            raise TimeoutError(f"bridge did not connect; see {log}")
        time.sleep(0.1)


def run_bridges(n: int, fleet: Fleet, rounds: int, protocol: str, tmp: Path) -> tuple[float, int]:
    """Seconds from the bridges' start until every sample is in, and the distinct points."""
    # the shipped broker's limits (configs/mosquitto/vatio.conf): 3.1.1 bridges get this window
    with (
        MosquittoProcess(
            extra_config="max_queued_messages 0\nmax_inflight_messages 10000\n"
        ) as broker,
        VictoriaMetricsProcess() as vm,
    ):
        config = tmp / f"ingest-{n}.yaml"
        config.write_text(
            f"mqtt:\n  url: {broker.url}\n  group: bench\n  protocol: '{protocol}'\n"
            f"influxdb:\n  url: {vm.url}\n  api: v2\n  batch_size: 5000\n"
            "  flush_interval: 200ms\n"
        )
        logs = [tmp / f"bridge-{n}-{i}.log" for i in range(n)]
        first = [bridge(config, f"bench-{i}", logs[i]) for i in range(n)]
        for log in logs:
            wait_connected(log, 1)
        for p in first:
            p.terminate()
            p.wait(20)
        total = fleet.per_round * rounds
        t = time.perf_counter()
        publish(broker.url, fleet.messages(rounds), connections=2)
        print(f"  ({n} bridge(s)) queued {total:,} messages in {time.perf_counter() - t:.1f} s")
        target = total * SAMPLES_PER_POINT
        started = time.perf_counter()
        procs = [bridge(config, f"bench-{i}", logs[i]) for i in range(n)]
        try:
            while rows_inserted(vm) < target:
                if time.perf_counter() - started > 600:
                    raise TimeoutError(f"only {rows_inserted(vm):,} of {target:,} samples")
                time.sleep(0.05)
            took = time.perf_counter() - started
        finally:
            for p in procs:
                p.terminate()
                p.wait(30)
        return took, vm.count("telemetry_seq")


def points_written(port: int) -> int:
    """The bridge's own count (its /metrics): polling InfluxDB with count() over 10,000
    series would load the database the bridge is writing to."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            for raw in r:
                if raw.startswith(b"vatio_ingest_points_total "):
                    return int(float(raw.split()[-1]))
    except OSError:
        pass  # not listening yet
    return 0


def run_completeness(
    fleet: Fleet, rounds: int, tmp: Path, on: bool, run: int, interval: str
) -> float:
    """Seconds for one bridge to drain the queued fleet into InfluxDB 1.6."""
    total = fleet.per_round * rounds
    with (
        MosquittoProcess(
            extra_config="max_queued_messages 0\nmax_inflight_messages 10000\n"
        ) as broker,
        InfluxdProcess() as influx,
    ):
        config = tmp / f"ingest-c{run}.yaml"
        http = free_port()
        config.write_text(
            f"mqtt:\n  url: {broker.url}\n  group: bench\n  protocol: '5'\n"
            f"influxdb:\n  url: {influx.url}\n  api: v1\n  database: bench\n"
            "  batch_size: 5000\n  flush_interval: 200ms\n"
            f"fleet:\n  completeness: {str(on).lower()}\n  interval: {interval}\n"
            f"http: {{listen: 127.0.0.1:{http}}}\n"
        )
        log = tmp / f"bridge-c{run}.log"
        first = bridge(config, "bench-c", log)
        wait_connected(log, 1)
        first.terminate()
        first.wait(20)
        publish(broker.url, fleet.messages(rounds), connections=2)
        started = time.perf_counter()
        proc = bridge(config, "bench-c", log)
        try:
            while points_written(http) < total:
                if time.perf_counter() - started > 600:
                    raise TimeoutError("the bridge did not write every point in 600 s")
                time.sleep(0.2)
            took = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(30)
        if influx.count("bench", "telemetry", "seq") != total:
            raise AssertionError("points missing in InfluxDB")
        if on:
            passes = influx.count("bench", "completeness", "received")
            print(f"    (completeness points written, last pass at stop included: {passes:,})")
        return took


def pass_cost(fleet: Fleet, rounds: int) -> None:
    """One completeness pass over the whole fleet's hour (every device touched), timed:
    what a bridge spends every ``fleet.interval`` on a fleet this size."""
    with InfluxdProcess() as influx:
        cfg = InfluxConfig(url=influx.url, api="v1", database="bench")
        writer = make_writer(cfg)
        conv = Converter()
        conv.observed = []
        lines = [line for t, p in fleet.messages(rounds) if (line := conv.to_line(t, p))]
        for i in range(0, len(lines), 5000):
            writer.write(lines[i : i + 5000])
        tracker = CompletenessTracker("bench")
        tracker.record(conv.observed, int(time.time() * 1000))
        db = InfluxQL(cfg)
        for label in ("first pass (creates the series)", "next pass"):
            started = time.perf_counter()
            written = tracker.run_pass(db, writer.write)
            took = time.perf_counter() - started
            print(f"  {label}: {took:.2f} s for {fleet.per_round:,} devices "
                  f"({written:,} completeness points + arrivals + last seen)")  # fmt: skip
            tracker.record(conv.observed[:1], int(time.time() * 1000))  # touch the hour again


def completeness_main(fleet: Fleet, rounds: int, repeat: int, interval: str) -> None:
    total = fleet.per_round * rounds
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="vatio-bench-ingest-") as d:
        for run in range(repeat * 2):
            on = run % 2 == 1
            took = run_completeness(fleet, rounds, Path(d), on, run, interval)
            times[on].append(took)
            print(f"  completeness {'on ' if on else 'off'}: {total / took:,.0f} points/s "
                  f"({took:.2f} s)")  # fmt: skip
    off, on_ = min(times[False]), min(times[True])
    ratio = off / on_
    print(f"  best: off {total / off:,.0f} points/s, on {total / on_:,.0f} points/s")
    print(f"  ratio on / off: {ratio:.2f} (goal ≥ 0.9: {'met' if ratio >= 0.9 else 'NOT met'})")
    pass_cost(fleet, rounds)


def baseline(fleet: Fleet, rounds: int) -> float:
    """Seconds for influxdb-client to write the same points, pre-built, in batches of 5000."""
    lines = [line for t, p in fleet.messages(rounds) if (line := to_line(t, p))]
    with VictoriaMetricsProcess() as vm:
        writer = make_writer(InfluxConfig(url=vm.url, api="v2"))
        started = time.perf_counter()
        for i in range(0, len(lines), 5000):
            writer.write(lines[i : i + 5000])
        took = time.perf_counter() - started
        writer.close()
        assert vm.count("telemetry_seq") == len(lines)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    ap.add_argument("--completeness", action="store_true", help="completeness on vs off")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each (--completeness)")
    ap.add_argument("--interval", default="30s", help="fleet.interval (--completeness)")
    args = ap.parse_args()
    fleet = Fleet(args.agents, args.devices)
    if args.completeness:
        print(f"bench/ingest --completeness: {fleet.per_round * args.rounds:,} points, one "
              "bridge, InfluxDB 1.6")  # fmt: skip
        completeness_main(fleet, args.rounds, args.repeat, args.interval)
        return
    total = fleet.per_round * args.rounds
    print(
        f"bench/ingest: {args.agents} agents × {args.devices} devices × {args.rounds} rounds = "
        f"{total:,} points ({total * SAMPLES_PER_POINT:,} samples), MQTT {args.protocol}"
    )
    with tempfile.TemporaryDirectory(prefix="vatio-bench-ingest-") as d:
        tmp = Path(d)
        t_base = baseline(fleet, args.rounds)
        t1, n1 = run_bridges(1, fleet, args.rounds, args.protocol, tmp)
        t2, n2 = run_bridges(2, fleet, args.rounds, args.protocol, tmp)
    for label, took, n in (("one bridge", t1, n1), ("two bridges", t2, n2)):
        print(
            f"  {label}: {total / took:,.0f} points/s ({total * SAMPLES_PER_POINT / took:,.0f} "
            f"samples/s), {took:.1f} s; distinct points in the database {n:,} of {total:,}"
        )
    print(
        f"  baseline, influxdb-client straight to VictoriaMetrics: {total / t_base:,.0f} points/s"
    )
    print(f"  ratio two bridges / one: {t1 / t2:.2f} (goal ≥ 1.8)")
    print(f"  ratio one bridge / baseline: {t_base / t1:.2f}")
    verdict = "met" if total / t1 >= 100_000 else "NOT met"
    print(f"  goal ≥ 100k points/s for one bridge: {verdict}")


if __name__ == "__main__":
    main()

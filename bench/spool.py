"""bench/spool: the disk spool's throughput, and draining an hour of backlog after an outage.

    python -m bench.spool [--meters 100] [--seconds 3600] [--live-rate 100]

1. In: messages per second through ``put`` + batched ``commit`` (durability full), and the
   bytes written to disk per message (``/proc/self/io`` write_bytes).
2. Drain: a spool pre-filled with meters × seconds telemetry-sized messages (one hour of 100
   meters at 1 Hz = 360,000) is published by the agent's MQTT output to a private Mosquitto
   while live messages keep arriving at ``--live-rate`` per second; it reports the time until
   the backlog is empty and how many live messages were acknowledged meanwhile.
3. Baseline, in the same run: the same number of messages published by a bare paho client
   (QoS 1, the same in-flight window) with no spool. The ratio is baseline time / drain time.
Goal (issue 5): the hour of backlog drains within 2 minutes while live data flows.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from vatio.agent.config import MqttOutputConfig
from vatio.agent.messages import Message
from vatio.agent.outputs.mqtt import MqttOutput
from vatio.agent.spool import Spool
from vatio.simulators.brokers import MosquittoProcess

PAYLOAD = (
    b'{"ts":"2026-11-23T15:18:19.001Z","seq":42,"site":"planta-norte","device":"m001",'
    b'"values":{"voltage_v":128.24,"current_a":12.5,"active_power_w":1482.1,'
    b'"apparent_power_va":1590.3,"reactive_power_var":577.2,"power_factor":0.93,'
    b'"frequency_hz":60.01,"energy_import_kwh":10378.341,"energy_export_kwh":0.0,'
    b'"reactive_energy_import_kvarh":4670.2}}'
)


def disk_writes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


async def fill(spool: Spool, meters: int, seconds: int, batch: int) -> tuple[float, int]:
    written = disk_writes()
    start = time.perf_counter()
    for n in range(1, meters * seconds + 1):
        spool.put(Message(f"vatio/v1/bench/m{n % meters:03d}/telemetry", PAYLOAD))
        if n % batch == 0:
            await spool.commit()
    await spool.commit()
    return time.perf_counter() - start, disk_writes() - written


async def steady(path: Path, per_commit: int, commits: int, late: int = 0) -> tuple[float, int]:
    """The agent's steady state with the broker up: messages are published as they are put,
    most PUBACKs arrive before the next commit (those messages are never written), ``late``
    of each batch are acknowledged only after it (written, then deleted by the next
    commit). Returns (seconds, bytes written)."""
    spool = Spool(path, durability="full")
    written = disk_writes()
    start = time.perf_counter()
    previous: list[int] = []
    for _ in range(commits):
        ids = [
            spool.put(Message("vatio/v1/bench/m001/telemetry", PAYLOAD)) for _ in range(per_commit)
        ]
        for i in ids[: per_commit - late]:
            spool.ack(i)
        await spool.commit()
        for i in previous:
            spool.ack(i)
        previous = ids[per_commit - late :]
    elapsed = time.perf_counter() - start
    await spool.close()
    return elapsed, disk_writes() - written


async def delete_all(spool: Spool, per_commit: int, limit: int = 20_000) -> int:
    """Acknowledge the first ``limit`` stored messages the way a drain does (a commit every
    ``per_commit`` acks); returns how many."""
    rows = await spool.read(0, spool.next_id, limit)
    for n, (i, _) in enumerate(rows, start=1):
        spool.ack(i)
        if n % per_commit == 0:
            await spool.commit()
    await spool.commit()
    return len(rows)


async def refill(spool: Spool, n: int) -> None:
    """Top the backlog up to ``n`` messages again for the drain."""
    while spool.stored < n:
        for _ in range(min(5000, n - spool.stored)):
            spool.put(Message("vatio/v1/bench/m000/telemetry", PAYLOAD))
        await spool.commit()


def steady_baseline(path: Path, per_commit: int, commits: int) -> tuple[float, int]:
    """The least a durable spool can write: an append-only journal, each batch and the ids
    acknowledged since the last one appended and fsynced once (no reads, no compaction)."""
    import os

    written = disk_writes()
    start = time.perf_counter()
    with open(path, "ab", buffering=0) as f:
        for n in range(commits):
            acks = b"".join(i.to_bytes(8, "little") for i in range(per_commit))
            f.write(PAYLOAD * per_commit + acks if n else PAYLOAD * per_commit)
            os.fsync(f.fileno())
    return time.perf_counter() - start, disk_writes() - written


async def drain(
    spool: Spool, port: int, live_rate: float, drain_rate: float
) -> tuple[float, int, int]:
    cfg = MqttOutputConfig(url=f"mqtt://127.0.0.1:{port}", max_inflight=100, drain_rate=drain_rate)
    online = Message("vatio/v1/bench/gw/status", b'{"state":"online"}', retain=True)
    offline = Message("vatio/v1/bench/gw/status", b'{"state":"offline"}', retain=True)
    out = MqttOutput(cfg, spool, "bench-spool", lambda: online, lambda: offline)
    backlog = spool.stored
    task = asyncio.create_task(out.run())
    live_sent = 0
    start = time.perf_counter()
    # done when only the last moments of live data are still unacknowledged
    while spool.backlog > live_rate:
        await asyncio.sleep(1 / live_rate)
        out.submit(Message("vatio/v1/bench/live/telemetry", PAYLOAD))
        live_sent += 1
        if time.perf_counter() - start > 600:
            break
    elapsed = time.perf_counter() - start
    published = out.stats.published
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return elapsed, live_sent, published - backlog


def baseline(port: int, n: int) -> float:
    # paho numbers messages 1..65535: a queue longer than that would reuse a waiting number
    # and silently replace a message, so at most 5000 wait in paho (100 of them in flight)
    window = threading.Semaphore(5000)
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=MQTTProtocolVersion.MQTTv5
    )
    c.max_inflight_messages_set(100)
    c.max_queued_messages_set(0)
    c.on_publish = lambda *_: window.release()
    c.connect("127.0.0.1", port)
    c.loop_start()
    start = time.perf_counter()
    for i in range(n):
        window.acquire()
        c.publish(f"vatio/v1/bench/m{i % 100:03d}/telemetry", PAYLOAD, qos=1)
    for _ in range(5000):
        window.acquire()  # every slot back: every message acknowledged
    elapsed = time.perf_counter() - start
    c.loop_stop()
    c.disconnect()
    return elapsed


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--meters", type=int, default=100)
    p.add_argument("--seconds", type=int, default=3600)
    p.add_argument("--live-rate", type=float, default=100.0)
    p.add_argument(
        "--drain-rate",
        type=float,
        default=5000.0,
        help="outputs.mqtt.drain_rate (default 5000, the config's): a cap, not the ceiling",
    )
    args = p.parse_args()
    n = args.meters * args.seconds
    with tempfile.TemporaryDirectory(prefix="vatio-bench-spool-") as d:
        spool = Spool(Path(d) / "spool.sqlite", max_bytes=2**31, durability="full")
        # one commit per 0.2 s at 100 meters × 1 Hz = 20 messages per commit
        live_batch = max(1, args.meters // 5)
        small = min(n, 20_000)
        t_small, w_small = await fill(spool, args.meters, small // args.meters, live_batch)
        print(f"bench/spool: {len(PAYLOAD)}-byte messages, durability full")
        print(
            f"  in, {live_batch} per commit (the agent's cadence at {args.meters} meters × 1 Hz):"
            f" {small / t_small:,.0f} msg/s, {w_small / small:,.0f} bytes written per message"
        )
        t_big, w_big = await fill(spool, args.meters, args.seconds - small // args.meters, 5000)
        print(
            f"  in, 5000 per commit: {(n - small) / t_big:,.0f} msg/s,"
            f" {w_big / max(1, n - small):,.0f} bytes written per message"
        )
        print(f"  backlog: {spool.stored:,} messages ({spool.bytes / 2**20:.0f} MiB payload)")
        commits = 2000
        m = live_batch * commits
        t_jr, w_jr = steady_baseline(Path(d) / "journal.bin", live_batch, commits)
        for late, what in (
            (0, "every PUBACK before the commit"),
            (1, "one per commit after it"),
            (live_batch, "every PUBACK after the commit (the old path)"),
        ):
            t_st, w_st = await steady(Path(d) / f"steady{late}.sqlite", live_batch, commits, late)
            print(
                f"  broker up, {what}: {m / t_st:,.0f} msg/s,"
                f" {w_st / m:,.0f} bytes written per message"
            )
        print(
            f"  baseline append-only journal + fsync (no deletes): {m / t_jr:,.0f} msg/s,"
            f" {w_jr / m:,.0f} bytes per message"
        )
        w_del = disk_writes()
        drained = await delete_all(spool, live_batch)
        print(
            f"  outage: written {w_small / small:,.0f} bytes per message in, and"
            f" {(disk_writes() - w_del) / max(1, drained):,.0f} per message to delete it"
            f" once acknowledged ({len(PAYLOAD)}-byte payload)"
        )
        await refill(spool, n)
        with MosquittoProcess() as broker:
            t_drain, live, live_acked = await drain(
                spool, broker.port, args.live_rate, args.drain_rate
            )
            t_bare = baseline(broker.port, n)
        await spool.close()
    print(f"  drain_rate {args.drain_rate:g} msg/s")
    print(
        f"  drain with the spool: {n:,} in {t_drain:.1f} s ({n / t_drain:,.0f} msg/s) while "
        f"{live} live messages were submitted ({live_acked} acknowledged meanwhile)"
    )
    print(f"  baseline, bare paho, no spool: {n:,} in {t_bare:.1f} s ({n / t_bare:,.0f} msg/s)")
    print(f"  ratio baseline/spool time: {t_bare / t_drain:.2f}")
    verdict = "met" if t_drain <= 120 else "NOT met"
    print(f"  goal: drain one hour of backlog within 120 s: {verdict} ({t_drain:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())

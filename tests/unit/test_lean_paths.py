"""Issue 18's lean paths: a message acknowledged before its commit never reaches the disk,
a full disk is noticed without writing, PUBACKs cross threads in batches, and the RTU
silence ends on time."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from vatio.agent.messages import Message
from vatio.agent.mqttconn import Connection
from vatio.agent.spool import Spool
from vatio.drivers.modbus.transport import wait_until


def msg(i: int) -> Message:
    return Message("vatio/v1/s/d/telemetry", f"{i:010d}".encode())


def rows_on_disk(path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT count(*) FROM q").fetchone()[0])
    finally:
        db.close()


async def test_acknowledged_before_its_commit_a_message_is_never_written(tmp_path):
    spool = Spool(tmp_path / "spool.sqlite")
    early = [spool.put(msg(i)) for i in range(5)]
    late = spool.put(msg(5))
    for i in early:
        spool.ack(i)
    assert spool.unsaved == 1 and spool.backlog == 1
    await spool.commit()
    assert rows_on_disk(tmp_path / "spool.sqlite") == 1  # only the unacknowledged one
    assert [i for i, _ in await spool.read(0, spool.next_id, 10)] == [late]
    spool.ack(late)
    await spool.commit()
    assert rows_on_disk(tmp_path / "spool.sqlite") == 0 and spool.backlog == 0
    await spool.close()
    again = Spool(tmp_path / "spool.sqlite")
    assert again.next_id > late  # the written one's id is never reused
    await again.close()


async def test_uncommitted_messages_are_read_as_backlog(tmp_path):
    spool = Spool(tmp_path / "spool.sqlite")
    await spool.commit()
    first = spool.put(msg(1))
    await spool.commit()
    second = spool.put(msg(2))  # not committed: a reconnect must still find it
    got = [i for i, _ in await spool.read(0, spool.next_id, 10)]
    assert got == [first, second]
    await spool.close()


async def test_an_acknowledgement_during_the_commit_deletes_the_row_afterwards(tmp_path):
    spool = Spool(tmp_path / "spool.sqlite")
    ids = [spool.put(msg(i)) for i in range(3)]
    commit = asyncio.create_task(spool.commit())
    await asyncio.sleep(0)  # the commit took the batch and is writing it
    spool.ack(ids[0])
    await commit
    assert rows_on_disk(tmp_path / "spool.sqlite") == 3
    await spool.commit()
    assert rows_on_disk(tmp_path / "spool.sqlite") == 2
    assert [i for i, _ in await spool.read(0, spool.next_id, 10)] == ids[1:]
    await spool.close()


@pytest.mark.parametrize(
    ("flag", "free_blocks", "said"), [(0, 0, "is full"), (os.ST_RDONLY, 1000, "read-only")]
)
async def test_a_full_or_read_only_disk_is_noticed_with_nothing_to_write(
    tmp_path, monkeypatch, flag, free_blocks, said
):
    spool = Spool(tmp_path / "spool.sqlite")
    spool.watch_disk()
    assert not spool.failing  # a real directory with room
    fake = SimpleNamespace(f_flag=flag, f_bfree=free_blocks, f_bavail=free_blocks, f_frsize=4096)
    monkeypatch.setattr(os, "statvfs", lambda _: fake)
    spool._watch_at = 0.0  # the next look is due
    spool.watch_disk()
    assert spool.failing and said in spool.health.problem
    monkeypatch.undo()
    # nothing to write: the next commit probes the directory, finds it writable, heals
    spool._retry_at = 0.0
    await spool.commit()
    assert not spool.failing and not spool.health.failing
    await spool.close()


async def test_pubacks_from_the_network_thread_arrive_in_order_in_few_hops():
    loop = asyncio.get_running_loop()
    got: list[list[tuple[object, ...]]] = []
    relay = Connection.on_thread_batched(SimpleNamespace(loop=loop), got.append)  # type: ignore[arg-type]

    def paho_thread() -> None:
        for mid in range(1, 1001):
            relay(None, None, mid, 0, None)

    t = threading.Thread(target=paho_thread)
    t.start()
    t.join()
    for _ in range(10):
        await asyncio.sleep(0)
    mids = [args[2] for batch in got for args in batch]
    assert mids == list(range(1, 1001))
    assert len(got) < 1000  # the loop was blocked while the thread ran: one hop, one batch


async def test_pubacks_one_by_one_wait_for_the_loop_and_a_flood_hops_once_a_quarter():
    """At 100 meters a PUBACK comes alone every 10 ms: a hop each cost more than the
    acknowledgement. They wait for the loop's flush (before each spool commit), and the
    network thread hops only once a quarter of the in-flight window waits."""
    loop = asyncio.get_running_loop()
    got: list[list[tuple[object, ...]]] = []
    relay = Connection.on_thread_batched(SimpleNamespace(loop=loop), got.append, hop_at=4)  # type: ignore[arg-type]
    for mid in range(1, 4):  # three alone: no hop
        await asyncio.to_thread(relay, None, None, mid, 0, None)
    await asyncio.sleep(0.05)
    assert relay.hops == 0 and got == []
    relay.flush()  # what the output does before a commit
    assert [a[2] for b in got for a in b] == [1, 2, 3]

    def flood() -> None:
        for mid in range(4, 14):
            relay(None, None, mid, 0, None)

    await asyncio.to_thread(flood)
    await asyncio.sleep(0.05)
    assert 1 <= relay.hops <= 2  # one hop per quarter-window waiting, not one per call
    relay(None, None, 14, 0, None)
    relay.flush()
    assert [a[2] for b in got for a in b] == list(range(1, 15))


async def test_the_rtu_silence_ends_at_its_deadline_not_a_millisecond_late():
    lateness = []
    for _ in range(20):
        deadline = time.monotonic() + 0.0025
        await wait_until(deadline)
        lateness.append(time.monotonic() - deadline)
    assert min(lateness) >= 0  # never early: the line must stay silent for t3.5
    # a spin ends within microseconds; the loop's timers alone end up to ~1 ms late
    assert sorted(lateness)[len(lateness) // 2] < 0.0005

"""The disk spool: order, acknowledgements, bounds, ids never reused, crash safety, errors."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from tests.smalldisk import small_disk
from vatio.agent.messages import Message
from vatio.agent.spool import Spool, SpoolError
from vatio.agent.spoolcodec import pack, unpack


def msg(i: int, size: int = 10) -> Message:
    return Message("vatio/v1/s/d/telemetry", f"{i:0{size}d}".encode())


async def test_messages_are_stored_in_order_and_leave_when_acknowledged(tmp_path):
    spool = Spool(tmp_path / "spool.sqlite")
    ids = [spool.put(msg(i)) for i in range(5)]
    assert spool.backlog == 5 and spool.unsaved == 5
    result = await spool.commit()
    assert [i for i, _ in result.stored] == ids  # handed to the publisher after the commit
    assert spool.unsaved == 0
    spool.ack(ids[1])
    spool.ack(ids[3])
    await spool.commit()
    rows = await spool.read(0, spool.next_id, 100)
    assert [m.payload for _, m in rows] == [msg(i).payload for i in (0, 2, 4)]
    # bytes as stored: deflated where that is shorter (spoolcodec)
    assert spool.stored == 3 and spool.bytes == sum(len(pack(msg(i).payload)) for i in (0, 2, 4))
    await spool.close()


async def test_ids_are_never_reused_after_the_spool_emptied(tmp_path):
    spool = Spool(tmp_path / "spool.sqlite")
    first = spool.put(msg(1))
    await spool.commit()
    spool.ack(first)
    await spool.commit()
    await spool.close()
    again = Spool(tmp_path / "spool.sqlite")
    assert again.stored == 0 and again.next_id == first + 1
    await again.close()


async def test_the_oldest_are_dropped_and_counted_when_full(tmp_path):
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=1000)
    for i in range(250):  # 2500 bytes
        spool.put(msg(i))
    result = await spool.commit()
    assert spool.bytes <= 1000 and result.dropped == spool.dropped == 250 - spool.stored
    rows = await spool.read(0, spool.next_id, 1000)
    assert rows[-1][1].payload == msg(249).payload  # the newest survive
    assert [i for i, _ in result.stored] == [i for i, _ in rows]
    await spool.close()


async def test_messages_older_than_max_age_are_dropped(tmp_path, monkeypatch):
    spool = Spool(tmp_path / "spool.sqlite", max_age_s=60)
    spool.put(msg(1))
    await spool.commit()
    real = time.time
    monkeypatch.setattr("vatio.agent.spool.time.time", lambda: real() + 120)
    spool.put(msg(2))
    result = await spool.commit()
    assert result.dropped == 1 and spool.stored == 1
    await spool.close()


def test_an_unwritable_spool_path_is_a_clear_error(tmp_path):
    (tmp_path / "afile").write_text("")  # nobody, root included, can create a file under it
    with pytest.raises(SpoolError, match=r"set spool\.path to a writable place"):
        Spool(tmp_path / "afile" / "spool.sqlite")


@pytest.fixture
def disk(tmp_path):
    yield from small_disk(tmp_path, 1024)


async def test_a_full_disk_mid_commit_leaves_the_spool_as_before_and_it_heals(disk, caplog):
    """Issue 12: in autocommit mode a failed batch left half of itself on disk and every later
    commit failed on ``UNIQUE constraint failed``. Real files on a real full filesystem."""
    path = disk.path / "spool.sqlite"
    spool = Spool(path, max_bytes=50 * 2**20)
    handed: list[int] = []
    n = 0
    for _ in range(3):  # some go to disk normally
        for _ in range(100):
            n += 1
            spool.put(msg(n, 200))
        handed += [i for i, _ in (await spool.commit()).stored]
    assert spool.stored == 300 and not spool.failing
    disk.fill()
    failed_at = None
    for round_ in range(40):  # a batch of 100 × 200 bytes no longer fits
        for _ in range(100):
            n += 1
            spool.put(msg(n, 200))
        result = await spool.commit()
        handed += [i for i, _ in result.stored]  # held in memory, handed over all the same
        if not result.on_disk:
            failed_at = round_
            break
        assert failed_at is None
    assert failed_at is not None, "the disk never filled"
    # rolled back whole: what is on disk is exactly what the spool counts, nothing half-written
    db = sqlite3.connect(path)
    on_disk = db.execute("SELECT count(*) FROM q").fetchone()[0]
    db.close()
    assert on_disk == spool.stored
    assert spool.held == 100 and spool.failing
    spool.RETRY_S = spool._retry_at = 0.0  # retry at once (the agent waits 5 s in between)
    for _ in range(3):  # still full: more batches are held, nothing raises
        for _ in range(10):
            n += 1
            spool.put(msg(n, 200))
        handed += [i for i, _ in (await spool.commit()).stored]
    assert spool.held == 130
    disk.free()
    result = await spool.commit()
    assert result.on_disk and spool.held == 0 and not spool.failing
    rows = await spool.read(0, spool.next_id, 100_000)
    payloads = [m.payload for _, m in rows]
    assert payloads == [msg(i, 200).payload for i in range(1, n + 1)]  # all, once, in order
    assert [i for i, _ in rows] == handed  # each handed to the publisher exactly once
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is full" in m for m in messages) == 1  # said once, however many attempts
    assert sum("takes writes again" in m for m in messages) == 1
    for i in handed:  # acknowledgements after the episode delete from the disk as usual
        spool.ack(i)
    await spool.commit()
    assert spool.stored == 0 and spool.backlog == 0
    await spool.close()
    print(f"messages tried {n}, lost {n - len(payloads)}")


async def test_messages_held_in_memory_are_read_as_backlog_and_acknowledged(disk):
    """While the disk refuses, a reconnecting publisher reads the held messages as backlog."""
    path = disk.path / "spool.sqlite"
    spool = Spool(path)
    first = spool.put(msg(1))
    await spool.commit()
    disk.fill()
    spool.RETRY_S = spool._retry_at = 0.0
    held = [spool.put(msg(i, 2000)) for i in range(2, 300)]
    result = await spool.commit()
    assert not result.on_disk and [i for i, _ in result.stored] == held
    rows = await spool.read(0, spool.committed_below, 1000)
    assert [i for i, _ in rows] == [first, *held]
    for i in held[:100]:
        spool.ack(i)
    assert spool.held == len(held) - 100 and spool.backlog == 1 + len(held) - 100
    disk.free()
    assert (await spool.commit()).on_disk
    assert spool.stored == 1 + len(held) - 100 and spool.held == 0
    await spool.close()


async def test_held_messages_are_bounded_in_memory_oldest_dropped_and_counted(disk):
    spool = Spool(disk.path / "spool.sqlite", max_held_bytes=10_000)
    disk.fill()
    for i in range(300):  # 30,000 bytes in 10 commits, 10,000 may be held
        spool.put(msg(i, 100))
        if i % 30 == 29:
            spool._retry_at = 0.0
            await spool.commit()
    assert spool.held == 100 and spool.dropped == 200
    rows = await spool.read(0, spool.next_id, 1000)
    assert [m.payload for _, m in rows] == [msg(i, 100).payload for i in range(200, 300)]
    await spool.close()


async def test_a_spool_on_a_read_only_disk_starts_and_writes_once_it_can(disk):
    path = disk.path / "spool.sqlite"
    before = Spool(path)
    last = before.put(msg(1))
    await before.commit()
    await before.close()
    disk.read_only()
    spool = Spool(path)  # no exception: the disk is in a state, not the config wrong
    assert spool.failing and spool.next_id == last + 1  # ids stay above the file's
    new = spool.put(msg(2))
    assert not (await spool.commit()).on_disk
    disk.read_only(False)
    spool._retry_at = 0.0
    assert (await spool.commit()).on_disk
    rows = await spool.read(0, spool.next_id, 10)
    assert [i for i, _ in rows] == [last, new]
    await spool.close()


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from vatio.agent.messages import Message
    from vatio.agent.spool import Spool

    async def main():
        spool = Spool(Path(sys.argv[1]))
        n = 0
        while True:
            for _ in range(50):
                n += 1
                spool.put(Message("t", str(n).encode()))
            await spool.commit()
            print(n, flush=True)  # committed up to n

    asyncio.run(main())
    """
)


async def test_sigkill_loses_nothing_committed_and_never_corrupts(tmp_path):
    for round_ in range(3):
        path = tmp_path / f"spool-{round_}.sqlite"
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        with proc.stdout:
            for _ in range(5 + round_ * 7):  # let it commit a while, then kill it mid-stream
                committed = int(proc.stdout.readline())
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        payloads = [int(unpack(p)) for (p,) in db.execute("SELECT payload FROM q ORDER BY id")]
        db.close()
        # everything reported committed is there, once and in order (a later commit may be too)
        assert payloads == list(range(1, len(payloads) + 1))
        assert len(payloads) >= committed


async def test_messages_stamped_by_a_1970_clock_are_not_aged_out_when_ntp_steps_it(
    tmp_path, monkeypatch
):
    """A Pi boots in 1970 with the broker away, then NTP steps the clock 56 years forward:
    what it spooled meanwhile has no known age and must not all be dropped as too old."""
    spool = Spool(tmp_path / "spool.sqlite", max_age_s=7 * 86400)
    real = time.time
    monkeypatch.setattr("vatio.agent.spool.time.time", lambda: 1000.0)  # the boot clock
    for i in range(5):
        spool.put(msg(i))
    await spool.commit()
    monkeypatch.setattr("vatio.agent.spool.time.time", lambda: real() - 30 * 86400)  # a month ago
    spool.put(msg(5))
    await spool.commit()
    monkeypatch.setattr("vatio.agent.spool.time.time", real)  # NTP answered
    spool.put(msg(6))
    result = await spool.commit()
    assert result.dropped == 0 and spool.stored == 7  # 1970 rows at the head: no age known
    for i, _ in await spool.read(0, 6, 10):  # once they are delivered, age applies again
        spool.ack(i)
    result = await spool.commit()
    assert result.dropped == 1 and spool.stored == 1  # the month-old one, not the newest
    await spool.close()


async def test_a_stop_that_cancels_a_commit_half_way_loses_nothing(tmp_path):
    """A reload cancels the commit loop; a commit it interrupts has already taken its batch
    from the buffer, so it must still be written (an agent that never reached its broker
    lost one batch per hand-over before: a gap in seq)."""
    import asyncio
    import time

    from vatio.agent.spool import keep_committing

    spool = Spool(tmp_path / "spool.sqlite")
    slow = spool._commit

    def slow_commit(*args):
        time.sleep(0.3)  # on the spool's thread: a slow SD card
        return slow(*args)

    spool._commit = slow_commit  # type: ignore[method-assign]
    for i in range(5):
        spool.put(msg(i))
    busy = asyncio.ensure_future(spool._run(time.sleep, 0.3))  # e.g. a backlog read
    loop = asyncio.create_task(keep_committing(spool, 0.01))
    await asyncio.sleep(0.1)  # the commit waits for the spool's thread now
    loop.cancel()
    await asyncio.wait([loop, busy])
    await spool.close(hand_over=True)
    again = Spool(tmp_path / "spool.sqlite")
    stored = [m.payload for _, m in await again.read(0, 100, 100)]
    assert stored == [msg(i).payload for i in range(5)]
    await again.close()

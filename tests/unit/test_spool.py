"""The disk spool: order, acknowledgements, bounds, ids never reused, crash safety, errors."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from agent.messages import Message
from agent.spool import Spool, SpoolError


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
    assert spool.stored == 3 and spool.bytes == 30
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
    monkeypatch.setattr("agent.spool.time.time", lambda: real() + 120)
    spool.put(msg(2))
    result = await spool.commit()
    assert result.dropped == 1 and spool.stored == 1
    await spool.close()


def test_an_unwritable_spool_path_is_a_clear_error(tmp_path):
    (tmp_path / "afile").write_text("")  # nobody, root included, can create a file under it
    with pytest.raises(SpoolError, match=r"set spool\.path to a writable place"):
        Spool(tmp_path / "afile" / "spool.sqlite")


async def test_a_failed_commit_keeps_every_message(tmp_path, monkeypatch):
    spool = Spool(tmp_path / "spool.sqlite")
    spool.put(msg(1))

    def disk_full(*args):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(spool, "_commit", disk_full)
    with pytest.raises(SpoolError, match="is full: free space"):
        await spool.commit()
    assert spool.unsaved == 1  # nothing accepted was lost
    monkeypatch.undo()
    result = await spool.commit()
    assert len(result.stored) == 1
    await spool.close()


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from agent.messages import Message
    from agent.spool import Spool

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
        payloads = [int(p) for (p,) in db.execute("SELECT payload FROM q ORDER BY id")]
        db.close()
        # everything reported committed is there, once and in order (a later commit may be too)
        assert payloads == list(range(1, len(payloads) + 1))
        assert len(payloads) >= committed

"""The agent's state on a real disk that fills up or turns read-only (issue 12): a sequence
number is handed out only below a ceiling already on disk, so no crash can hand it out again;
the metrics state is written whole or not at all, and read back from a read-only disk."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from tests.smalldisk import small_disk
from vatio.agent.messages import Message, MessageBuilder
from vatio.agent.metrics.engine import MetricsStore
from vatio.agent.seqstore import SeqStore
from vatio.agent.spool import Spool
from vatio.agent.storage import StorageHealth
from vatio.drivers.reading import PollResult


@pytest.fixture
def disk(tmp_path):
    yield from small_disk(tmp_path, 512)


def ceiling_on_disk(path, device="m", stream="telemetry") -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(
            db.execute(
                "SELECT next FROM seq WHERE device = ? AND stream = ?", (device, stream)
            ).fetchone()[0]
        )
    finally:
        db.close()


def test_numbers_never_pass_the_stored_ceiling_and_never_repeat_after_a_crash(disk):
    path = disk.path / "seq.sqlite"
    store = SeqStore(path, block=10)
    issued = [store.next("m", "telemetry") for _ in range(3)]
    disk.fill()
    store.RETRY_S = 0.0  # try to reserve at every call (the agent waits 5 s)
    for _ in range(50):
        issued.append(store.next("m", "telemetry"))
    numbered = [n for n in issued if n is not None]
    ceiling = ceiling_on_disk(path)
    assert max(numbered) < ceiling  # every number handed out was reserved on disk first
    assert numbered == list(range(1, len(numbered) + 1))  # +1 each, no repeat
    assert store.unnumbered == len(issued) - len(numbered) > 0
    # a crash now (no close), the disk freed, a restart: the counter resumes above them all
    disk.free()
    again = SeqStore(path, block=10)
    after = [again.next("m", "telemetry") for _ in range(30)]
    assert None not in after and min(after) > max(numbered)
    assert len(set(numbered) | set(after)) == len(numbered) + len(after)  # no number twice
    print(f"messages tried {len(issued) + len(after)}, numbered {len(numbered) + len(after)}")


def test_a_nearly_full_disk_is_not_reported_healed_by_every_write_that_finds_a_page(
    disk, caplog
):
    """CI saw "is full", "takes writes again", "is full" within seconds: a write that found
    one free page healed the report. Healed means room again (storage.HEALED_ABOVE)."""
    health = StorageHealth()
    store = SeqStore(disk.path / "seq.sqlite", block=10, health=health)
    store.RETRY_S = 0.0
    spare = disk.path / "spare"
    spare.write_bytes(b"\0" * 16384)  # 16 KiB to give back later: pages, not room
    disk.fill()
    issued = [store.next("m", "telemetry") for _ in range(30)]
    assert health.failing and "is full" in health.problem
    spare.unlink()
    issued += [store.next("m", "telemetry") for _ in range(30)]
    assert any(n is not None for n in issued[30:])  # writes go through again...
    assert health.failing  # ...yet the disk is not reported healed
    disk.free()
    issued += [store.next("m", "telemetry") for _ in range(30)]
    assert not health.failing
    said = [r.getMessage() for r in caplog.records]
    assert sum("is full" in m for m in said) == 1
    assert sum("takes writes again" in m for m in said) == 1


async def test_a_spool_that_cannot_open_its_file_still_hands_out_what_the_file_holds(disk):
    """After a reload on a full or read-only card the new spool cannot open its file for
    writing; the messages the last process wrote there must still go out now (CI: they
    waited for the next start), not only those held in memory."""
    path = disk.path / "spool.sqlite"
    first = Spool(path)
    for n in range(3):
        first.put(Message(f"vatio/v1/s/m{n}/telemetry", b'{"seq":%d,"values":{}}' % n))
    await first.commit()
    await first.close()
    disk.read_only()
    again = Spool(path)
    assert again.failing  # cannot write: held in memory from now on
    rows = await again.read(0, again.next_id, 100)
    assert [m.payload for _, m in rows] == [b'{"seq":%d,"values":{}}' % n for n in range(3)]
    await again.close()
    disk.read_only(False)


def test_a_store_on_a_read_only_disk_numbers_nothing_until_it_can(disk):
    path = disk.path / "seq.sqlite"
    first = SeqStore(path, block=10)
    used = [first.next("m", "telemetry") for _ in range(4)]
    first.close()
    disk.read_only()
    health = StorageHealth()
    store = SeqStore(path, block=10, health=health)
    assert health.failing and "read-only" in health.problem
    builder = MessageBuilder("s", "gw", store, health)
    msg = builder.telemetry(PollResult("m", 1_700_000_000.0, {"voltage_v": 230.0}, {}))
    body = json.loads(msg.payload)
    assert "seq" not in body and body["spooled"] is False  # published, flagged, unnumbered
    disk.read_only(False)
    store._retry_at = 0.0
    assert store.next("m", "telemetry") == used[-1] + 1  # the exact value of the clean close
    assert not health.failing


def test_the_metrics_state_survives_a_full_then_read_only_disk(disk):
    path = disk.path / "metrics.sqlite"
    health = StorageHealth()
    store = MetricsStore(path, health)
    assert store.save({"m": {"energy": 1.0}}, [("m", "day", "2026-11-30", {"kwh": 5.0})])
    disk.fill()
    big = {f"m{i}": {"energy": float(i), "pad": "x" * 2000} for i in range(400)}
    assert not store.save(big, [("m", "day", "2026-12-01", {"kwh": 7.0})])
    assert health.failing and "full" in health.problem
    assert store.load("m") == {"energy": 1.0}  # rolled back whole: the last good state
    assert [k for _, k, _ in store.history("day")] == ["2026-11-30"]
    disk.free()
    assert store.save({"m": {"energy": 2.0}}, [("m", "day", "2026-12-01", {"kwh": 7.0})])
    assert not health.failing
    store.close()
    disk.read_only()
    again = MetricsStore(path, StorageHealth())  # starts, reads what was saved
    assert again.load("m") == {"energy": 2.0}
    assert not again.save({"m": {"energy": 3.0}})
    again.close()


async def test_damaged_files_are_moved_aside_and_the_agent_starts_anyway(tmp_path, caplog):
    """A card that lies about fsync can leave garbage after a power cut: that must not stop
    every later start (a crash loop under systemd, nothing delivered ever again)."""
    for name in ("spool.sqlite", "seq.sqlite", "metrics.sqlite"):
        (tmp_path / name).write_bytes(b"\x13not a database" * 500)
    spool = Spool(tmp_path / "spool.sqlite")
    spool.put(Message("t", b"x"))
    assert (await spool.commit()).on_disk
    await spool.close()
    before = int(time.time() * 1000)
    seq = SeqStore(tmp_path / "seq.sqlite", block=10)
    first = seq.next("m", "telemetry")
    assert first is not None and first >= before  # above any number the lost file gave out
    seq.close()
    again = SeqStore(tmp_path / "seq.sqlite", block=10)
    assert again.next("m", "telemetry") == first + 1
    assert again.next("other", "events") >= before  # a stream new since then starts above too
    again.close()
    store = MetricsStore(tmp_path / "metrics.sqlite")
    assert store.save({"m": {"e": 1.0}}) and store.load("m") == {"e": 1.0}
    store.close()
    aside = sorted(p.name.split(".corrupt-")[0] for p in tmp_path.glob("*.corrupt-*"))
    assert aside == ["metrics.sqlite", "seq.sqlite", "spool.sqlite"]
    assert sum("is damaged" in r.getMessage() for r in caplog.records) == 3

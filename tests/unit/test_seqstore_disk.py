"""Sequence numbers on a real disk that fills up or turns read-only: a number is handed out
only below a ceiling already on disk, so no crash can hand it out again (issue 12)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from agent.messages import MessageBuilder
from agent.seqstore import SeqStore
from agent.storage import StorageHealth
from drivers.reading import PollResult
from tests.smalldisk import small_disk


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

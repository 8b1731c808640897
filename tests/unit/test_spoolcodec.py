"""Payloads in the spool file: deflated with a fixed dictionary, read back byte for byte."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from vatio.agent.messages import Message
from vatio.agent.spool import Spool
from vatio.agent.spoolcodec import DICTIONARY_V1, pack, unpack

TELEMETRY = json.dumps(
    {
        "ts": "2026-11-23T15:18:19.001Z",
        "seq": 42,
        "site": "planta-norte",
        "device": "m001",
        "values": {
            "voltage_l1_v": 128.24000549316406,
            "current_l1_a": 12.5,
            "active_power_w": 1482.0999755859375,
            "apparent_power_va": 1590.300048828125,
            "reactive_power_var": 577.2000122070312,
            "power_factor": 0.9300000071525574,
            "frequency_hz": 60.0099983215332,
            "energy_import_kwh": 10378.341,
        },
    },
    separators=(",", ":"),
).encode()


def test_the_dictionary_never_changes_it_is_part_of_the_file_format():
    # rows deflated with it must stay readable after any upgrade: a new one is a new marker
    assert hashlib.sha256(DICTIONARY_V1).hexdigest() == (
        "bc8035e0a01ef829fd6966321c3336b3acf47f00cc77178bdfe7ef1fd26e2683"
    )


def test_a_telemetry_payload_is_stored_in_half_its_size_or_less_and_read_back_exactly():
    stored = pack(TELEMETRY)
    assert stored[0] == 0x01 and len(stored) <= len(TELEMETRY) // 2
    assert unpack(stored) == TELEMETRY


def test_payloads_deflate_cannot_shrink_are_kept_as_they_are_whatever_their_first_byte():
    for payload in (b"", b"7", b"{}", b"\x00\x01", b"\x01", b"\x00abc", b"\x01\xff\xfe"):
        assert unpack(pack(payload)) == payload
    assert pack(b"{}") == b"{}"  # JSON (and every row written before) is stored as it is
    assert unpack(TELEMETRY) == TELEMETRY  # an older spool's row reads as it was


async def test_the_spool_writes_deflated_rows_and_reads_the_messages_back(tmp_path):
    path = tmp_path / "spool.sqlite"
    spool = Spool(path)
    spool.put(Message("vatio/v1/s/m001/telemetry", TELEMETRY))
    await spool.commit()  # not acknowledged: it goes to disk
    db = sqlite3.connect(path)
    (row,) = db.execute("SELECT payload FROM q").fetchone()
    db.close()
    assert row[0] == 0x01 and len(row) < len(TELEMETRY)
    assert spool.bytes == len(row)  # the bound counts what the card holds
    [(_, msg)] = await spool.read(0, spool.next_id, 10)
    assert msg.payload == TELEMETRY
    await spool.close()

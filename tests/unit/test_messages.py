"""The MQTT contract (topics, payloads) and sequence numbers across restarts."""

import json

from vatio.agent.messages import MessageBuilder, rfc3339, topic
from vatio.agent.seqstore import SeqStore
from vatio.drivers.reading import PollResult


def test_topic_and_timestamp_format():
    assert topic("planta", "general", "telemetry") == "vatio/v1/planta/general/telemetry"
    assert rfc3339(1795447045.5695) == "2026-11-23T15:17:25.569Z"


def test_telemetry_payload(tmp_path):
    builder = MessageBuilder("planta", "gw-01", SeqStore(tmp_path / "seq.sqlite"))
    result = PollResult(
        "general",
        1795447045.0,
        {"active_power_w": 1500.5, "frequency_hz": None},
        {"frequency_hz": "timeout"},
    )
    msg = builder.telemetry(result)
    assert msg.topic == "vatio/v1/planta/general/telemetry"
    assert not msg.retain
    assert json.loads(msg.payload) == {
        "ts": "2026-11-23T15:17:25.000Z",
        "seq": 1,
        "site": "planta",
        "device": "general",
        "values": {"active_power_w": 1500.5, "frequency_hz": None},
        "quality": {"frequency_hz": "timeout"},
    }
    assert json.loads(builder.telemetry(result).payload)["seq"] == 2


def test_status_is_retained_and_carries_the_agent(tmp_path):
    builder = MessageBuilder("planta", "gw-01", SeqStore(tmp_path / "seq.sqlite"))
    msg = builder.status("gw-01", "online", version="1")
    body = json.loads(msg.payload)
    assert msg.retain and msg.topic == "vatio/v1/planta/gw-01/status"
    assert body["state"] == "online" and body["agent"] == "gw-01" and body["version"] == "1"


def test_seq_continues_after_a_clean_restart(tmp_path):
    store = SeqStore(tmp_path / "seq.sqlite", block=10)
    assert [store.next("m", "telemetry") for _ in range(3)] == [1, 2, 3]
    store.close()
    store = SeqStore(tmp_path / "seq.sqlite", block=10)
    assert store.next("m", "telemetry") == 4
    assert store.next("m", "events") == 1  # one counter per device and stream


def test_seq_never_repeats_after_a_crash(tmp_path):
    store = SeqStore(tmp_path / "seq.sqlite", block=10)
    issued = [store.next("m", "telemetry") for _ in range(15)]
    # no close(): as after SIGKILL or a power cut
    store2 = SeqStore(tmp_path / "seq.sqlite", block=10)
    after = store2.next("m", "telemetry")
    assert after > max(issued)  # a gap (possible loss), never a duplicate
    assert after - max(issued) <= 10

"""The name rules of agent/ingest/lineproto.py against the real databases: every character
the rules allow, at the start, middle and end of a tag value and of a field key, written by
the bridge's own writers (v1 to InfluxDB 1.6, v2 to VictoriaMetrics) comes back unchanged;
every character they refuse is refused before writing."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest

from vatio.agent.config import InfluxConfig
from vatio.agent.influx import make_writer
from vatio.agent.ingest.lineproto import BadMessage, to_line

pytestmark = pytest.mark.integration

# Printable ASCII (the topic's own separators and wildcards excluded for tags) and a sample
# of the rest of Unicode: accents, CJK, emoji, spaces and format characters.
ALLOWED = [chr(c) for c in range(0x20, 0x7F) if chr(c) not in '\\"'] + list(
    "éñµ中😀\u00a0\u2028\u2029\ufeff\u200b\U000e0041"
)
REFUSED = [chr(c) for c in range(0x20)] + ["\\", '"', "\x7f", "\x85", "\x9f", "\ud800"]
TS = "2026-11-18T11:06:40.000Z"


def names() -> list[str]:
    out = []
    for c in ALLOWED:
        code = f"{ord(c):x}"
        out += [f"{c}s{code}", f"m{code}{c}m", f"e{code}{c}"]
    return out


def lines() -> tuple[list[str], set[str], set[str]]:
    """One point per name: the name as device (a tag) and as a value name (a field key); and
    one ``metrics`` point holding every value name at once (a quote in one field key once
    broke the next one in VictoriaMetrics: names meet on a line)."""
    out, devices, fields = [], set(), set()
    for i, name in enumerate(names()):
        device = name if not any(c in name for c in "/+#") else f"t{i}"
        field = name if name not in ("time", "seq") and not name.startswith("_") else f"f{i}"
        payload = json.dumps({"ts": TS, "seq": i, "values": {field: i}}).encode()
        line = to_line(f"vatio/v1/names/{device}/telemetry", payload)
        assert line is not None
        out.append(line)
        devices.add(device)
        fields.add(field)
    payload = json.dumps({"ts": TS, "seq": 1, "values": dict.fromkeys(fields, 1.5)}).encode()
    line = to_line("vatio/v1/names/all/metrics", payload)
    assert line is not None
    out.append(line)
    return out, devices, fields


def test_every_refused_character_is_refused_before_writing():
    for c in REFUSED:
        for name in (f"{c}a", f"a{c}b", f"a{c}"):
            payload = json.dumps({"ts": TS, "values": {name: 1}}).encode()
            with pytest.raises(BadMessage, match="value name"):
                to_line("vatio/v1/s/m/telemetry", payload)


def test_every_allowed_character_round_trips_through_influxdb_1_6(influxd):
    batch, devices, fields = lines()
    writer = make_writer(InfluxConfig(url=influxd.url, api="v1", database="vatio"))
    writer.write(batch)
    writer.close()
    q = influxd.query("vatio", 'SHOW TAG VALUES FROM "telemetry" WITH KEY = "device"')
    got_devices = {row[1] for s in q["results"][0]["series"] for row in s["values"]}
    q = influxd.query("vatio", 'SHOW FIELD KEYS FROM "telemetry"')
    got_fields = {row[0] for s in q["results"][0]["series"] for row in s["values"]} - {"seq"}
    q = influxd.query("vatio", 'SHOW FIELD KEYS FROM "metrics"')
    got_together = {row[0] for s in q["results"][0]["series"] for row in s["values"]} - {"seq"}
    assert influxd.count("vatio", "telemetry", "seq") == len(batch) - 1
    assert got_devices == devices, devices ^ got_devices
    assert got_fields == fields, fields ^ got_fields
    assert got_together == fields, fields ^ got_together


def test_every_allowed_character_round_trips_through_victoriametrics(victoria):
    batch, devices, fields = lines()
    writer = make_writer(InfluxConfig(url=victoria.url, api="v2"))
    writer.write(batch)
    writer.close()
    victoria.flush()

    def label_values(label: str, match: str) -> set[str]:
        query = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{victoria.url}/api/v1/label/{label}/values?{query}") as r:
            return set(json.load(r)["data"])

    got_devices = label_values("device", '{site="names", device!="all"}')
    metrics = label_values("__name__", '{site="names", device!="all"}')
    got_fields = {m.removeprefix("telemetry_") for m in metrics} - {"seq"}
    together = label_values("__name__", '{site="names", device="all"}')
    got_together = {m.removeprefix("metrics_") for m in together} - {"seq"}
    assert victoria.count('telemetry_seq{site="names"}') == len(batch) - 1
    assert got_devices == devices, devices ^ got_devices
    assert got_fields == fields, fields ^ got_fields
    assert got_together == fields, fields ^ got_together
    samples = victoria.export('{site="names", device="all"}')
    assert all(s["values"] == [1.5] for s in samples if s["metric"]["__name__"] != "metrics_seq")

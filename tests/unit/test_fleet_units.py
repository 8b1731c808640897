"""Issue 15 without servers: location and labels in the config (located errors), in the
status payloads, as status points; the gap finder; the fleet-status table."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.unit.test_config import GOOD
from vatio.agent.config import ConfigError, parse_config_text
from vatio.agent.fleetinfo import status_extras
from vatio.agent.fleetstatus import summarise, table
from vatio.agent.ingest.completeness import find_gaps, format_gaps, parse_gaps
from vatio.agent.ingest.lineproto import BadMessage, Converter
from vatio.agent.ingest.statuspoints import status_line
from vatio.simulators.fleet import Fleet

LOCATED = GOOD + textwrap.dedent("""\
    location: {latitude: 19.4326, longitude: -99.1332, name: "Planta Norte, nave 2"}
    labels: {zone: norte, building: b2}
""")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, file="f.yaml")
    return [str(p) for p in info.value.problems]


def test_location_and_labels_merge_into_each_status():
    text = LOCATED.replace(
        "interval: 15m}", "interval: 15m, labels: {building: b3, floor: '1'},\n"
        "             location: {latitude: 19.5, longitude: -99.2}}",
    )  # fmt: skip
    cfg = parse_config_text(text).config
    assert status_extras(cfg, None) == {
        "location": {"lat": 19.4326, "lon": -99.1332, "name": "Planta Norte, nave 2"},
        "labels": {"zone": "norte", "building": "b2"},
    }
    assert status_extras(cfg, "oficinas") == {
        "location": {"lat": 19.5, "lon": -99.2},
        "labels": {"zone": "norte", "building": "b3", "floor": "1"},
    }
    assert status_extras(cfg, "general")["location"]["lat"] == 19.4326  # the agent's


@pytest.mark.parametrize(
    ("change", "place", "says"),
    [
        ("latitude: 19.4326", "f.yaml:11: location.latitude", "less than or equal to 90"),
        ("latitude: 19.4326", "f.yaml:11: location.latitude", "greater than or equal to -90"),
        ("zone: norte", "f.yaml:12: labels", "label name 'Zone Name'"),
        ("zone: norte", "f.yaml:12: labels", "value 'a/b' must be 1–64"),
        ("zone: norte", "f.yaml:12: labels", "'site' is reserved"),
    ],
)
def test_bad_locations_and_labels_are_located(change, place, says):
    bad = {
        "less than or equal to 90": "latitude: 91",
        "greater than or equal to -90": "latitude: -90.5",
        "label name 'Zone Name'": "Zone Name: norte",
        "value 'a/b' must be 1–64": "zone: a/b",
        "'site' is reserved": "site: norte",
    }[says]
    out = problems(LOCATED.replace(change, bad))
    assert len(out) == 1 and out[0].startswith(place) and says in out[0], out


def test_too_many_labels_counting_the_agents(tmp_path: Path):
    nine = ", ".join(f"k{i}: v" for i in range(9))
    out = problems(LOCATED.replace("building: b2}", f"building: b2, {nine}}}"))
    assert "at most 8" in out[0] and out[0].startswith("f.yaml:12: labels")
    seven = ", ".join(f"d{i}: v" for i in range(7))
    out = problems(LOCATED.replace("interval: 15m}", f"interval: 15m, labels: {{{seven}}}}}"))
    assert out == [
        "f.yaml:8: devices.oficinas.labels: 9 labels with the agent's; at most 8 (each one is "
        "an InfluxDB tag): drop some here or under the top-level labels"
    ]
    path = tmp_path / "vatio.yaml"
    path.write_text(LOCATED.replace("latitude: 19.4326", "latitude: 190"))
    res = run_cli("check", "-c", str(path))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "location.latitude" in res.stderr


def test_status_points_carry_labels_as_tags_and_location_as_fields():
    fleet = Fleet(agents=3, devices=1)
    statuses = list(fleet.statuses(offline=frozenset({2}), degraded=frozenset({(3, 1)}),
                                   now_ms=1_796_000_000_000))  # fmt: skip
    conv = Converter()
    points = [status_line(conv, t.split("/")[2], t.split("/")[3], p, 1_796_000_123_456)
              for t, p, _ in statuses]  # fmt: skip
    lines = [p[0] for p in points if p is not None]
    assert len(lines) == 6
    online = fleet.location(1)
    assert lines[0] == (
        "status,site=site-0001,device=gw-0001,agent=gw-0001,kind=agent,zone=norte "
        'state="online",online=1i,degraded=0i,seq=1i,version="0.0.0-fleet",backlog=1i,'
        f"spool_dropped=0i,lat={online['lat']!r},lon={online['lon']!r} 1796000000000"
    )
    # an offline status is a will built at connect time: it takes the arrival time
    assert lines[2].startswith("status,site=site-0002,device=gw-0002,agent=gw-0002,kind=agent")
    assert 'state="offline",online=0i' in lines[2] and lines[2].endswith(" 1796000123456")
    assert 'state="degraded",online=0i,degraded=1i' in lines[5]
    assert 'reason="timeout: no answer from unit 1"' in lines[5] and ",kind=device," in lines[5]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"state": "online", "agent": 7}, "'agent' is not a string"),
        ({"agent": "a"}, "no 'state'"),
        ({"agent": "a", "state": "online", "labels": {"Bad": "x"}}, "label name 'Bad'"),
        ({"agent": "a", "state": "online", "labels": {"kind": "x"}}, "label name 'kind'"),
        ({"agent": "a", "state": "online", "labels": {"z": 'a"b'}}, "double quote"),
        ({"agent": "a", "state": "online", "labels": {f"k{i}": "v" for i in range(9)}},
         "at most 8"),
        ({"agent": "a", "state": "online", "ts": "yesterday"}, "not an RFC 3339"),
    ],
)  # fmt: skip
def test_bad_statuses_are_dead_letters_with_the_reason(body, says):
    with pytest.raises(BadMessage) as info:
        status_line(Converter(), "s", "d", json.dumps(body).encode(), 1)
    assert says in str(info.value)


def test_a_status_naming_no_agent_is_left_out():
    assert status_line(Converter(), "s", "d", b'{"state":"online"}', 1) is None


def test_a_location_out_of_range_in_a_status_is_left_out_not_fatal():
    body = {"agent": "a", "state": "online", "ts": "2026-12-01T00:00:00Z",
            "location": {"lat": 91, "lon": 0, "name": "x"}}  # fmt: skip
    point = status_line(Converter(), "s", "a", json.dumps(body).encode(), 1)
    assert point is not None
    line = point[0]
    assert "lat=" not in line and 'place="x"' in line


@pytest.mark.parametrize(
    ("seqs", "before", "gaps", "resets", "expected"),
    [
        ([1, 2, 3], None, [], 0, 3),
        ([4, 5, 9, 10, 12], 1, [(2, 3), (6, 8), (11, 11)], 0, 11),
        ([7, 8, 9, 1, 2, 4], None, [(3, 3)], 1, 7),  # a reset, then a gap in the new run
        ([5, 5, 6], 4, [], 0, 3),  # the same seq twice at two times: repeated, not missing
        ([], 3, [], 0, 0),
    ],
)
def test_find_gaps(seqs, before, gaps, resets, expected):
    found = find_gaps(seqs, before)
    assert list(found.gaps) == gaps and found.resets == resets and found.expected == expected
    assert parse_gaps(format_gaps(found.gaps)) == gaps


def test_fleet_status_table_and_unreadable_statuses():
    fleet = Fleet(agents=3, devices=2)
    msgs = [(t, p) for t, p, _ in fleet.statuses(frozenset({2}), frozenset({(3, 2)}), 0)]
    msgs += [("vatio/v1/x/y/status", b"{nope"), ("vatio/v1/x/z/status", b'{"state":"online"}')]
    rows, bad = summarise(msgs)
    assert bad == 2
    text = table(rows).splitlines()
    assert text[0].split() == ["SITE", "AGENT", "STATE", "VERSION", "SINCE", "DEVICES",
                               "ON/DEGR", "BACKLOG"]  # fmt: skip
    assert text[1].split() == ["site-0001", "gw-0001", "online", "0.0.0-fleet",
                               "2001-09-09T01:46:40Z", "2/0", "1"]  # fmt: skip
    assert text[2].split() == ["site-0002", "gw-0002", "OFFLINE", "-", "-", "0/0", "(2",
                               "unseen)", "-"]  # fmt: skip
    assert text[3].split()[5] == "1/1"
    assert text[-1] == "3 agents, 1 offline, 1 devices degraded"


def test_fleet_status_without_a_broker_says_so_and_exits_2():
    from vatio.simulators.brokers import free_port

    res = run_cli("fleet-status", "--url", f"mqtt://127.0.0.1:{free_port()}", "--timeout", "2")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "cannot reach the broker" in res.stderr


def test_the_bridge_counts_late_arrivals_and_seq_going_back_per_hour():
    from vatio.agent.ingest.completeness import HOUR_MS, CompletenessTracker

    tracker = CompletenessTracker("b1", late_after_s=60)
    hour = 1_796_000_000_000 - 1_796_000_000_000 % HOUR_MS
    now = hour + 30 * 60_000
    first = [("telemetry", "s", "d", 5, hour + 1000), ("telemetry", "s", "d", 6, hour + 2000)]
    tracker.record(first, now)
    # a reset (seq back, time on); a backlog message (older ts, lower seq: late, not a reset)
    tracker.record([("telemetry", "s", "d", 1, now - 1000), ("telemetry", "s", "d", 4, hour)], now)
    assert (tracker.backwards, tracker.late) == (1, 3)
    lines = tracker._arrival_lines([("telemetry", hour)])
    assert lines == [
        f"ingest_arrivals,site=s,device=d,stream=telemetry,bridge=b1 received=4i,late=3i,"
        f"backwards=1i {hour}"
    ]


class FakeInfluxQL:
    """Answers the pass's four InfluxQL queries from a dict of seq values per device (time
    order), the way InfluxDB 1.6 shapes its series; records the queries."""

    def __init__(self, seqs: dict[tuple[str, str], list[int]], before: dict) -> None:
        self.seqs, self.before, self.queries = seqs, before, []

    def series(self, q: str) -> list[dict]:
        import re

        self.queries.append(q)
        tags = lambda k: {"site": k[0], "device": k[1]}  # noqa: E731
        if q.startswith('SELECT count("seq")'):
            return [{"tags": tags(k), "values": [[0, len(v), min(v), max(v)]]}
                    for k, v in self.seqs.items()]  # fmt: skip
        if q.startswith('SELECT last("last_seq")'):
            return [{"tags": tags(k), "values": [[0, v]]} for k, v in self.before.items()]
        if q.startswith('SELECT "seq"'):
            wanted = set(re.findall(r"site = '([^']*)' AND device = '([^']*)'", q))
            return [{"tags": tags(k), "values": [[0, s] for s in v]}
                    for k, v in self.seqs.items() if k in wanted]  # fmt: skip
        return []  # arrivals


def test_a_pass_finds_the_gaps_of_many_devices_in_few_queries(monkeypatch):
    from vatio.agent.ingest import completeness as c

    monkeypatch.setattr(c, "DETAIL_CHUNK", 3)
    hour = 1_796_000_000_000 - 1_796_000_000_000 % c.HOUR_MS
    seqs = {("s", f"d{i}"): [1, 2, 3, 4] for i in range(4)}  # complete
    seqs |= {("s", f"g{i}"): [1, 2, 4 + i, 10] for i in range(7)}  # a gap each
    seqs[("s", "b")] = [11, 12]  # its previous hour ended at 8: 9-10 missing
    db = FakeInfluxQL(seqs, before={("s", "b"): 8, ("s", "d0"): 0})
    tracker = c.CompletenessTracker("b1")
    tracker.record([("telemetry", "s", "d0", 1, hour)], hour)
    written: list[str] = []
    tracker.run_pass(db, written.extend)  # type: ignore[arg-type]
    points = {line.split(",")[2].split("=")[1]: line for line in written
              if line.startswith("completeness")}  # fmt: skip
    assert len(points) == 12
    assert 'gaps=""' in points["d0"] and "missing=0i" in points["d0"]
    for i in range(7):  # seq 1, 2, 4 + i, 10
        gaps = [(3, 3 + i)] + ([(5 + i, 9)] if 5 + i <= 9 else [])
        assert f'gaps="{format_gaps(gaps)}"' in points[f"g{i}"], points[f"g{i}"]
    assert 'gaps="9-10"' in points["b"] and "expected=4i" in points["b"]
    details = [q for q in db.queries if q.startswith('SELECT "seq"') and f"{hour}ms" in q]
    assert len(details) == 3  # 8 incomplete devices, 3 a query (the next hour is asked too)


def test_a_long_gap_list_is_cut_but_counted():
    gaps = [(i, i) for i in range(2, 40_000, 2)]
    text = format_gaps(gaps)
    assert len(text) <= 4096 + 2 and text.endswith(",…")
    assert parse_gaps(text) == gaps[: len(parse_gaps(text))] and len(parse_gaps(text)) > 500
    assert find_gaps(range(1, 40_000, 2)).missing == len(gaps)

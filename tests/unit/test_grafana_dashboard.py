"""configs/grafana: the dashboard asks only for measurements and fields that Vatio writes
(DESIGN.md's InfluxDB schema, common/vocabulary.py), so a renamed quantity breaks this test
rather than a panel in the field."""

from __future__ import annotations

import json
import re
from pathlib import Path

from vatio.common.vocabulary import QUANTITIES

DASHBOARD = Path(__file__).resolve().parent.parent.parent / "configs/grafana/vatio-dashboard.json"


def test_every_query_names_a_written_measurement_and_field():
    dash = json.loads(DASHBOARD.read_text())
    queries = [t["query"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(queries) >= 8
    for query in queries:
        measurement = re.search(r'FROM "(\w+)"', query)
        assert measurement and measurement.group(1) in ("telemetry", "metrics"), query
        for field in re.findall(r'(?:mean|last)\("(\w+)"\)', query):
            assert field in QUANTITIES, f"{field} is not in the vocabulary: {query}"
        assert '"site" =~ /^$site$/' in query and "$timeFilter" in query  # the variables
    names = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "site", "device", "demand_limit"} <= names


def test_the_bill_row_reads_the_site_message():
    dash = json.loads(DASHBOARD.read_text())
    rows = [p for p in dash["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == ["Bill"]
    below = [p for p in dash["panels"] if p["gridPos"]["y"] > rows[0]["gridPos"]["y"]]
    fields = set()
    for p in below:
        for t in p["targets"]:
            # the site-level message has the device slot _site (agent/metrics/site.py)
            assert "\"device\" = '_site'" in t["query"], t["query"]
            fields |= set(re.findall(r'last\("(\w+)"\)', t["query"]))
    assert {"bill_total_mxn", "bill_projected_total_mxn", "site_export_today_kwh"} <= fields
    lines = {f for f in fields if f.startswith("bill_") and f.endswith("_mxn")}
    assert len(lines) == 13  # every line of the bill, the total and the projection

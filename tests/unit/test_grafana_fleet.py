"""configs/grafana: the fleet dashboard and alert rules (issue 15). Here, without servers:
what they ask for is in the vocabulary or in what the bridge writes, and the five alerts are
there with their delays. tests/integration/test_fleet.py checks every name against InfluxDB
after a fleet run through the real bridge, with :func:`influxql_queries` and
:func:`referenced_names` from this module."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from vatio.common.vocabulary import QUANTITIES

GRAFANA = Path(__file__).resolve().parent.parent.parent / "configs" / "grafana"
DASHBOARD = GRAFANA / "vatio-fleet-dashboard.json"
ALERTS = GRAFANA / "provisioning" / "alerting" / "vatio-fleet-alerts.yaml"
WRITTEN = {"status", "completeness", "last_seen", "ingest_arrivals", "metrics", "events",
           "telemetry"}  # fmt: skip


def influxql_queries() -> list[str]:
    """Every InfluxQL query of the fleet dashboard (panels and variables) and alert rules."""
    dash = json.loads(DASHBOARD.read_text())
    queries = [t["query"] for p in dash["panels"] for t in p.get("targets", [])]
    queries += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            queries += [d["model"]["query"] for d in rule["data"] if "query" in d["model"]]
    return queries


def referenced_names(query: str) -> dict[str, set[str]]:
    """measurement → the fields and tags the query names in it. Every query reads one
    measurement (a subquery reads the same one); aliases (``AS "x"``) are not names."""
    measurements = set(re.findall(r'FROM "(\w+)"', query))
    assert len(measurements) == 1, query
    aliases = set(re.findall(r'AS "(\w+)"', query))
    names = set(re.findall(r'"(\w+)"', query)) - measurements - aliases
    # ``SHOW TAG VALUES … WITH KEY = "zone"`` names a tag too: kept in names
    return {measurements.pop(): names}


def test_every_query_reads_what_the_bridge_writes():
    queries = influxql_queries()
    assert len(queries) >= 12
    for query in queries:
        ((measurement, names),) = referenced_names(query).items()
        assert measurement in WRITTEN, query
        if measurement == "metrics":
            assert names - {"site", "device"} <= set(QUANTITIES), query
        if "$timeFilter" not in query:
            assert query.startswith("SHOW TAG VALUES"), query


def test_the_dashboard_has_the_fleet_panels():
    dash = json.loads(DASHBOARD.read_text())
    types = {p["type"] for p in dash["panels"]}
    assert {"geomap", "table", "heatmap", "timeseries"} <= types
    geomap = next(p for p in dash["panels"] if p["type"] == "geomap")
    assert geomap["options"]["layers"][0]["location"] == {
        "mode": "coords", "latitude": "lat", "longitude": "lon"
    }  # fmt: skip
    assert geomap["options"]["layers"][0]["config"]["color"]["field"] == "ias_mx"
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "zone", "site"}


def test_the_five_alert_rules_with_their_delays():
    rules = {r["uid"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert {uid: r["for"] for uid, r in rules.items()} == {
        "vatio-agent-offline": "5m",
        "vatio-device-degraded": "15m",
        "vatio-completeness-24h": "0s",
        "vatio-ias-muy-mala": "0s",
        "vatio-demand-over-limit": "0s",
    }
    completeness = rules["vatio-completeness-24h"]
    assert completeness["data"][0]["relativeTimeRange"]["from"] == 24 * 3600
    assert completeness["data"][2]["model"]["conditions"][0]["evaluator"] == {
        "type": "lt", "params": [0.75]
    }  # fmt: skip
    for rule in rules.values():
        assert rule["condition"] == "C" and rule["data"][0]["model"]["rawQuery"] is True

"""The site aggregator: balance names and flags, billing periods, the bill's state."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from vatio.agent.metrics.prices import load_prices
from vatio.agent.metrics.site import BillSettings, SiteMetrics, billing_period, has_punta
from vatio.common.vocabulary import QUANTITIES

TZ = ZoneInfo("America/Mexico_City")
D = dt.date


@pytest.mark.parametrize(
    ("day", "cut_off", "dates", "expected"),
    [
        (D(2026, 11, 15), None, None, (D(2026, 11, 1), D(2026, 12, 1))),
        (D(2026, 12, 31), None, None, (D(2026, 12, 1), D(2027, 1, 1))),
        (D(2026, 11, 15), 12, None, (D(2026, 11, 12), D(2026, 12, 12))),
        (D(2026, 11, 11), 12, None, (D(2026, 10, 12), D(2026, 11, 12))),
        (D(2027, 1, 3), 12, None, (D(2026, 12, 12), D(2027, 1, 12))),
        # reading dates as printed on past bills, then their day of the month goes on
        (
            D(2026, 10, 20),
            None,
            [D(2026, 10, 9), D(2026, 11, 10)],
            (D(2026, 10, 9), D(2026, 11, 10)),
        ),
        (
            D(2026, 11, 20),
            None,
            [D(2026, 10, 9), D(2026, 11, 10)],
            (D(2026, 11, 10), D(2026, 12, 10)),
        ),
        (D(2026, 10, 5), None, [D(2026, 10, 9), D(2026, 11, 10)], (D(2026, 10, 1), D(2026, 10, 9))),
    ],
)
def test_billing_periods(day, cut_off, dates, expected):
    assert billing_period(day, cut_off, dates) == expected


@pytest.mark.parametrize(
    ("start", "end", "region", "expected"),
    [
        (D(2026, 11, 1), D(2026, 12, 1), "SIN", True),  # winter weekdays: punta 18–22
        (D(2026, 11, 1), D(2026, 12, 1), "BC", False),  # BC winter has no punta (§4.3)
        (D(2026, 11, 1), D(2026, 12, 1), "BCS", False),
        (D(2026, 7, 1), D(2026, 8, 1), "BC", True),
        (D(2026, 11, 1), D(2026, 11, 2), "SIN", False),  # a Sunday alone
    ],
)
def test_has_punta(start, end, region, expected):
    assert has_punta(start, end, region) is expected


def ts(*a: int) -> float:
    return dt.datetime(*a, tzinfo=TZ).timestamp()


def feed(site: SiteMetrics, grid: dict[str, float], gen: float, t: float) -> None:
    site.observe("red", grid, t)
    site.observe("fv", {"energy_export_kwh": gen}, t)


def test_a_grid_meter_without_export_leaves_the_balance_open_and_says_so():
    site = SiteMetrics({"red": "grid", "fv": "generation"})
    feed(site, {"energy_import_kwh": 100.0}, 0.0, ts(2026, 11, 3, 10))
    feed(site, {"energy_import_kwh": 110.0}, 5.0, ts(2026, 11, 3, 11))
    values, quality, _ = site.values(ts(2026, 11, 3, 11))
    assert values["site_import_today_kwh"] == pytest.approx(10.0)
    assert values["site_generation_today_kwh"] == pytest.approx(5.0)
    assert values["site_avoided_today_kgco2e"] == pytest.approx(5 * 0.444)
    for name in ("export", "consumption", "self_consumption", "self_sufficiency"):
        metric = f"site_{name}_today_{'kwh' if name in ('export', 'consumption') else 'pct'}"
        assert values[metric] is None
        assert quality[metric] == "no_export_register"


def test_the_balance_with_export():
    site = SiteMetrics({"red": "grid", "fv": "generation", "horno": "load"})
    feed(site, {"energy_import_kwh": 0.0, "energy_export_kwh": 0.0}, 0.0, ts(2026, 11, 3, 10))
    feed(site, {"energy_import_kwh": 2.0, "energy_export_kwh": 3.0}, 10.0, ts(2026, 11, 3, 11))
    site.observe("horno", {"energy_import_kwh": 50.0}, ts(2026, 11, 3, 11))  # not in it
    values, quality, extra = site.values(ts(2026, 11, 3, 11))
    assert quality == {} and extra == {}  # no bill configured
    assert values["site_consumption_today_kwh"] == pytest.approx(9.0)  # 2 + 10 − 3
    assert values["site_self_consumption_today_pct"] == pytest.approx(70.0)
    assert values["site_self_sufficiency_today_pct"] == pytest.approx(7 / 9 * 100, abs=0.001)
    assert all(name in QUANTITIES for name in values), set(values) - set(QUANTITIES)


def test_untrusted_readings_are_bridged_by_the_next_trusted_one():
    site = SiteMetrics({"red": "grid"})
    site.observe("red", {"energy_import_kwh": 0.0}, ts(2026, 11, 3, 10))
    site.observe("red", {"energy_import_kwh": 5.0}, ts(1970, 1, 1, 0), trusted=False)
    site.observe("red", {"energy_import_kwh": 10.0}, ts(2026, 11, 3, 11))
    assert site.values(ts(2026, 11, 3, 11))[0]["site_import_today_kwh"] == pytest.approx(10.0)


def bill_site(division: str = "bajio") -> SiteMetrics:
    return SiteMetrics({"red": "grid"}, bill=BillSettings(prices=load_prices(), division=division))


def test_the_running_bill_is_published_with_its_flags_and_projection():
    site = bill_site()
    site.observe("red", {"energy_import_kwh": 0.0, "energy_export_kwh": 0.0}, ts(2026, 11, 2, 0))
    site.observe("red", {"energy_import_kwh": 480.0, "energy_export_kwh": 0.0}, ts(2026, 11, 2, 8))
    values, quality, extra = site.values(ts(2026, 11, 2, 8))
    assert values["bill_period_days"] == 30
    assert values["bill_energy_kwh"] == 480
    assert values["bill_total_mxn"] is not None and values["bill_total_mxn"] > 0
    # the shipped rows are examples: the amount says so
    assert quality["bill_total_mxn"] == "example_prices"
    assert extra["bill"]["flags"] == ["example_prices"]
    assert next(x["key"] for x in extra["bill"]["lines"]) == "energy_base"
    # 480 kWh in the first 32 h of a 720 h period → 22.5× at this pace
    assert values["bill_projected_total_mxn"] > values["bill_total_mxn"] * 5


def test_without_prices_for_the_month_amounts_are_null_and_flagged():
    site = bill_site()
    site.observe("red", {"energy_import_kwh": 0.0}, ts(2030, 5, 2, 0))
    site.observe("red", {"energy_import_kwh": 10.0}, ts(2030, 5, 2, 1))
    values, quality, _extra = site.values(ts(2030, 5, 2, 1))
    assert values["bill_total_mxn"] is None and values["bill_energy_base_mxn"] is None
    assert values["bill_energy_kwh"] == 10
    assert quality["bill_total_mxn"] == "no_prices"


def test_state_survives_a_restart():
    site = bill_site()
    site.observe("red", {"energy_import_kwh": 0.0}, ts(2026, 11, 2, 0))
    site.observe("red", {"energy_import_kwh": 100.0}, ts(2026, 11, 2, 5))
    again = bill_site()
    again.restore(site.state())
    again.observe("red", {"energy_import_kwh": 150.0}, ts(2026, 11, 2, 6))
    values = again.values(ts(2026, 11, 2, 6))[0]
    assert values["site_import_today_kwh"] == pytest.approx(150.0)
    assert values["bill_energy_kwh"] == 150


def test_without_a_grid_meter_the_balance_is_open_and_says_so():
    site = SiteMetrics({"fv": "generation"})
    site.observe("fv", {"energy_export_kwh": 0.0}, ts(2026, 11, 3, 10))
    site.observe("fv", {"energy_export_kwh": 7.0}, ts(2026, 11, 3, 11))
    values, quality, _ = site.values(ts(2026, 11, 3, 11))
    assert values["site_generation_today_kwh"] == pytest.approx(7.0)
    assert values["site_import_today_kwh"] is None and values["site_consumption_today_kwh"] is None
    assert quality["site_import_today_kwh"] == "no_grid_meter"
    assert quality["site_self_consumption_today_pct"] == "no_grid_meter"


def test_a_closed_period_keeps_the_prices_of_its_own_month(tmp_path):
    """A period from 12 October to 12 November is billed at the November row (the month it
    ends in, the month of the bill); the next one, closed in December, at December's."""
    from vatio.agent.metrics.prices import parse_prices
    from vatio.common.yamlconf import load_yaml_text

    row = (
        "  - {{month: {m}, division: t, energy_base: {p}, energy_intermedia: {p},"
        " energy_punta: {p}, transmission: 0, cenace: 0, scnmem: 0, fixed: 0, capacity: 0,"
        " distribution: 0, vat_pct: 0, source: test}}\n"
    )
    text = "rows:\n" + "".join(row.format(m=m, p=p) for m, p in (("2026-11", 1), ("2026-12", 2)))
    table = parse_prices(load_yaml_text(text, "p.yaml"))
    site = SiteMetrics(
        {"red": "grid"}, bill=BillSettings(prices=table, division="t", cut_off_day=12)
    )
    site.observe("red", {"energy_import_kwh": 0.0}, ts(2026, 11, 10, 0))
    site.observe("red", {"energy_import_kwh": 100.0}, ts(2026, 11, 11, 0))
    site.observe("red", {"energy_import_kwh": 100.0}, ts(2026, 11, 13, 0))  # closes it
    site.observe("red", {"energy_import_kwh": 150.0}, ts(2026, 12, 13, 0))  # and the next
    bills = {key: r["bill"] for kind, key, r in site.closed if kind == "bill"}

    def energy(bill: dict) -> float:
        return sum(x["amount"] for x in bill["lines"] if x["key"].startswith("energy_"))

    assert bills["2026-10-12"]["prices_month"] == "2026-11"
    assert energy(bills["2026-10-12"]) == 100.0  # 100 kWh × 1
    assert bills["2026-11-12"]["prices_month"] == "2026-12"
    # 50 kWh spread over 13 Nov–13 Dec: 29/30 of it (48 kWh) before 12 Dec, × 2
    assert energy(bills["2026-11-12"]) == 96.0


def test_the_site_message_passes_the_ingest_bridge(tmp_path):
    from vatio.agent.ingest.lineproto import to_line
    from vatio.agent.messages import MessageBuilder
    from vatio.agent.metrics.site import SITE_DEVICE
    from vatio.agent.seqstore import SeqStore

    site = bill_site()
    site.observe("red", {"energy_import_kwh": 0.0, "energy_export_kwh": 0.0}, ts(2026, 11, 2))
    site.observe("red", {"energy_import_kwh": 10.0, "energy_export_kwh": 1.0}, ts(2026, 11, 2, 1))
    values, quality, extra = site.values(ts(2026, 11, 2, 1))
    builder = MessageBuilder("s", "gw", SeqStore(tmp_path / "seq.sqlite"))
    msg = builder.metrics(SITE_DEVICE, values, ts(2026, 11, 2, 1), quality=quality, **extra)
    assert msg.topic == "vatio/v1/s/_site/metrics"
    line = to_line(msg.topic, msg.payload)
    assert line is not None and line.startswith("metrics,site=s,device=_site ")
    assert "bill_energy_base_mxn=" in line and "site_export_today_kwh=1.0" in line

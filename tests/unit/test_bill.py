"""The GDMTH bill's rules, table-driven, each against domain.md or a hand-worked figure."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from vatio.agent.metrics.bill import (
    BillingPeriodError,
    Credit,
    Usage,
    billed_demand_kw,
    billing_days,
    capacity_kw,
    compute_bill,
    distribution_kw,
    expire_credits,
    net_energy,
    project,
    umbral_kw,
)
from vatio.agent.metrics.prices import PriceRow

PRICES = PriceRow(
    month="2026-11",
    division="test",
    energy_base=D("1.1000"),
    energy_intermedia=D("1.9000"),
    energy_punta=D("2.2000"),
    transmission=D("0.1000"),
    cenace=D("0.0100"),
    scnmem=D("0.0050"),
    fixed=D("500.00"),
    capacity=D("350.00"),
    distribution=D("100.00"),
    vat_pct=D("16"),
    source="hand-made for this test",
)


@pytest.mark.parametrize(
    ("kwh", "days", "expected"),
    [
        (D(100_000), 30, D("243.66")),  # domain.md §4.2 and §6 (the wiki's worked example)
        (D(0), 30, D("0.00")),
        (D(8208), 30, D("20.00")),  # 30·24·0.57 = 410.4 h: 8208 kWh → 20 kW
    ],
)
def test_umbral(kwh, days, expected):
    assert umbral_kw(kwh, days) == expected


@pytest.mark.parametrize(
    ("punta", "umbral", "has_punta", "expected"),
    [
        (D(350), D("243.66"), True, D("243.66")),  # §4.2: Dmax_punta 350 → the umbral
        (D(200), D("243.66"), True, D(200)),  # §4.2: Dmax_punta 200 → 200
        (D(0), D("243.66"), False, D("243.66")),  # no punta hour: the umbral alone
        (D(500), D("243.66"), False, D("243.66")),
    ],
)
def test_capacity_is_the_lower_of_punta_demand_and_umbral(punta, umbral, has_punta, expected):
    assert capacity_kw(punta, umbral, has_punta) == expected


@pytest.mark.parametrize(
    ("demands", "umbral", "expected"),
    [
        ({"base": D(90), "intermedia": D(300), "punta": D(150)}, D("243.66"), D("243.66")),
        ({"base": D(90), "intermedia": D(120), "punta": D(150)}, D("243.66"), D(150)),
        ({"base": D(200), "intermedia": D(0), "punta": D(0)}, D("243.66"), D(200)),
    ],
)
def test_distribution_uses_the_highest_period_demand(demands, umbral, expected):
    assert distribution_kw(demands, umbral) == expected


@pytest.mark.parametrize(
    ("peak", "billed"), [(120.0, 120), (120.0000000001, 120), (120.01, 121), (0.2, 1), (0, 0)]
)
def test_a_fraction_of_a_kw_is_billed_as_a_whole_kw(peak, billed):
    assert billed_demand_kw(peak) == billed  # domain.md §4.1 (GDMTH §7.3)


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (dt.date(2026, 11, 1), dt.date(2026, 12, 1), 30),
        (dt.date(2026, 1, 15), dt.date(2026, 2, 19), 35),
        (dt.date(2026, 1, 15), dt.date(2026, 2, 20), None),  # 36 days: refused
        (dt.date(2026, 1, 15), dt.date(2026, 1, 15), None),  # empty: refused
    ],
)
def test_billing_periods_longer_than_35_days_are_refused(start, end, days):
    if days is None:
        with pytest.raises(BillingPeriodError, match=str(start)):
            billing_days(start, end)
    else:
        assert billing_days(start, end) == days


def usage(**kw):
    base = dict(
        start=dt.date(2026, 11, 1),
        end=dt.date(2026, 12, 1),
        kwh={"base": 2000.4, "intermedia": 5000.0, "punta": 1000.0},
        kvarh=0.0,
        peak_kw={"base": 10.0, "intermedia": 25.2, "punta": 30.0},
        has_punta=True,
    )
    base.update(kw)
    return Usage(**base)


def test_a_hand_worked_bill_line_by_line():
    """30 days, 8 000 kWh (2 000.4 base → 2 000), kVArh 0 → FP 100 % → credit 2.5 %.

    umbral = 8000 / (30·24·0.57) = 8000 / 410.4 = 19.4932 → 19.49 kW;
    capacity = min(D_punta 30, 19.49) = 19.49; distribution = min(max(10, 26, 30), 19.49).
    energy: 2000·1.10 = 2200.00; 5000·1.90 = 9500.00; 1000·2.20 = 2200.00
    transmission 8000·0.10 = 800.00; CENACE 8000·0.01 = 80.00; SCnMEM 8000·0.005 = 40.00
    fixed 500.00; capacity 19.49·350 = 6821.50; distribution 19.49·100 = 1949.00
    supply = 24090.50; FP credit 2.5 % of it = −602.26 (602.2625 half up);
    subtotal 23488.24; VAT 16 % = 3758.1184 → 3758.12; total 27246.36.
    """
    bill = compute_bill(usage(), PRICES)
    amounts = {x.key: x.amount for x in bill.lines}
    assert amounts == {
        "energy_base": D("2200.00"),
        "energy_intermedia": D("9500.00"),
        "energy_punta": D("2200.00"),
        "transmission": D("800.00"),
        "cenace": D("80.00"),
        "scnmem": D("40.00"),
        "fixed": D("500.00"),
        "capacity": D("6821.50"),
        "distribution": D("1949.00"),
        "power_factor": D("-602.26"),
        "vat": D("3758.12"),
    }
    assert bill.line("energy_base").quantity == 2000
    assert bill.line("capacity").quantity == D("19.49")
    assert bill.line("power_factor").price == D("-2.5")
    assert bill.subtotal == D("23488.24")
    assert bill.total == D("27246.36")
    assert bill.flags == ()


def test_power_factor_surcharge_on_energy_and_demand_only():
    """FP 80 % (1000 kWh : 750 kVArh per domain.md §6, scaled) → recargo 7.5 %. Base
    energy_demand: energy 13 900.00 + capacity 6 821.50 + distribution 1 949.00 = 22 670.50
    → 1 700.2875 → 1 700.29."""
    bill = compute_bill(usage(kvarh=6000.3), PRICES, pf_base="energy_demand")
    pf = bill.line("power_factor")
    assert pf.quantity == D("80.00")
    assert pf.price == D("7.5")
    assert pf.amount == D("1700.29")


def test_no_punta_hour_bills_capacity_on_the_umbral():
    bill = compute_bill(
        usage(has_punta=False, peak_kw={"base": 5, "intermedia": 5, "punta": 0}), PRICES
    )
    assert bill.line("capacity").quantity == D("19.49")
    assert bill.line("distribution").quantity == 5


def test_without_prices_the_bill_shows_quantities_and_no_amounts():
    bill = compute_bill(usage(), None)
    assert bill.flags == ("no_prices",)
    assert bill.total is None
    assert all(x.amount is None for x in bill.lines)
    assert bill.line("energy_intermedia").quantity == 5000
    assert bill.line("distribution").quantity == D("19.49")


def test_example_prices_are_flagged():
    bill = compute_bill(usage(), PRICES.model_copy(update={"example": True}))
    assert "example_prices" in bill.flags


def test_projection_at_the_current_pace():
    u = usage()
    start = dt.datetime(2026, 11, 1)
    p = project(u, start + dt.timedelta(days=10), start)  # a third of the period
    assert p.kwh["intermedia"] == pytest.approx(15000.0)
    assert p.peak_kw == u.peak_kw  # demand as measured
    assert project(u, start + dt.timedelta(days=31), start).kwh == u.kwh  # never scaled down


IMPORTED = {"base": 100.0, "intermedia": 300.0, "punta": 50.0}


@pytest.mark.parametrize(
    ("scheme", "exported", "credits", "billed", "left", "surplus"),
    [
        ("none", {"intermedia": 400.0}, [], IMPORTED, [], {}),
        # exports offset imports in the same tariff period; a surplus becomes a credit
        (
            "medicion_neta",
            {"intermedia": 400.0},
            [],
            {"base": 100.0, "intermedia": 0.0, "punta": 50.0},
            [],
            {"intermedia": 100.0},
        ),
        # older credits of the same tariff period pay, oldest first
        (
            "medicion_neta",
            {},
            [Credit("2026-09-01", {"base": 60.0}), Credit("2026-10-01", {"base": 60.0})],
            {"base": 0.0, "intermedia": 300.0, "punta": 50.0},
            [Credit("2026-10-01", {"base": 20.0})],
            {},
        ),
    ],
)
def test_net_metering(scheme, exported, credits, billed, left, surplus):
    b, l_, s = net_energy(IMPORTED, exported, credits, scheme)
    assert b == billed
    assert l_ == left
    assert {k: v for k, v in s.items() if v} == surplus


def test_net_metering_does_not_change_the_bank_in_place():
    bank = [Credit("2026-09-01", {"base": 60.0})]
    net_energy(IMPORTED, {}, bank, "medicion_neta")
    assert bank[0].kwh == {"base": 60.0}


def test_credits_lapse_after_12_billing_periods():
    periods = [f"2026-{m:02d}-01" for m in range(1, 13)] + ["2027-01-01"]
    bank = [Credit("2026-01-01", {"base": 1.0}), Credit("2026-02-01", {"base": 1.0})]
    assert [c.period for c in expire_credits(bank, periods)] == ["2026-02-01"]
    assert len(expire_credits(bank, periods[:12])) == 2

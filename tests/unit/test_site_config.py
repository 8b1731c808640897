"""Device roles and the bill section: what is checked when the config loads."""

from __future__ import annotations

import textwrap

import pytest

from vatio.agent.config import ConfigError, parse_config_text
from vatio.agent.metrics.site import build_site

HEAD = """\
site: s
buses:
  b: {type: modbus-tcp, host: 127.0.0.1, port: 5020}
devices:
"""

NO_EXPORT = """\
model: IMPORT-ONLY
manufacturer: test
source: a test profile with an import counter and no export counter
defaults: {register_type: input, data_type: f32}
registers:
  active_power_w: 0x000C
  energy_import_kwh: 0x0048
"""


def load(devices: str, extra: str = "", tmp_path=None):
    text = HEAD + textwrap.indent(textwrap.dedent(devices), "  ") + textwrap.dedent(extra)
    return parse_config_text(text, base_dir=tmp_path, file="f.yaml")


def problems(devices: str, extra: str = "", tmp_path=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(devices, extra, tmp_path)
    return [str(p) for p in info.value.problems]


def test_roles_and_a_bill_load():
    loaded = load(
        """\
        red: {bus: b, unit: 1, profile: eastron_sdm630, role: grid}
        fv: {bus: b, unit: 2, profile: eastron_sdm120, role: generation}
        horno: {bus: b, unit: 3, profile: eastron_sdm120}
        """,
        "bill: {division: bajio, cut_off_day: 12, net_metering: medicion_neta}\n",
    )
    assert loaded.config.devices["horno"].role == "load"
    site = build_site(loaded)
    assert site is not None and site.grid == "red" and site.grid_has_export is True
    assert site.bill_settings is not None and site.bill_settings.cut_off_day == 12


def test_no_roles_and_no_bill_means_no_site_aggregator():
    assert build_site(load("m: {bus: b, unit: 1, profile: eastron_sdm630}\n")) is None


def test_a_second_grid_meter_is_refused_at_its_role():
    out = problems(
        """\
        a: {bus: b, unit: 1, profile: eastron_sdm630, role: grid}
        c: {bus: b, unit: 2, profile: eastron_sdm630, role: grid}
        """
    )
    assert out == [
        "f.yaml:6: devices.c.role: a site has one grid meter (the CFE supply point); 'a' is "
        "already role: grid. Make this one role: load, or split the site"
    ]


def test_a_generation_device_without_its_counter_is_refused(tmp_path):
    (tmp_path / "imp.yaml").write_text(NO_EXPORT)
    out = problems(
        "fv: {bus: b, unit: 1, profile: ./imp.yaml, role: generation}\n", tmp_path=tmp_path
    )
    assert len(out) == 1
    assert out[0].startswith(
        "f.yaml:5: devices.fv.role: a generation device must publish its "
        "production counter energy_export_kwh"
    )
    assert "energy_import_kwh" in out[0]  # what it has
    # … and accepted once told which counter counts production
    loaded = load(
        "fv: {bus: b, unit: 1, profile: ./imp.yaml, role: generation,"
        " metrics: {generation_counter: energy_import_kwh}}\n",
        tmp_path=tmp_path,
    )
    assert loaded.config.devices["fv"].metrics.generation_counter == "energy_import_kwh"


def test_a_grid_meter_without_export_is_accepted_and_known_to_lack_it(tmp_path):
    (tmp_path / "imp.yaml").write_text(NO_EXPORT)
    loaded = load("red: {bus: b, unit: 1, profile: ./imp.yaml, role: grid}\n", tmp_path=tmp_path)
    site = build_site(loaded)
    assert site is not None and site.grid_has_export is False


@pytest.mark.parametrize(
    ("bill", "expected"),
    [
        ("bill: {division: atlantida}\n", "f.yaml:6: bill.division: division 'atlantida' has no"),
        (
            "bill: {division: bajio, reading_dates: [2026-01-10, 2026-02-20]}\n",
            "f.yaml:6: bill.reading_dates: the billing period 2026-01-10…2026-02-20"
            " (reading_dates[0]…[1]) is 41 days",
        ),
        ("bill: {division: bajio, cut_off_day: 31}\n", "f.yaml:6: bill.cut_off_day:"),
        ("bill: {division: bajio, net_metering: maybe}\n", "f.yaml:6: bill.net_metering:"),
    ],
)
def test_bill_settings_are_checked(bill, expected):
    out = problems("red: {bus: b, unit: 1, profile: eastron_sdm630, role: grid}\n", bill)
    assert len(out) == 1, out
    assert out[0].startswith(expected), out


def test_a_bill_needs_a_grid_meter():
    out = problems("m: {bus: b, unit: 1, profile: eastron_sdm630}\n", "bill: {division: bajio}\n")
    assert out == ["f.yaml:6: bill: the bill needs the utility meter: give one device role: grid"]


def test_a_bad_price_file_is_reported_where_it_is(tmp_path):
    (tmp_path / "p.yaml").write_text("rows:\n  - month: 2026-11\n    division: x\n")
    out = problems(
        "red: {bus: b, unit: 1, profile: eastron_sdm630, role: grid}\n",
        "bill: {division: x, prices: p.yaml}\n",
        tmp_path,
    )
    assert out[0].startswith("f.yaml:6: bill.prices: the price table has errors:")
    assert any(p.startswith(f"{tmp_path / 'p.yaml'}:2: rows[0].energy_base") for p in out), out


def test_check_warns_without_prices_for_the_month_and_about_a_grid_without_export(
    tmp_path, capsys
):
    import datetime as dt

    from vatio.agent.cli import site_warnings

    (tmp_path / "imp.yaml").write_text(NO_EXPORT)
    loaded = load(
        """\
        red: {bus: b, unit: 1, profile: ./imp.yaml, role: grid}
        fv: {bus: b, unit: 2, profile: eastron_sdm120, role: generation}
        """,
        "bill: {division: bajio}\n",
        tmp_path,
    )
    later = dt.datetime(2030, 5, 2, tzinfo=dt.UTC).timestamp()
    warnings = site_warnings(loaded, later)
    assert "site balance: red (grid), fv (generation)" in capsys.readouterr().out
    assert any(w.startswith("no GDMTH prices for 2030-05 in division bajio") for w in warnings)
    assert any("grid meter 'red' has no export counter" in w for w in warnings)
    now = dt.datetime(2026, 11, 15, tzinfo=dt.UTC).timestamp()
    assert any("2026-11 prices for bajio are examples" in w for w in site_warnings(loaded, now))

"""A known month of a plant with solar, played through the metrics engine on a simulated
clock, and its bill checked line by line against the totals worked out by hand below.

Level: the whole month runs through :class:`MetricsEngine` (with the site aggregator, the
SQLite state store and a restart in the middle of the month), fed with the readings a utility
meter and a PV meter would give every 15 minutes; no sockets (a month of Modbus polls on a
fast clock does not fit in the time budget). The Modbus and MQTT path of the same site
message is covered end to end, over a shorter run, by test_site_balance_end_to_end.py.

The plant (SIN, division "test", November 2026; winter: summer ended Saturday 24 October):

* load: Mon–Fri (holidays too: the plant works on 16 November) 100 kW 06:00–18:00, 60 kW
  18:00–22:00, 20 kW otherwise; Sat and Sun 20 kW all day;
* PV: 60 kW 10:00–15:00 every day (5 h × 60 = 300 kWh/day, 9 000 kWh in 30 days);
* grid import = max(load − PV, 0), export = max(PV − load, 0): weekdays 10–15 import 40 kW,
  weekends 10–15 export 40 kW.

November 2026: Sundays 1, 8, 15, 22, 29; Saturdays 7, 14, 21, 28; Monday 16 is a holiday
(Revolución, third Monday: a "Sunday" for the tariff, domain.md §4.3); 20 ordinary weekdays.
SIN winter periods: Mon–Fri base 0–6, intermedia 6–18 and 22–24, punta 18–22; Sat base
0–8, intermedia 8–19 and 21–24, punta 19–21; Sun/holiday base 0–18, intermedia 18–24.

Import by period (kWh):

=============  ====================  ===========================  ===============
day (count)    base                  intermedia                   punta
=============  ====================  ===========================  ===============
weekday (20)   6·20 = 120            7·100 + 5·40 + 2·20 = 940    4·60 = 240
Saturday (4)   8·20 = 160            (11−5)·20 + 3·20 = 180       2·20 = 40
Sunday (5)     (18−5)·20 = 260       6·20 = 120                   —
holiday (1)    120+400+200+300=1020  4·60 + 2·20 = 280            —
month          5 360                 20 400                       4 960
=============  ====================  ===========================  ===============

Import 30 720; export: Saturdays 4·200 = 800 (intermedia), Sundays 5·200 = 1 000 (base):
1 800. Generation 9 000. Consumption = 30 720 + 9 000 − 1 800 = 37 920 (check: 21 working
days × 1 600 + 9 weekend days × 480 = 37 920). Self-consumption (9 000 − 1 800)/9 000 = 80 %;
self-sufficiency 7 200/37 920 = 18.987 %; avoided 9 000 × 0.444 = 3 996 kgCO2e (the 2024
factor applies in 2026, domain.md §3.1).

Medición neta, per tariff period: base 5 360 − 1 000 = 4 360; intermedia 20 400 − 800 =
19 600; punta 4 960; billed 28 920 kWh. Peaks: base 100 (the holiday), intermedia 100,
punta 60. umbral = 28 920 / (30·24·0.57) = 70.4678 → 70.47 kW; capacity min(60, 70.47) = 60;
distribution min(100, 70.47) = 70.47. kVArh = kWh·tan(acos 0.95) → FP 95.00 % → credit
1/4·(1 − 90/95) = 1.3158 → 1.3 % (§4.4). Prices of the test row:

==================  ===============  ==========  ===========
line                quantity         price       amount
==================  ===============  ==========  ===========
energía base        4 360 kWh        1.10        4 796.00
energía intermedia  19 600 kWh       1.90        37 240.00
energía punta       4 960 kWh        2.20        10 912.00
transmisión         28 920 kWh       0.10        2 892.00
CENACE              28 920 kWh       0.01        289.20
SCnMEM              28 920 kWh       0.005       144.60
cargo fijo          1                500.00      500.00
capacidad           60 kW            350.00      21 000.00
distribución        70.47 kW         100.00      7 047.00
supply                                           84 820.80
factor de potencia  95.00 %          −1.3 %      −1 102.67  (1 102.6704)
subtotal                                         83 718.13
IVA                 83 718.13        16 %        13 394.90  (13 394.9008)
total                                            97 113.03
==================  ===============  ==========  ===========
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import run_cli
from vatio.agent.config import parse_config_text
from vatio.agent.metrics.engine import MetricsEngine, MetricsStore
from vatio.agent.metrics.site import SITE_DEVICE, build_site
from vatio.drivers.reading import PollResult

TZ = ZoneInfo("America/Mexico_City")
START = dt.datetime(2026, 10, 31, 23, 0, tzinfo=TZ)
END = dt.datetime(2026, 12, 1, 0, 30, tzinfo=TZ)
RESTART = dt.datetime(2026, 11, 15, 12, 7, tzinfo=TZ)  # mid-month, mid-block
TAN = math.tan(math.acos(0.95))

PRICES = """\
tariff: GDMTH
rows:
  - {month: 2026-11, division: test, energy_base: 1.10, energy_intermedia: 1.90,
     energy_punta: 2.20, transmission: 0.10, cenace: 0.01, scnmem: 0.005, fixed: 500,
     capacity: 350, distribution: 100, vat_pct: 16, source: "hand-made for this test"}
"""

CONFIG = """\
site: s
state_dir: {state}
buses: {{b: {{type: modbus-tcp, host: 127.0.0.1, port: 5020}}}}
devices:
  red: {{bus: b, unit: 1, profile: eastron_sdm630, role: grid}}
  fv: {{bus: b, unit: 2, profile: eastron_sdm120, role: generation}}
bill: {{division: test, prices: prices.yaml, net_metering: medicion_neta}}
"""


def load_kw(local: dt.datetime) -> float:
    if local.weekday() >= 5:
        return 20.0
    h = local.hour
    return 100.0 if 6 <= h < 18 else 60.0 if 18 <= h < 22 else 20.0


def pv_kw(local: dt.datetime) -> float:
    return 60.0 if 10 <= local.hour < 15 else 0.0


def engine_for(tmp_path, loaded):
    store = MetricsStore(tmp_path / "metrics.sqlite")
    engine = MetricsEngine(
        loaded.config.metrics, {n: d.metrics for n, d in loaded.devices.items()}, store
    )
    engine.attach_site(build_site(loaded, engine.factors))
    return engine


def test_a_known_month_gives_the_bill_worked_out_by_hand(tmp_path):
    (tmp_path / "prices.yaml").write_text(PRICES)
    config = tmp_path / "vatio.yaml"
    config.write_text(CONFIG.format(state=tmp_path))
    loaded = parse_config_text(config.read_text(), base_dir=tmp_path, file=str(config))
    engine = engine_for(tmp_path, loaded)
    imp = exp = gen = 0.0
    t = START
    step = dt.timedelta(minutes=15)
    mid_month = None
    while t <= END:
        if t > RESTART and mid_month is None:
            # a restart: the state goes to disk, a new engine takes it up
            engine.save()
            engine.store.close()
            engine = engine_for(tmp_path, loaded)
            mid_month = engine.site.values(t.timestamp())[0]
        ts = t.timestamp()
        engine.observe(
            PollResult(
                "red",
                ts,
                {
                    "energy_import_kwh": imp,
                    "energy_export_kwh": exp,
                    "reactive_energy_import_kvarh": imp * TAN,
                    "active_power_w": 0.0,
                },
            )
        )
        engine.observe(PollResult("fv", ts, {"energy_export_kwh": gen}))
        # the next quarter hour at this hour's constant powers (steps fall on whole hours)
        net = load_kw(t) - pv_kw(t)
        imp += max(net, 0.0) / 4
        exp += max(-net, 0.0) / 4
        gen += pv_kw(t) / 4
        t += step
    engine.save()
    assert mid_month is not None and mid_month["bill_total_mxn"] is not None

    history = {k: r for _, k, r in engine.store.history("bill", SITE_DEVICE)}
    nov = history["2026-11-01"]
    assert nov["imported_kwh"] == pytest.approx(
        {"base": 5360.0, "intermedia": 20400.0, "punta": 4960.0}
    )
    assert nov["exported_kwh"] == pytest.approx({"base": 1000.0, "intermedia": 800.0, "punta": 0})
    assert nov["peak_kw"] == pytest.approx({"base": 100.0, "intermedia": 100.0, "punta": 60.0})
    bill = nov["bill"]
    assert bill["days"] == 30 and bill["flags"] == [] and bill["prices_month"] == "2026-11"
    lines = {x["key"]: (x["quantity"], x["price"], x["amount"]) for x in bill["lines"]}
    assert lines == {
        "energy_base": (4360, 1.10, 4796.00),
        "energy_intermedia": (19600, 1.90, 37240.00),
        "energy_punta": (4960, 2.20, 10912.00),
        "transmission": (28920, 0.10, 2892.00),
        "cenace": (28920, 0.01, 289.20),
        "scnmem": (28920, 0.005, 144.60),
        "fixed": (1, 500.0, 500.00),
        "capacity": (60, 350.0, 21000.00),
        "distribution": (70.47, 100.0, 7047.00),
        "power_factor": (95.0, -1.3, -1102.67),
        "vat": (83718.13, 16.0, 13394.90),
    }
    assert Decimal(str(bill["subtotal"])) == Decimal("83718.13")
    assert Decimal(str(bill["total"])) == Decimal("97113.03")

    # October had one hour in the data and no prices in the table: quantities, no amounts
    october = history["2026-10-01"]["bill"]
    assert october["flags"] == ["no_prices"] and october["total"] is None

    month = {k: r for _, k, r in engine.store.history("balance_month", SITE_DEVICE)}["2026-11"]
    assert month["import_kwh"] == pytest.approx(30720.0)
    assert month["export_kwh"] == pytest.approx(1800.0)
    assert month["generation_kwh"] == pytest.approx(9000.0)
    assert month["consumption_kwh"] == pytest.approx(37920.0)
    assert month["self_consumption_pct"] == pytest.approx(80.0)
    assert month["self_sufficiency_pct"] == pytest.approx(7200 / 37920 * 100, abs=0.001)
    assert month["avoided_kgco2e"] == pytest.approx(9000 * 0.444)

    days = {k: r for _, k, r in engine.store.history("balance_day", SITE_DEVICE)}
    sunday = days["2026-11-01"]
    assert sunday["import_kwh"] == pytest.approx(380.0)  # 19 h × 20 kW
    assert sunday["export_kwh"] == pytest.approx(200.0)
    assert sunday["consumption_kwh"] == pytest.approx(480.0)
    assert sunday["self_sufficiency_pct"] == pytest.approx(100 / 480 * 100, abs=0.001)
    engine.store.close()

    # `vatio history --bills` prints the closed bill the way the paper shows it
    out = run_cli("history", "-c", str(config), "--bills")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "closed: 2026-11-01 … 2026-12-01 (30 d)" in text
    assert re.search(r"Distribución\s+70\.47 kW\s+100\s+7,047\.00", text), text
    assert re.search(r"Factor de potencia\s+95 % FP\s+-1\.3\s+-1,102\.67", text), text
    assert re.search(r"Total\s+97,113\.03", text), text
    out = run_cli("history", "-c", str(config), "--balance", "--months", "--json")
    months = {r["month"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert months["2026-11"]["self_consumption_pct"] == pytest.approx(80.0)

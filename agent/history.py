"""`vatio history`: the closed days and months the metrics engine kept in the state directory.

Totals that matter for a bill (energy by tariff period, the billed peak, the power factor)
stay on the device even when no database is reachable: this prints them as a table or JSON.
``--bills`` prints each closed billing period's bill line by line and the running one as
last saved; ``--balance`` the site's balance (import, export, generation, consumption).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from vatio.agent.config import LoadedConfig
from vatio.agent.metrics.engine import MetricsStore
from vatio.common.i18n import tr

PERIODS = ("base", "intermedia", "punta")


def _row(kind: str, device: str, key: str, r: dict[str, Any]) -> list[str]:
    by = r["kwh_by_period"]
    cells = [key, device, f"{r['kwh']:.3f}", *(f"{by[p]:.3f}" for p in PERIODS)]
    if kind == "day":
        return [*cells, f"{r['peak_kw']:.2f}", f"{r['kgco2e']:.3f}"]
    pf = r.get("power_factor_pct")
    return [
        *cells,
        f"{r['billed_peak_kw']}",
        "-" if pf is None else f"{pf:.2f}",
        f"{r['kgco2e']:.3f}",
    ]


def has_history(path: Path) -> bool:
    """Whether the agent has written its metrics file yet; if not, say so."""
    if path.exists():
        return True
    print(
        tr("no history yet: {path} does not exist (the agent writes it while it runs)", path=path)
    )
    return False


def history_command(state_dir: Path, kind: str, device: str | None, as_json: bool) -> int:
    path = state_dir / "metrics.sqlite"
    if not has_history(path):
        return 0
    try:
        store = MetricsStore(path)
        rows = store.history(kind, device)
        store.close()
    except sqlite3.Error as exc:
        print(f"error: cannot read {path}: {exc}")
        return 1
    if as_json:
        for d, key, record in rows:
            print(json.dumps({"device": d, kind: key, **record}))
        return 0
    if not rows:
        print(tr("no closed {kind}s yet", kind=kind) + (f": {device}" if device else ""))
        return 0
    head = [kind, "device", "kWh", "base", "intermedia", "punta"]
    head += ["peak kW", "kgCO2e"] if kind == "day" else ["billed kW", "FP %", "kgCO2e"]
    table = [head] + [_row(kind, d, key, r) for d, key, r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return 0


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _qty(x: float | None, decimals: int = 2) -> str:
    if x is None:
        return "-"
    text = f"{x:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def print_bill(bill: dict[str, Any], title: str) -> None:
    """One bill the way the paper shows it: concept, quantity, price, amount."""
    print(f"{title}: {bill['start']} … {bill['end']} ({bill['days']} d)")
    flags = bill.get("flags") or []
    if "no_prices" in flags:
        print(tr("  no prices for this month in the price table: quantities only"))
    if "example_prices" in flags:
        print(tr("  EXAMPLE prices (not sourced from CFE): amounts are illustrations"))
    rows = [
        [x["label"], f"{_qty(x['quantity'])} {x['unit']}", _qty(x["price"], 4), _money(x["amount"])]
        for x in bill["lines"]
    ]
    rows.append([tr("Total"), "", "", _money(bill.get("total"))])
    if bill.get("projected_total") is not None:
        rows.append([tr("Projected at the period's end"), "", "", _money(bill["projected_total"])])
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print(
            "  "
            + "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def bills_command(loaded: LoadedConfig, as_json: bool, now: float) -> int:
    """Closed billing periods from the history, then the running one as last saved."""
    from vatio.agent.metrics.site import SITE_DEVICE, build_site

    path = Path(loaded.config.state_dir) / "metrics.sqlite"
    if not has_history(path):
        return 0
    store = MetricsStore(path)
    try:
        closed = store.history("bill", SITE_DEVICE)
        saved = store.load(SITE_DEVICE)
    finally:
        store.close()
    running: dict[str, Any] | None = None
    site = build_site(loaded)
    if site is not None and saved and "site" in saved:
        site.restore(saved["site"])  # type: ignore[arg-type]
        so_far, projected = site.bill(now)
        if so_far is not None:
            running = so_far.as_dict()
            total = None if projected is None else projected.total
            running["projected_total"] = None if total is None else float(total)
    if as_json:
        for _d, key, record in closed:
            print(json.dumps({"period": key, "closed": True, **record}))
        if running is not None:
            print(json.dumps({"period": running["start"], "closed": False, "bill": running}))
        return 0
    if not closed and running is None:
        print(tr("no bill yet: configure bill: and a device with role: grid"))
        return 0
    for _d, _key, record in closed:
        if record.get("bill"):
            print_bill(record["bill"], tr("closed"))
        else:
            print(tr("closed period {key}: {error}", key=_key, error=record.get("error")))
    if running is not None:
        print_bill(running, tr("running (as last saved)"))
    return 0


def balance_command(state_dir: Path, kind: str, as_json: bool) -> int:
    """The site balance of closed days or months."""
    from vatio.agent.metrics.site import SITE_DEVICE

    path = state_dir / "metrics.sqlite"
    if not has_history(path):
        return 0
    store = MetricsStore(path)
    try:
        rows = store.history(f"balance_{kind}", SITE_DEVICE)
    finally:
        store.close()
    if as_json:
        for _d, key, record in rows:
            print(json.dumps({kind: key, **record}))
        return 0
    head = [
        kind,
        "import",
        "export",
        "generation",
        "consumption",
        "self-cons %",
        "self-suff %",
        "avoided kgCO2e",
    ]
    fields = [
        "import_kwh",
        "export_kwh",
        "generation_kwh",
        "consumption_kwh",
        "self_consumption_pct",
        "self_sufficiency_pct",
        "avoided_kgco2e",
    ]
    table = [head] + [[key, *(_qty(r.get(f)) for f in fields)] for _d, key, r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return 0

"""`vatio history`: the closed days and months the metrics engine kept in the state directory.

Totals that matter for a bill (energy by tariff period, the billed peak, the power factor)
stay on the device even when no database is reachable: this prints them as a table or JSON.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

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


def history_command(state_dir: Path, kind: str, device: str | None, as_json: bool) -> int:
    path = state_dir / "metrics.sqlite"
    if not path.exists():
        print(
            tr(
                "no history yet: {path} does not exist (the agent writes it while it runs)",
                path=path,
            )
        )
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

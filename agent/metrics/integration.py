"""Energy by integrating power, for devices without an energy counter.

Trapezoid rule between consecutive readings. A gap longer than ``max_gap_s`` is not bridged
(no energy is invented for time nobody measured): the interval is skipped and flagged
``gap``, so totals can say they are incomplete. A clock that steps back (NTP) restarts the
integration (``clock_back``). On an import-only meter, negative power is counted as 0 and
flagged ``negative``.
"""

from __future__ import annotations

import math

from vatio.agent.metrics.counters import Delta


class PowerIntegrator:
    def __init__(self, max_gap_s: float = 120.0, import_only: bool = True) -> None:
        self.max_gap_s = max_gap_s
        self.import_only = import_only
        self.last: tuple[float, float] | None = None  # (ts, watts)

    def update(self, power_w: float | None, ts: float) -> Delta:
        if power_w is None or not math.isfinite(power_w):
            return Delta(0.0, "invalid")
        flag = ""
        if self.import_only and power_w < 0:
            power_w, flag = 0.0, "negative"
        previous, self.last = self.last, (ts, power_w)
        if previous is None:
            return Delta(0.0, flag or "first")
        t0, p0 = previous
        dt = ts - t0
        if dt <= 0:
            return Delta(0.0, "clock_back")
        if dt > self.max_gap_s:
            return Delta(0.0, "gap")
        return Delta((p0 + power_w) / 2 * dt / 3.6e6, flag)

"""Energy from a meter's counter: deltas between readings, robust to what real counters do.

A counter register (``energy_import_kwh``) only grows, except when it

* **rolls over** at its register's limit (an integer meter at 99 999.9 kWh → 0): the delta
  wraps around the limit, when the profile states one;
* is **reset** (a technician clears it) and restarts near 0;
* belongs to a **replaced** meter, which starts at its own reading.

A decrease is never negative energy, and never a spike: after a reset or a replacement the
new reading becomes the baseline and only the energy counted since a plausible restart from
zero is taken (none if the restart cannot be told apart from a replacement). Every delta
carries a flag saying which case it was, so nothing is silently guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Delta:
    kwh: float
    flag: str = ""  # "", "first", "rollover", "reset", "replaced", "invalid", "implausible"


class CounterTracker:
    def __init__(self, rollover_kwh: float | None = None, max_power_kw: float | None = None):
        """``rollover_kwh``: the counter's wrap value, if any. ``max_power_kw``: the most the
        circuit can draw; it tells a restart from zero from a meter replacement and rejects
        increases no circuit could produce."""
        self.rollover = rollover_kwh
        self.max_power = max_power_kw
        self.last: float | None = None
        self.last_ts: float | None = None

    def _possible(self, kwh: float, hours: float | None) -> bool:
        if self.max_power is None or hours is None:
            return True
        return kwh <= self.max_power * max(hours, 1 / 3600) * 1.5 + 0.001

    def update(self, value: float | None, ts: float) -> Delta:
        if value is None or not math.isfinite(value) or value < 0:
            return Delta(0.0, "invalid")
        hours = (ts - self.last_ts) / 3600 if self.last_ts is not None else None
        hours = hours if hours is None or hours > 0 else None  # a clock step back: no rate
        previous, self.last, self.last_ts = self.last, value, ts
        if previous is None:
            return Delta(0.0, "first")
        if value >= previous:
            kwh = value - previous
            if not self._possible(kwh, hours):
                return Delta(0.0, "implausible")
            return Delta(kwh)
        if self.rollover is not None:
            wrapped = self.rollover - previous + value
            if wrapped >= 0 and self._possible(wrapped, hours) and previous > self.rollover / 2:
                return Delta(wrapped, "rollover")
        if self.max_power is not None and self._possible(value, hours):
            return Delta(value, "reset")  # restarted from zero: count what it has counted
        return Delta(0.0, "replaced" if value > 0 else "reset")

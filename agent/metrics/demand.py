"""Demand: average power over 15-minute windows, the way CFE bills it (domain.md §4.1, §6).

Fed with energy increments (kWh and the time they were measured at, from counter deltas or
integrated power), it keeps

* clock-aligned blocks (:00, :15, :30, :45): the current block's average so far, the last
  completed block, and the billing period's peak;
* a sliding window over the last 15 minutes (whether CFE meters slide or use blocks is
  UNCONFIRMED, so both are kept; the sliding maximum is >= the block maximum).

kW = kWh in the window × 60/15. The billed peak rounds any fraction of a kW up (GDMTH §7.3).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WINDOW_S = 900.0


@dataclass
class DemandState:
    block_start: float | None = None
    block_kwh: float = 0.0
    last_block_kw: float | None = None
    peak_block_kw: float = 0.0
    peak_sliding_kw: float = 0.0
    sliding: deque[tuple[float, float]] = field(default_factory=deque)
    _sliding_kwh: float = field(default=0.0, init=False, repr=False)
    _adds: int = field(default=0, init=False, repr=False)
    booked_kwh: float = field(default=0.0, init=False)  # all energy added since start

    def __post_init__(self) -> None:
        self._sliding_kwh = math.fsum(k for _, k in self.sliding)  # a restored window

    def add(self, ts: float, kwh: float) -> float | None:
        """Add energy measured at ``ts``; returns a completed block's kW when one closed."""
        closed = None
        start = math.floor(ts / WINDOW_S) * WINDOW_S
        if self.block_start is None:
            self.block_start = start
        elif start > self.block_start:
            closed = self.block_kwh * 3600 / WINDOW_S
            self.last_block_kw = closed
            self.peak_block_kw = max(self.peak_block_kw, closed)
            self.block_start, self.block_kwh = start, 0.0
        if start == self.block_start:  # energy from the past (a clock step back) is not moved
            self.block_kwh += kwh
        self.booked_kwh += kwh
        self.sliding.append((ts, kwh))
        self._sliding_kwh += kwh
        while self.sliding and self.sliding[0][0] <= ts - WINDOW_S:
            self._sliding_kwh -= self.sliding.popleft()[1]
        self._adds += 1
        if self._adds % 1000 == 0:  # a running sum drifts: recount now and then
            self._sliding_kwh = math.fsum(k for _, k in self.sliding)
        self.peak_sliding_kw = max(self.peak_sliding_kw, self.sliding_kw)
        return closed

    @property
    def sliding_kw(self) -> float:
        return max(self._sliding_kwh, 0.0) * 3600 / WINDOW_S

    def current_kw(self, now: float) -> float | None:
        """Average power of the current block so far."""
        if self.block_start is None or now <= self.block_start:
            return None
        return self.block_kwh * 3600 / (now - self.block_start)

    @property
    def billed_peak_kw(self) -> int:
        """The billing period's peak block demand, any fraction of a kW rounded up."""
        return math.ceil(round(self.peak_block_kw, 9))

    def new_billing_period(self) -> None:
        self.peak_block_kw = self.peak_sliding_kw = 0.0

    def saved(self) -> dict[str, Any]:
        """What the metrics state keeps of it across restarts (see :meth:`restored`)."""
        return {
            "block_start": self.block_start,
            "block_kwh": self.block_kwh,
            "last_block_kw": self.last_block_kw,
            "peak_block_kw": self.peak_block_kw,
            "peak_sliding_kw": self.peak_sliding_kw,
            "sliding": list(self.sliding),
        }

    @classmethod
    def restored(cls, d: Mapping[str, Any]) -> DemandState:
        """The state :meth:`saved` wrote (a site state of an older version has no window)."""
        return cls(
            block_start=d["block_start"],
            block_kwh=d["block_kwh"],
            last_block_kw=d["last_block_kw"],
            peak_block_kw=d["peak_block_kw"],
            peak_sliding_kw=d.get("peak_sliding_kw", 0.0),
            sliding=deque(tuple(x) for x in d.get("sliding", ())),
        )

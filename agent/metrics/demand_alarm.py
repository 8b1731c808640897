"""The projected demand alarm: warn while a 15-minute block can still be saved.

CFE bills the highest 15-minute block average of the month (domain.md §4.1). Vatio's
``demand_high`` event comes when a block *closes* above the limit, when nothing can be done
about it any more. A demand controller instead projects the block's average at its end from
the energy already used and the power drawn now, and warns while there is time to shed a
load:

    projected_kW = (E_so_far + P_now × t_left) / 0.25 h

Rules (figures from ``python -m bench.demand_alarm``: five simulated weekdays, 480 blocks,
45 of them above a 60 kW limit; "false" is an alarm in a block that ended below the limit):

* ``P_now`` is the mean power of the last :data:`POWER_WINDOW_S` seconds (from the energy
  booked between readings, :class:`RecentPower`), not the instantaneous reading: a motor's
  inrush (3× for a few seconds) would otherwise project a peak that never comes (with the
  reading's own power: 156 false alarms instead of 68).
* No projection before :data:`MIN_ELAPSED_S` seconds of the block have been measured: in the
  first seconds the projection is ``P_now`` alone, i.e. the naive "power above the limit"
  alarm. Projecting from the first second: 81 false alarms; after 60 s: 73; after 120 s:
  68, for a median lead time of 13 instead of 14.7 minutes; after 300 s: 42 but 10 minutes.
  Two minutes keeps the lead time of a block that starts high and leaves 13 minutes.
* ``demand_projected_high`` when the projection goes above the limit, once: not again while
  it stays above, however long; ``demand_projected_ok`` when an active alarm's projection
  falls below :data:`CLEAR_RATIO` × limit (hysteresis: a projection hovering at the limit
  does not flap: clearing at 100 % gave 23 oks in blocks that still ended above the limit,
  98 % 14, 95 % 11, 90 % 9 but later). After an ok the block may raise a high again if the
  projection crosses once more (a load put back too soon): with one high per block and no
  more, 5 of the 45 blocks ended above the limit with the alarm off; re-armed, none, for 12
  more highs in 5 days. An alarm still active when its block closes stays active; the new
  block raises its own ``high`` if its projection is above the limit too, so a supervisor
  always learns which block is in danger.
* A block the agent joined late (start-up, or a gap of more than :data:`MAX_GAP_S`) is
  projected over the part that was measured: the unmeasured minutes are assumed to have
  drawn the block's average so far (``E_so_far`` only covers the measured part).
* Nothing is projected while the clock is untrusted (the engine does not call
  :meth:`DemandAlarm.update` then) nor for a reading older than the previous one (a clock
  stepped back): the block it belongs to is not known.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from vatio.agent.messages import rfc3339

WINDOW_S = 900.0
MIN_ELAPSED_S = 120.0
POWER_WINDOW_S = 60.0
CLEAR_RATIO = 0.95
MAX_GAP_S = 120.0

AlarmKind = Literal["demand_projected_high", "demand_projected_ok"]
# a metrics event, as the engine returns them: (kind, message) or (kind, message, fields);
# fields go into the event's JSON beside the message
Event = tuple[str, str] | tuple[str, str, dict[str, Any]]


def projected_kw(kwh_so_far: float, power_kw: float, elapsed_s: float, left_s: float) -> float:
    """The block's average at its end if ``power_kw`` goes on for ``left_s`` seconds.

    ``elapsed_s`` is the measured part of the block (900 − ``left_s`` when measured from its
    start)."""
    return (kwh_so_far + max(power_kw, 0.0) * left_s / 3600) * 3600 / (elapsed_s + left_s)


class RecentPower:
    """Mean power over the last ``window_s`` seconds, from a running energy total; when
    readings are sparser than the window, over the last interval between readings."""

    def __init__(self, window_s: float = POWER_WINDOW_S) -> None:
        self.window_s = window_s
        self.points: deque[tuple[float, float]] = deque()  # (ts, energy total kWh)

    def update(self, ts: float, total_kwh: float) -> float | None:
        """Add the total at ``ts``; the mean kW since the window's start (None: one point)."""
        if self.points and ts <= self.points[-1][0]:
            if ts < self.points[-1][0]:
                self.points.clear()  # a clock stepped back: start again
            else:
                self.points.pop()
        self.points.append((ts, total_kwh))
        while len(self.points) > 2 and self.points[1][0] <= ts - self.window_s:
            self.points.popleft()
        if len(self.points) < 2:
            return None
        t0, e0 = self.points[0]
        return max(total_kwh - e0, 0.0) * 3600 / (ts - t0)


@dataclass(frozen=True)
class AlarmEvent:
    kind: AlarmKind
    projected_kw: float
    limit_kw: float
    minutes_left: float
    block_start: float

    def event(self) -> Event:
        """The alarm as an event: a message people read, and its figures."""
        if self.kind == "demand_projected_high":
            message = (
                f"15-minute demand projected at {self.projected_kw:.1f} kW, above the "
                f"{self.limit_kw:g} kW limit; {self.minutes_left:.1f} min left to shed load"
            )
        else:
            message = (
                f"15-minute demand projected at {self.projected_kw:.1f} kW, back under the "
                f"{self.limit_kw:g} kW limit"
            )
        fields: dict[str, Any] = {
            "projected_kw": round(self.projected_kw, 3),
            "limit_kw": self.limit_kw,
            "minutes_left": round(self.minutes_left, 2),
            "block_start": rfc3339(self.block_start),
            "block_end": rfc3339(self.block_start + WINDOW_S),
        }
        return (self.kind, message, fields)


class DemandAlarm:
    """One device's projection and alarm state, fed after each trusted reading."""

    def __init__(
        self,
        limit_kw: float | None,
        min_elapsed_s: float = MIN_ELAPSED_S,
        clear_ratio: float = CLEAR_RATIO,
        power_window_s: float = POWER_WINDOW_S,
        rearm: bool = True,
    ) -> None:
        self.limit_kw = limit_kw
        self.min_elapsed_s = min_elapsed_s
        self.clear_ratio = clear_ratio
        self.power = RecentPower(power_window_s)
        self.rearm = rearm  # an ok lets the same block raise another high
        self.block: float | None = None  # start of the block being projected
        self.since = 0.0  # when its measurement began (the block's start unless joined late)
        self.raised = False  # a high was already raised in this block
        self.active = False  # a high is on and no ok has followed
        self.projected: float | None = None  # the last projection, for this block
        self.last_ts: float | None = None

    def update(self, now: float, block_kwh: float, power_kw: float) -> AlarmEvent | None:
        """Project the block ``now`` is in; ``block_kwh``: its energy so far."""
        if self.last_ts is not None and now < self.last_ts:
            return None  # a clock stepped back: which block this is, is not known
        block = math.floor(now / WINDOW_S) * WINDOW_S
        if block != self.block:
            followed = self.last_ts is not None and now - self.last_ts <= MAX_GAP_S
            self.block, self.raised, self.projected = block, False, None
            self.since = block if followed else now
        self.last_ts = now
        elapsed, left = now - self.since, block + WINDOW_S - now
        if elapsed < self.min_elapsed_s or elapsed + left <= 0:
            self.projected = None  # too early: the projection would be P_now alone
            return None
        p = self.projected = projected_kw(block_kwh, power_kw, elapsed, left)
        limit = self.limit_kw
        if limit is None:
            return None
        kind: AlarmKind | None = None
        if p > limit and not self.raised:
            self.raised = self.active = True
            kind = "demand_projected_high"
        elif self.active and p < limit * self.clear_ratio:
            self.active = False
            self.raised = self.raised and not self.rearm
            kind = "demand_projected_ok"
        if kind is None:
            return None
        return AlarmEvent(kind, p, limit, left / 60, block)

    def value(self, now: float) -> float | None:
        """The projection to publish at ``now`` (None outside the projected block)."""
        if self.projected is None or math.floor(now / WINDOW_S) * WINDOW_S != self.block:
            return None
        return round(self.projected, 3)

    def state(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "since": self.since,
            "raised": self.raised,
            "active": self.active,
            "last_ts": self.last_ts,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.block = state["block"]
        self.since = state["since"]
        self.raised = state["raised"]
        self.active = state["active"]
        self.last_ts = state["last_ts"]

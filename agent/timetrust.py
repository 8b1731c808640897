"""Whether the agent trusts its wall clock now, and saying so when it does not for long.

The kernel's answer comes from :mod:`vatio.common.timesync`; ``time.require_sync`` (agent/config)
turns it into a decision. While the clock is not trusted the pipeline flags every telemetry
message (``"quality": {"_clock": "unsynchronised"}``) and the metrics engine holds what
depends on the calendar. Being unsynchronised for a few seconds after boot is normal (NTP
has not answered yet); past ``time.unsynced_grace`` it is a problem: the agent's status,
``/healthz`` and the status page say so. The log gets one line when the clock is found
unsynchronised, one warning when the grace runs out, and one line when it is synchronised
again; never one per reading.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from vatio.agent.config import TimeConfig
from vatio.common import clock, timesync

log = logging.getLogger(__name__)

QUALITY_KEY = "_clock"  # in a telemetry message's quality map: not a quantity, the whole ts
UNSYNCHRONISED = "unsynchronised"


class ClockTrust:
    def __init__(self, cfg: TimeConfig, on_change: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.on_change = on_change  # the agent republishes its status on a change
        self.state = timesync.SyncState(None, "unavailable", detail="not asked yet")
        self.trusted = True
        self.unsynced_since: float | None = None  # monotonic
        self.overdue = False  # unsynchronised past the grace (a problem)
        self.trusted_since = -math.inf  # clock.monotonic() when trust was last seen to begin
        self._said_unknown = False
        timesync.refresh()  # before the first poll: a rehearsal's clock offset applies to it

    def _decide(self, st: timesync.SyncState) -> bool:
        if self.cfg.require_sync is False:
            return True
        if st.synchronised is None:
            if self.cfg.require_sync is True:
                return False
            if not self._said_unknown:
                self._said_unknown = True
                log.warning(
                    "cannot tell whether the clock is synchronised (%s): trusting it as it is;"
                    " set time.require_sync: false if this gateway has no time source but a"
                    " correct clock, or allow adjtimex (see README, 'Time')",
                    st.detail,
                )
            return True
        return st.synchronised

    def check(self, stamped: float | None = None) -> bool:
        """Whether readings can be trusted now (cheap: the kernel's answer is cached for a
        few seconds). ``stamped``: the reading's steady time (PollResult.mono); a reading
        stamped before trust began (a poll that started before the clock stepped) is not."""
        st = self.state = timesync.state()
        trusted = self.trusted = self._decide(st)
        now = time.monotonic()
        if not trusted:
            if self.unsynced_since is None:
                self.unsynced_since = now
                log.info(
                    "clock not synchronised (%s): readings are flagged '%s', and days, months,"
                    " tariff periods and 15-minute blocks wait for the true time",
                    st.describe(), UNSYNCHRONISED,
                )  # fmt: skip
            elif not self.overdue and now - self.unsynced_since >= self.cfg.unsynced_grace:
                self.overdue = True
                log.warning(
                    "clock still not synchronised after %s (%s): check the time source (NTP"
                    " server reachable? see README, 'Time'); metrics wait until it is",
                    _duration(now - self.unsynced_since), st.describe(),
                )  # fmt: skip
                self._changed()
        elif self.unsynced_since is not None:
            log.info(
                "clock synchronised (%s) after %s: held metrics are filed at their true time",
                st.describe(), _duration(now - self.unsynced_since),
            )  # fmt: skip
            self.unsynced_since = None
            self.trusted_since = clock.monotonic()
            was_overdue, self.overdue = self.overdue, False
            if was_overdue:
                self._changed()
        return trusted and (stamped is None or stamped >= self.trusted_since)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def problem(self) -> str | None:
        """A line for /healthz and the status page, past the grace."""
        if not self.overdue or self.unsynced_since is None:
            return None
        return (
            f"clock not synchronised for {_duration(time.monotonic() - self.unsynced_since)}"
            f" ({self.state.describe()}): check the time source; metrics wait for it"
        )

    def status(self) -> dict[str, Any]:
        """What the agent's status message, /healthz and /api/status show."""
        st = self.state
        out: dict[str, Any] = {
            "synchronised": st.synchronised,
            "trusted": self.trusted,
            "source": st.source,
        }
        if st.max_error_s is not None:
            out["max_error_s"] = st.max_error_s
        if self.unsynced_since is not None:
            out["unsynchronised_for_s"] = round(time.monotonic() - self.unsynced_since, 1)
        return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"

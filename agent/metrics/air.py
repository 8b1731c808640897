"""Per-device air-quality metrics: hourly and 24-hour PM means, NowCast, US AQI, Mexico's
IAS, and a CO2 rolling mean with a threshold (CO2 is never called an AQI, domain.md §1.1).

Hours are clock hours (UTC epoch hours; Mexico's offsets are whole hours). NowCast and IAS use
the 12 most recent *complete* hours, newest first; a 24-hour mean needs 18 valid hours
(75 %, domain.md §2.4). Like :mod:`vatio.agent.metrics.electrical`, its state is JSON-ready.
"""

from __future__ import annotations

from collections import deque
from statistics import fmean
from typing import Any

from vatio.agent.metrics.air_quality import aqi, nowcast
from vatio.agent.metrics.ias_mx import LEVELS, Stage, ias, weighted_12h

POLLUTANTS = {"pm2_5": "pm2_5_ugm3", "pm10": "pm10_ugm3"}
LEVEL_NAMES = {level: name for level, name, *_ in LEVELS}


class AirQualityMetrics:
    def __init__(
        self,
        ias_stage: Stage = "2026",
        ias_adjustment: float | None = None,
        co2_window_s: float = 900.0,
        co2_limit_ppm: float = 1000.0,
    ) -> None:
        self.ias_stage: Stage = ias_stage
        self.ias_adjustment = ias_adjustment
        self.co2_window_s = co2_window_s
        self.co2_limit = co2_limit_ppm
        # pollutant → {epoch hour: [sum, count]}
        self.hours: dict[str, dict[int, list[float]]] = {p: {} for p in POLLUTANTS}
        self.co2: deque[tuple[float, float]] = deque()
        self.last_ias: int | None = None
        self.co2_high = False
        self._evaluated_hour: int | None = None

    def observe(self, values: dict[str, float | None], ts: float) -> list[tuple[str, str]]:
        """Add one poll; returns events (kind, message) for threshold crossings."""
        hour = int(ts // 3600)
        for p, quantity in POLLUTANTS.items():
            v = values.get(quantity)
            if v is not None and v >= 0:
                acc = self.hours[p].setdefault(hour, [0.0, 0.0])
                acc[0] += v
                acc[1] += 1
            for old in [h for h in self.hours[p] if h < hour - 25]:
                del self.hours[p][old]
        co2 = values.get("co2_ppm")
        if co2 is not None:
            self.co2.append((ts, co2))
        while self.co2 and self.co2[0][0] <= ts - self.co2_window_s:
            self.co2.popleft()
        return self._events(ts)

    def _hourly(self, pollutant: str, now: float) -> list[float | None]:
        """Means of the complete hours before ``now``, newest first, 24 of them."""
        current = int(now // 3600)
        out: list[float | None] = []
        for h in range(current - 1, current - 25, -1):
            acc = self.hours[pollutant].get(h)
            out.append(acc[0] / acc[1] if acc else None)
        return out

    def values(self, now: float) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        indices, levels = [], []
        for p in POLLUTANTS:
            hourly = self._hourly(p, now)
            out[f"{p}_1h_ugm3"] = None if hourly[0] is None else round(hourly[0], 2)
            valid = [v for v in hourly if v is not None]
            out[f"{p}_24h_ugm3"] = round(fmean(valid), 2) if len(valid) >= 18 else None
            nc = nowcast(hourly, p)
            out[f"{p}_nowcast_ugm3"] = None if nc is None else float(nc)
            if nc is not None:
                indices.append(aqi(float(nc), p).value)
            w = weighted_12h(hourly, self.ias_adjustment)
            if w is not None:
                levels.append(ias(w, p, self.ias_stage).level)
        out["aqi_us"] = float(max(indices)) if indices else None
        out["ias_mx"] = float(max(levels)) if levels else None
        out["co2_avg_ppm"] = round(fmean(v for _, v in self.co2), 1) if self.co2 else None
        return out

    def _ias_level(self, now: float) -> int | None:
        levels = []
        for p in POLLUTANTS:
            w = weighted_12h(self._hourly(p, now), self.ias_adjustment)
            if w is not None:
                levels.append(ias(w, p, self.ias_stage).level)
        return max(levels) if levels else None

    def _events(self, now: float) -> list[tuple[str, str]]:
        events = []
        hour = int(now // 3600)
        if hour != self._evaluated_hour:  # the IAS only moves when an hour completes
            self._evaluated_hour = hour
            level = self._ias_level(now)
            if level is not None and self.last_ias is not None and level != self.last_ias:
                before, after = LEVEL_NAMES[self.last_ias], LEVEL_NAMES[level]
                events.append(("ias_changed", f"Índice AIRE Y SALUD: {before} → {after}"))
            if level is not None:
                self.last_ias = level
        if self.co2:
            co2 = fmean(v for _, v in self.co2)
            if (co2 > self.co2_limit) != self.co2_high:
                self.co2_high = co2 > self.co2_limit
                if self.co2_high:
                    events.append(
                        ("co2_high", f"CO2 mean {co2:.0f} ppm above {self.co2_limit:g} ppm")
                    )
        return events

    def state(self) -> dict[str, Any]:
        return {
            "hours": {p: {str(h): acc for h, acc in hs.items()} for p, hs in self.hours.items()},
            "co2": list(self.co2),
            "last_ias": self.last_ias,
            "co2_high": self.co2_high,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.hours = {
            p: {int(h): list(acc) for h, acc in hs.items()} for p, hs in state["hours"].items()
        }
        self.co2 = deque((float(t), float(v)) for t, v in state["co2"])
        self.last_ias = state["last_ias"]
        self.co2_high = state["co2_high"]

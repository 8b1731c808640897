"""Per-device air-quality metrics: hourly and 24-hour PM means, NowCast, US AQI, Mexico's
IAS for PM and gases, and a CO2 rolling mean with a threshold (CO2 is never called an AQI,
domain.md §1.1).

Hours are clock hours (UTC epoch hours; Mexico's offsets are whole hours). NowCast and IAS use
the 12 most recent *complete* hours, newest first; a 24-hour mean needs 18 valid hours
(75 %, domain.md §2.4). Like :mod:`vatio.agent.metrics.electrical`, its state is JSON-ready.

Published per device (names in common/vocabulary.py):

* PM: ``pm2_5_1h_ugm3``, ``pm2_5_24h_ugm3``, ``pm2_5_nowcast_ugm3``, ``pm2_5_12h_ugm3`` (the
  NOM-172 12-hour weighted indicator) and ``ias_mx_pm2_5``; the same for PM10; ``aqi_us``.
* PM2.5 corrected for humidity (:mod:`~vatio.agent.metrics.pm_humidity`, fed by the engine as
  ``pm2_5_corrected_ugm3``): ``pm2_5_corrected_1h_ugm3``. With ``indices_from_corrected`` the
  PM2.5 NowCast, AQI and IAS use the corrected hourly means instead of the raw ones.
* Gases (:mod:`~vatio.agent.metrics.ias_gases`), only for a device that reports the gas:
  ``o3_1h_ppm``, ``o3_8h_ppm``, ``no2_1h_ppm``, ``so2_1h_ppm``, ``co_8h_ppm`` and their levels
  ``ias_mx_o3`` (1 h; in stage 2019 the worse of 1 h and 8 h), ``ias_mx_o3_8h``,
  ``ias_mx_no2``, ``ias_mx_so2``, ``ias_mx_co``.
* ``ias_mx``: the worst level among the pollutants that have one; :meth:`report` also says
  which pollutant(s) set it (``critical``).

A value that cannot be computed is None; when that is because too few hours were valid
(24-h mean: < 18 of 24; NowCast/12-h indicator: < 2 of the 3 latest; 8-h means: < 6 of 8)
:meth:`report` gives the quality reason ``insufficient_hours`` for it, so a consumer sees
"not enough data" rather than a silent gap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from vatio.agent.metrics.air_quality import aqi, nowcast
from vatio.agent.metrics.ias_gases import AVERAGING, SOURCES, gas_ias, in_overall, indicator_ppm
from vatio.agent.metrics.ias_mx import LEVELS, Stage, ias, weighted_12h

POLLUTANTS = {"pm2_5": "pm2_5_ugm3", "pm10": "pm10_ugm3"}
CORRECTED = "pm2_5_corrected"
# every hourly series kept: pollutant key → the reading's quantity
TRACKED = {
    **POLLUTANTS,
    CORRECTED: "pm2_5_corrected_ugm3",
    **{gas: quantity for gas, (quantity, _) in SOURCES.items()},
}
LEVEL_NAMES = {level: name for level, name, *_ in LEVELS}
INSUFFICIENT = "insufficient_hours"


@dataclass
class AirReport:
    values: dict[str, float | None] = field(default_factory=dict)
    quality: dict[str, str] = field(default_factory=dict)  # value name → reason
    critical: list[str] = field(default_factory=list)  # pollutants at the overall IAS level


class AirQualityMetrics:
    def __init__(
        self,
        ias_stage: Stage = "2026",
        ias_adjustment: float | None = None,
        co2_window_s: float = 900.0,
        co2_limit_ppm: float = 1000.0,
        indices_from_corrected: bool = False,
    ) -> None:
        self.ias_stage: Stage = ias_stage
        self.ias_adjustment = ias_adjustment
        self.co2_window_s = co2_window_s
        self.co2_limit = co2_limit_ppm
        self.indices_from_corrected = indices_from_corrected
        # pollutant → {epoch hour: [sum, count]}
        self.hours: dict[str, dict[int, list[float]]] = {p: {} for p in TRACKED}
        self.co2: deque[tuple[float, float]] = deque()
        self.last_ias: int | None = None
        self.co2_high = False
        self._evaluated_hour: int | None = None

    def observe(self, values: dict[str, float | None], ts: float) -> list[tuple[str, str]]:
        """Add one poll; returns events (kind, message) for threshold crossings."""
        hour = int(ts // 3600)
        for p, quantity in TRACKED.items():
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
        return self.report(now).values

    def report(self, now: float) -> AirReport:
        """Every metric at ``now``, the reasons for the missing ones, and the critical
        pollutant(s) of the overall IAS."""
        r = AirReport()
        out, quality = r.values, r.quality
        indices: list[int] = []
        levels: dict[str, int] = {}  # pollutant → level, for the overall IAS
        for p in POLLUTANTS:
            hourly = self._hourly(p, now)
            out[f"{p}_1h_ugm3"] = None if hourly[0] is None else round(hourly[0], 2)
            valid = [v for v in hourly if v is not None]
            out[f"{p}_24h_ugm3"] = round(fmean(valid), 2) if len(valid) >= 18 else None
            if valid and len(valid) < 18:
                quality[f"{p}_24h_ugm3"] = INSUFFICIENT
            if p == "pm2_5" and self.indices_from_corrected:
                hourly = self._hourly(CORRECTED, now)  # the indices follow the corrected PM2.5
            nc = nowcast(hourly, p)
            out[f"{p}_nowcast_ugm3"] = None if nc is None else float(nc)
            if nc is not None:
                indices.append(aqi(float(nc), p).value)
            w = weighted_12h(hourly, self.ias_adjustment)
            out[f"{p}_12h_ugm3"] = None if w is None else float(w)
            level = None if w is None else ias(w, p, self.ias_stage).level
            out[f"ias_mx_{p}"] = None if level is None else float(level)
            if level is not None:
                levels[p] = level
            elif any(v is not None for v in hourly[:12]):
                for name in (f"{p}_nowcast_ugm3", f"{p}_12h_ugm3", f"ias_mx_{p}"):
                    quality[name] = INSUFFICIENT
        if self.hours[CORRECTED]:
            first = self._hourly(CORRECTED, now)[0]
            out["pm2_5_corrected_1h_ugm3"] = None if first is None else round(first, 2)
        self._gases(now, r, levels)
        out["aqi_us"] = float(max(indices)) if indices else None
        if levels:
            top = max(levels.values())
            out["ias_mx"] = float(top)
            r.critical = [p for p, level in levels.items() if level == top]
        else:
            out["ias_mx"] = None
        out["co2_avg_ppm"] = round(fmean(v for _, v in self.co2), 1) if self.co2 else None
        return r

    def _gases(self, now: float, r: AirReport, levels: dict[str, int]) -> None:
        """Gas indicators and their levels, for the gases this device reports."""
        for indicator, (gas, _, _) in AVERAGING.items():
            if not self.hours[gas]:
                continue  # the device does not measure this gas: publish nothing about it
            name = f"{indicator}_ppm"
            ppm = indicator_ppm(indicator, self._hourly(gas, now))[0]
            r.values[name] = None if ppm is None else float(ppm)
            level_name = f"ias_mx_{gas}" if indicator != "o3_8h" else "ias_mx_o3_8h"
            if ppm is None:  # the gas is measured, but too few of these hours were valid
                r.quality[name] = INSUFFICIENT
                if r.values.get(level_name) is None:
                    r.values[level_name] = None
                    r.quality[level_name] = INSUFFICIENT
                continue
            level = gas_ias(indicator, ppm, self.ias_stage).level
            if indicator == "o3_8h":
                r.values[level_name] = float(level)
            if in_overall(indicator, self.ias_stage):
                levels[gas] = max(levels.get(gas, 0), level)
                r.values[f"ias_mx_{gas}"] = float(levels[gas])
                r.quality.pop(f"ias_mx_{gas}", None)

    def _ias_level(self, now: float) -> tuple[int | None, list[str]]:
        r = self.report(now)
        level = r.values.get("ias_mx")
        return (None if level is None else int(level)), r.critical

    def _events(self, now: float) -> list[tuple[str, str]]:
        events = []
        hour = int(now // 3600)
        if hour != self._evaluated_hour:  # the IAS only moves when an hour completes
            self._evaluated_hour = hour
            level, critical = self._ias_level(now)
            if level is not None and self.last_ias is not None and level != self.last_ias:
                before, after = LEVEL_NAMES[self.last_ias], LEVEL_NAMES[level]
                events.append(
                    (
                        "ias_changed",
                        f"Índice AIRE Y SALUD: {before} → {after} ({', '.join(critical)})",
                    )
                )
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
        # a state saved before a series existed (gases, corrected PM) restores the rest
        self.hours = {p: {} for p in TRACKED}
        for p, hs in state["hours"].items():
            if p in self.hours:
                self.hours[p] = {int(h): list(acc) for h, acc in hs.items()}
        self.co2 = deque((float(t), float(v)) for t, v in state["co2"])
        self.last_ias = state["last_ias"]
        self.co2_high = state["co2_high"]

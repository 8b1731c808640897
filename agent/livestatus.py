"""What the local status page shows, kept in memory and bounded: each device's last reading
and metrics, the site's balance and running bill, the recent events, and the last hour of
power and PM2.5 for the charts.

The pipeline feeds it whether or not an output is configured, so a technician with a
laptop on the gateway's port sees the meters even before the broker is set up. Series are
kept in 10-second buckets (the mean of the readings in each): an hour is 360 points per
device and quantity, whatever the poll interval.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from vatio.drivers.reading import PollResult

CHARTED = ("active_power_w", "pm2_5_ugm3")


@dataclass
class _Series:
    bucket_s: float
    points: deque[list[float]]  # [bucket start, sum, count], oldest first

    def add(self, ts: float, value: float) -> None:
        start = ts - ts % self.bucket_s
        if self.points and self.points[-1][0] == start:
            self.points[-1][1] += value
            self.points[-1][2] += 1
        elif not self.points or start > self.points[-1][0]:
            self.points.append([start, value, 1])
        elif start < self.points[-1][0] - self.bucket_s * (self.points.maxlen or 0):
            # the clock stepped back by more than the chart's window (NTP correcting a clock
            # that was days ahead): new readings would stay out of the chart until the true
            # time caught up with what was drawn; start again from the true time
            self.points.clear()
            self.points.append([start, value, 1])
        # a reading older than the newest bucket by less (a small step back) is left out

    def since(self, oldest: float) -> list[list[float]]:
        return [[p[0], round(p[1] / p[2], 3)] for p in self.points if p[0] >= oldest]


@dataclass
class _Device:
    last_ts: float | None = None
    values: dict[str, float | None] = field(default_factory=dict)
    quality: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    metrics_ts: float | None = None


class LiveStatus:
    def __init__(self, window_s: float = 3600.0, bucket_s: float = 10.0, events: int = 50) -> None:
        self.window_s = window_s
        self.bucket_s = bucket_s
        self._devices: dict[str, _Device] = {}
        self._series: dict[str, dict[str, _Series]] = {q: {} for q in CHARTED}
        self._events: deque[dict[str, object]] = deque(maxlen=events)
        self._site: dict[str, object] | None = None  # the balance and the running bill

    def _device(self, name: str) -> _Device:
        return self._devices.setdefault(name, _Device())

    def reading(self, result: PollResult) -> None:
        if not result.ok:
            return
        dev = self._device(result.device)
        dev.last_ts = result.ts
        dev.values = result.values  # each poll makes new dicts: no copy needed
        dev.quality = result.quality
        for quantity, by_device in self._series.items():
            value = result.values.get(quantity)
            if value is None:
                continue
            series = by_device.get(result.device)
            if series is None:
                series = by_device[result.device] = _Series(
                    self.bucket_s, deque(maxlen=int(self.window_s // self.bucket_s) + 1)
                )
            series.add(result.ts, value)

    def metrics(self, device: str, values: dict[str, float | None], ts: float) -> None:
        dev = self._device(device)
        dev.metrics = values
        dev.metrics_ts = ts

    def site(
        self, values: dict[str, float | None], bill: dict[str, object] | None, ts: float
    ) -> None:
        """The site's balance and running bill (agent/metrics/site.py)."""
        self._site = {"ts": ts, "values": values, "bill": bill}

    def event(self, device: str, kind: str, message: str, ts: float) -> None:
        self._events.appendleft({"ts": ts, "device": device, "event": kind, "message": message})

    def snapshot(self, now: float) -> dict[str, object]:
        """Devices' last values, newest events first, and the charted series of the last
        window, as plain JSON-able data."""
        oldest = now - self.window_s
        return {
            "devices": {
                name: {
                    "last_ts": d.last_ts,
                    "values": d.values,
                    "quality": d.quality,
                    "metrics": d.metrics,
                    "metrics_ts": d.metrics_ts,
                }
                for name, d in self._devices.items()
            },
            "events": list(self._events),
            "site_metrics": self._site,
            "series": {
                q: {dev: s.since(oldest) for dev, s in by_device.items()}
                for q, by_device in self._series.items()
            },
            "window_s": self.window_s,
        }

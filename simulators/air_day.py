"""A known city day of gases and particles, for simulated air-quality analyzers (Vaisala
AQT530 profile) and for tests that check the Índice AIRE Y SALUD end to end.

Every quantity is constant within a local clock hour, so a test can work out the hourly
means (and so the NOM-172 indicators) from this table alone. The shape is a typical
photochemical day in a Mexican city: NO2 and CO peak with the morning traffic, O3 builds up
through the afternoon sun. Relative humidity is constant (60 %) so a humidity-corrected PM2.5
that uses it is a single known number.
"""

from __future__ import annotations

from dataclasses import dataclass

# local hour → value
O3_PPB = (15, 12, 10, 10, 12, 15, 18, 22, 26, 30, 45, 62,
          78, 96, 112, 121, 104, 80, 60, 40, 30, 25, 20, 18)  # fmt: skip
NO2_PPB = (30, 25, 22, 20, 22, 30, 50, 75, 80, 70, 60, 50,
           45, 40, 40, 45, 80, 70, 60, 55, 45, 40, 35, 32)  # fmt: skip
SO2_PPB = (5, 5, 5, 5, 5, 6, 8, 10, 12, 12, 14, 15, 16, 18, 18, 19, 20, 18, 14, 10, 8, 6, 5, 5)
CO_PPM = (0.8, 0.7, 0.6, 0.6, 0.7, 1.0, 1.8, 2.6, 3.0, 2.5, 2.0, 1.5,
          1.2, 1.0, 1.0, 1.2, 1.6, 2.2, 2.4, 2.0, 1.5, 1.2, 1.0, 0.9)  # fmt: skip


@dataclass(frozen=True)
class AirDay:
    """``instant(t)`` gives every quantity at ``t`` (the same day, every day)."""

    seed: int = 0
    utc_offset_h: float = -6.0  # central Mexico
    pm2_5_ugm3: float = 20.0
    pm10_ugm3: float = 35.0
    humidity_pct: float = 60.0

    def hour(self, t: float) -> int:
        return int(((t + self.utc_offset_h * 3600) % 86400) // 3600)

    def instant(self, t: float) -> dict[str, float]:
        h = self.hour(t)
        return {
            "o3_ppb": float(O3_PPB[h]),
            "no2_ppb": float(NO2_PPB[h]),
            "so2_ppb": float(SO2_PPB[h]),
            "co_ppm": CO_PPM[h],
            "pm2_5_ugm3": self.pm2_5_ugm3,
            "pm10_ugm3": self.pm10_ugm3,
            "temperature_c": 15.0 + 10.0 * (6 <= h < 18),
            "humidity_pct": self.humidity_pct,
        }

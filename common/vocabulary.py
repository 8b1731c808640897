"""The one vocabulary of quantity names that every driver, metric and output uses.

A quantity name carries its unit as a suffix (``active_power_w``, ``pm2_5_ugm3``), so a
number on the wire is never ambiguous. Profiles, drivers and metrics must name their values
from this table; :func:`check_quantity` turns a typo into an error with a suggestion.

Adding a quantity is a contract change for consumers only in that a new field appears;
renaming one is a breaking change (bump the topic version, DESIGN.md).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """How a quantity behaves over time: metrics treat counters and gauges differently."""

    GAUGE = "gauge"  # an instantaneous value (power, voltage)
    COUNTER = "counter"  # a monotonic register that only grows, except on reset (energy)


@dataclass(frozen=True, slots=True)
class Quantity:
    name: str
    unit: str
    kind: Kind
    description: str


def _phases(stem: str, unit: str, description: str, kind: Kind = Kind.GAUGE) -> list[Quantity]:
    return [
        Quantity(f"{stem}_l{n}_{unit}", unit, kind, f"{description}, phase L{n}") for n in (1, 2, 3)
    ]


_ALL: list[Quantity] = [
    # Electrical, instantaneous
    *_phases("voltage", "v", "Voltage line to neutral (V)"),
    Quantity("voltage_l1_l2_v", "v", Kind.GAUGE, "Voltage line to line L1-L2 (V)"),
    Quantity("voltage_l2_l3_v", "v", Kind.GAUGE, "Voltage line to line L2-L3 (V)"),
    Quantity("voltage_l3_l1_v", "v", Kind.GAUGE, "Voltage line to line L3-L1 (V)"),
    Quantity("voltage_v", "v", Kind.GAUGE, "Voltage of a single-phase circuit (V)"),
    *_phases("current", "a", "Current (A)"),
    Quantity("current_n_a", "a", Kind.GAUGE, "Neutral current (A)"),
    Quantity("current_a", "a", Kind.GAUGE, "Current of a single-phase circuit (A)"),
    *_phases("active_power", "w", "Active power (W)"),
    Quantity("active_power_w", "w", Kind.GAUGE, "Total active power (W), positive = import"),
    *_phases("apparent_power", "va", "Apparent power (VA)"),
    Quantity("apparent_power_va", "va", Kind.GAUGE, "Total apparent power (VA)"),
    *_phases("reactive_power", "var", "Reactive power (VAr)"),
    Quantity("reactive_power_var", "var", Kind.GAUGE, "Total reactive power (VAr)"),
    Quantity("power_factor", "", Kind.GAUGE, "Total power factor (-1..1)"),
    Quantity("power_factor_l1", "", Kind.GAUGE, "Power factor, phase L1"),
    Quantity("power_factor_l2", "", Kind.GAUGE, "Power factor, phase L2"),
    Quantity("power_factor_l3", "", Kind.GAUGE, "Power factor, phase L3"),
    *_phases("phase_angle", "deg", "Phase angle (degrees)"),
    Quantity("frequency_hz", "hz", Kind.GAUGE, "Line frequency (Hz)"),
    Quantity("demand_w", "w", Kind.GAUGE, "Power demand as computed by the meter (W)"),
    Quantity("demand_max_w", "w", Kind.GAUGE, "Maximum power demand held by the meter (W)"),
    # Electrical, counters
    Quantity("energy_import_kwh", "kwh", Kind.COUNTER, "Imported active energy (kWh)"),
    Quantity("energy_export_kwh", "kwh", Kind.COUNTER, "Exported active energy (kWh)"),
    Quantity("energy_total_kwh", "kwh", Kind.COUNTER, "Total active energy, import + export"),
    Quantity("reactive_energy_import_kvarh", "kvarh", Kind.COUNTER, "Imported reactive energy"),
    Quantity("reactive_energy_export_kvarh", "kvarh", Kind.COUNTER, "Exported reactive energy"),
    Quantity("reactive_energy_total_kvarh", "kvarh", Kind.COUNTER, "Total reactive energy"),
    # Air quality and environment
    Quantity("pm1_0_ugm3", "ugm3", Kind.GAUGE, "PM1.0 mass concentration (µg/m³)"),
    Quantity("pm2_5_ugm3", "ugm3", Kind.GAUGE, "PM2.5 mass concentration (µg/m³)"),
    Quantity("pm10_ugm3", "ugm3", Kind.GAUGE, "PM10 mass concentration (µg/m³)"),
    Quantity("co2_ppm", "ppm", Kind.GAUGE, "CO2 concentration (ppm); not an AQI pollutant"),
    Quantity("temperature_c", "c", Kind.GAUGE, "Temperature (°C)"),
    Quantity("humidity_pct", "pct", Kind.GAUGE, "Relative humidity (%)"),
    # Computed on the device (agent/metrics)
    Quantity("demand_15m_kw", "kw", Kind.GAUGE, "Average power over the last 15-minute block"),
    Quantity("demand_current_kw", "kw", Kind.GAUGE, "Average power of the current block so far"),
    Quantity("demand_sliding_kw", "kw", Kind.GAUGE, "Average power over the last 15 minutes"),
    Quantity(
        "demand_projected_kw", "kw", Kind.GAUGE, "Current block's average projected to its end"
    ),
    Quantity("demand_peak_month_kw", "kw", Kind.GAUGE, "Billing period's peak, rounded up"),
    Quantity("demand_peak_punta_kw", "kw", Kind.GAUGE, "Peak block demand in punta periods"),
    Quantity("energy_today_kwh", "kwh", Kind.GAUGE, "Active energy since local midnight"),
    Quantity("energy_today_base_kwh", "kwh", Kind.GAUGE, "Today's energy in base periods"),
    Quantity("energy_today_intermedia_kwh", "kwh", Kind.GAUGE, "… in intermedia periods"),
    Quantity("energy_today_punta_kwh", "kwh", Kind.GAUGE, "… in punta periods"),
    Quantity("energy_yesterday_kwh", "kwh", Kind.GAUGE, "Active energy of the previous day"),
    Quantity("energy_yesterday_base_kwh", "kwh", Kind.GAUGE, "Yesterday's energy in base"),
    Quantity("energy_yesterday_intermedia_kwh", "kwh", Kind.GAUGE, "… in intermedia"),
    Quantity("energy_yesterday_punta_kwh", "kwh", Kind.GAUGE, "… in punta"),
    Quantity("demand_peak_yesterday_kw", "kw", Kind.GAUGE, "Yesterday's highest block demand"),
    Quantity("emissions_yesterday_kgco2e", "kgco2e", Kind.GAUGE, "Emissions of the previous day"),
    Quantity("energy_month_kwh", "kwh", Kind.GAUGE, "Active energy this month"),
    Quantity("energy_month_base_kwh", "kwh", Kind.GAUGE, "This month's energy in base periods"),
    Quantity("energy_month_intermedia_kwh", "kwh", Kind.GAUGE, "… in intermedia periods"),
    Quantity("energy_month_punta_kwh", "kwh", Kind.GAUGE, "… in punta periods"),
    Quantity("power_factor_month_pct", "pct", Kind.GAUGE, "This month's power factor (%)"),
    Quantity("pf_surcharge_pct", "pct", Kind.GAUGE, "CFE power-factor surcharge (%)"),
    Quantity("pf_bonus_pct", "pct", Kind.GAUGE, "CFE power-factor credit (%)"),
    Quantity("emissions_kgco2e", "kgco2e", Kind.COUNTER, "Emissions from energy × grid factor"),
    Quantity("emissions_today_kgco2e", "kgco2e", Kind.GAUGE, "Emissions since local midnight"),
    Quantity("emissions_month_kgco2e", "kgco2e", Kind.GAUGE, "Emissions this month"),
    Quantity("pm2_5_1h_ugm3", "ugm3", Kind.GAUGE, "PM2.5 mean of the last complete hour"),
    Quantity("pm10_1h_ugm3", "ugm3", Kind.GAUGE, "PM10 mean of the last complete hour"),
    Quantity("pm2_5_24h_ugm3", "ugm3", Kind.GAUGE, "PM2.5 24-hour mean (≥ 18 valid hours)"),
    Quantity("pm10_24h_ugm3", "ugm3", Kind.GAUGE, "PM10 24-hour mean (≥ 18 valid hours)"),
    Quantity("pm2_5_nowcast_ugm3", "ugm3", Kind.GAUGE, "PM2.5 NowCast (EPA)"),
    Quantity("pm10_nowcast_ugm3", "ugm3", Kind.GAUGE, "PM10 NowCast (EPA)"),
    Quantity("co2_avg_ppm", "ppm", Kind.GAUGE, "CO2 rolling mean (not an AQI)"),
    Quantity("aqi_us", "", Kind.GAUGE, "US EPA Air Quality Index"),
    Quantity("ias_mx", "", Kind.GAUGE, "Mexico Índice AIRE Y SALUD level (NOM-172)"),
]

QUANTITIES: dict[str, Quantity] = {q.name: q for q in _ALL}


class UnknownQuantityError(ValueError):
    """A name that is not in the vocabulary; the message suggests the closest names."""


def check_quantity(name: str) -> Quantity:
    """Return the quantity called ``name`` or raise with a did-you-mean hint."""
    try:
        return QUANTITIES[name]
    except KeyError:
        close = difflib.get_close_matches(name, QUANTITIES, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see common/vocabulary.py"
        raise UnknownQuantityError(f"unknown quantity '{name}': {hint}") from None

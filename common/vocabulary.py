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


MAX_MPPTS = 8  # MPPT inputs with names of their own (SunSpec model 160 repeats per input)


def _mppts(stem: str, unit: str, description: str, kind: Kind = Kind.GAUGE) -> list[Quantity]:
    return [
        Quantity(f"{stem}_mppt{n}_{unit}", unit, kind, f"{description}, MPPT input {n}")
        for n in range(1, MAX_MPPTS + 1)
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
    # meters that report the two directions as two unsigned values (DZG DVH4013)
    Quantity("active_power_import_w", "w", Kind.GAUGE, "Active power drawn from the grid (W)"),
    Quantity("active_power_export_w", "w", Kind.GAUGE, "Active power fed to the grid (W)"),
    # Electrical, counters
    Quantity("energy_import_kwh", "kwh", Kind.COUNTER, "Imported active energy (kWh)"),
    Quantity("energy_export_kwh", "kwh", Kind.COUNTER, "Exported active energy (kWh)"),
    Quantity("energy_total_kwh", "kwh", Kind.COUNTER, "Total active energy, import + export"),
    Quantity("reactive_energy_import_kvarh", "kvarh", Kind.COUNTER, "Imported reactive energy"),
    Quantity("reactive_energy_export_kvarh", "kvarh", Kind.COUNTER, "Exported reactive energy"),
    Quantity("reactive_energy_total_kvarh", "kvarh", Kind.COUNTER, "Total reactive energy"),
    Quantity("energy_total_t1_kwh", "kwh", Kind.COUNTER, "Total active energy, tariff 1"),
    Quantity("energy_total_t2_kwh", "kwh", Kind.COUNTER, "Total active energy, tariff 2"),
    # Identity, read by `vatio scan` from a profile's `identify:` registers, never polled
    Quantity("model_code", "", Kind.GAUGE, "The device's model code register (identity)"),
    # PV inverters (SunSpec models 101–103, 111–113, 160): the AC side uses the electrical
    # names above, except the output power and yield, which have names of their own so that
    # a generator is never summed as a load (active_power_w is positive = import)
    Quantity("ac_power_w", "w", Kind.GAUGE, "AC power an inverter delivers (W), + = generated"),
    Quantity("energy_generated_kwh", "kwh", Kind.COUNTER, "Lifetime AC energy of an inverter"),
    Quantity("dc_power_w", "w", Kind.GAUGE, "DC input power of an inverter (W)"),
    Quantity("dc_voltage_v", "v", Kind.GAUGE, "DC input voltage of an inverter (V)"),
    Quantity("dc_current_a", "a", Kind.GAUGE, "DC input current of an inverter (A)"),
    *_mppts("dc_power", "w", "DC power (W)"),
    *_mppts("dc_voltage", "v", "DC voltage (V)"),
    *_mppts("dc_current", "a", "DC current (A)"),
    *_mppts("dc_energy", "kwh", "Lifetime DC energy (kWh)", Kind.COUNTER),
    Quantity("cabinet_temperature_c", "c", Kind.GAUGE, "Inside temperature of a device (°C)"),
    Quantity("heatsink_temperature_c", "c", Kind.GAUGE, "Heat sink temperature (°C)"),
    Quantity(
        "operating_state",
        "",
        Kind.GAUGE,
        "Inverter state (SunSpec St): 1 off, 2 sleeping, 3 starting, 4 MPPT, 5 throttled, "
        "6 shutting down, 7 fault, 8 standby",
    ),
    # Air quality and environment
    Quantity("pm1_0_ugm3", "ugm3", Kind.GAUGE, "PM1.0 mass concentration (µg/m³)"),
    Quantity("pm2_5_ugm3", "ugm3", Kind.GAUGE, "PM2.5 mass concentration (µg/m³)"),
    Quantity("pm10_ugm3", "ugm3", Kind.GAUGE, "PM10 mass concentration (µg/m³)"),
    Quantity("pm4_0_ugm3", "ugm3", Kind.GAUGE, "PM4.0 mass concentration (µg/m³; SPS30)"),
    # Plantower "CF=1" (factory calibration) mass concentrations, next to the atmospheric
    # ones above: the US EPA humidity correction for Plantower sensors starts from CF=1
    Quantity("pm1_0_cf1_ugm3", "ugm3", Kind.GAUGE, "PM1.0, Plantower CF=1 (µg/m³)"),
    Quantity("pm2_5_cf1_ugm3", "ugm3", Kind.GAUGE, "PM2.5, Plantower CF=1 (µg/m³)"),
    Quantity("pm10_cf1_ugm3", "ugm3", Kind.GAUGE, "PM10, Plantower CF=1 (µg/m³)"),
    # Plantower particle counts: particles *larger than* the size, per 0.1 L (= per dL)
    *[
        Quantity(
            f"particles_gt{s}um_per_dl",
            "per_dl",
            Kind.GAUGE,
            f"Particles larger than {s.replace('_', '.')} µm per 0.1 L (Plantower)",
        )
        for s in ("0_3", "0_5", "1_0", "2_5", "5_0", "10")
    ],
    # Sensirion SPS30 number concentrations: particles from 0.3 µm *up to* the size, per cm³
    *[
        Quantity(
            f"nc{s}_per_cm3",
            "per_cm3",
            Kind.GAUGE,
            f"Particles 0.3–{s.replace('_', '.')} µm per cm³ (SPS30)",
        )
        for s in ("0_5", "1_0", "2_5", "4_0", "10")
    ],
    Quantity("typical_particle_size_um", "um", Kind.GAUGE, "Typical particle size (µm; SPS30)"),
    Quantity("co2_ppm", "ppm", Kind.GAUGE, "CO2 concentration (ppm); not an AQI pollutant"),
    Quantity("o3_ppb", "ppb", Kind.GAUGE, "Ozone concentration (ppb)"),
    Quantity("no2_ppb", "ppb", Kind.GAUGE, "Nitrogen dioxide concentration (ppb)"),
    Quantity("so2_ppb", "ppb", Kind.GAUGE, "Sulfur dioxide concentration (ppb)"),
    Quantity("co_ppm", "ppm", Kind.GAUGE, "Carbon monoxide concentration (ppm)"),
    Quantity("temperature_c", "c", Kind.GAUGE, "Temperature (°C)"),
    Quantity("humidity_pct", "pct", Kind.GAUGE, "Relative humidity (%)"),
    Quantity("pressure_hpa", "hpa", Kind.GAUGE, "Barometric (station) pressure (hPa)"),
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
    # Site level (agent/metrics/site.py): the balance of grid, generation and loads
    *[
        Quantity(f"site_{stem}_{span}_{unit}", unit, Kind.GAUGE, f"Site {what}, {span}")
        for span in ("today", "yesterday", "month")
        for stem, unit, what in (
            ("import", "kwh", "energy imported from the grid"),
            ("export", "kwh", "energy exported to the grid"),
            ("generation", "kwh", "energy generated on site"),
            ("consumption", "kwh", "consumption = import + generation - export"),
            ("self_consumption", "pct", "share of generation used on site"),
            ("self_sufficiency", "pct", "share of consumption covered by generation"),
            ("avoided", "kgco2e", "emissions avoided by generation"),
        )
    ],
    # The running CFE bill of the billing period (agent/metrics/bill.py), MXN
    *[
        Quantity(f"bill_{line}_mxn", "mxn", Kind.GAUGE, f"Bill line: {line}")
        for line in (
            "energy_base",
            "energy_intermedia",
            "energy_punta",
            "transmission",
            "cenace",
            "scnmem",
            "fixed",
            "capacity",
            "distribution",
            "power_factor",
            "vat",
            "subtotal",
            "total",
            "projected_total",
        )
    ],
    Quantity("bill_energy_kwh", "kwh", Kind.GAUGE, "Billed energy of the period (net)"),
    Quantity("bill_capacity_kw", "kw", Kind.GAUGE, "Billed capacity demand"),
    Quantity("bill_distribution_kw", "kw", Kind.GAUGE, "Billed distribution demand"),
    Quantity("bill_period_days", "d", Kind.GAUGE, "Days of the billing period"),
    Quantity("bill_credit_kwh", "kwh", Kind.GAUGE, "Net-metering credit carried"),
    Quantity("pm2_5_1h_ugm3", "ugm3", Kind.GAUGE, "PM2.5 mean of the last complete hour"),
    Quantity("pm10_1h_ugm3", "ugm3", Kind.GAUGE, "PM10 mean of the last complete hour"),
    Quantity("pm2_5_24h_ugm3", "ugm3", Kind.GAUGE, "PM2.5 24-hour mean (≥ 18 valid hours)"),
    Quantity("pm10_24h_ugm3", "ugm3", Kind.GAUGE, "PM10 24-hour mean (≥ 18 valid hours)"),
    Quantity("pm2_5_nowcast_ugm3", "ugm3", Kind.GAUGE, "PM2.5 NowCast (EPA)"),
    Quantity("pm10_nowcast_ugm3", "ugm3", Kind.GAUGE, "PM10 NowCast (EPA)"),
    Quantity("co2_avg_ppm", "ppm", Kind.GAUGE, "CO2 rolling mean (not an AQI)"),
    Quantity("aqi_us", "", Kind.GAUGE, "US EPA Air Quality Index"),
    Quantity("ias_mx", "", Kind.GAUGE, "Mexico Índice AIRE Y SALUD level (NOM-172)"),
    Quantity("pm2_5_corrected_ugm3", "ugm3", Kind.GAUGE, "PM2.5, EPA humidity correction"),
    Quantity("pm2_5_corrected_1h_ugm3", "ugm3", Kind.GAUGE, "Corrected PM2.5, last full hour"),
    Quantity("pm2_5_12h_ugm3", "ugm3", Kind.GAUGE, "PM2.5 NOM-172 12-h weighted mean"),
    Quantity("pm10_12h_ugm3", "ugm3", Kind.GAUGE, "PM10 NOM-172 12-h weighted mean"),
    Quantity("o3_1h_ppm", "ppm", Kind.GAUGE, "O3 mean of the last full hour (NOM-172)"),
    Quantity("o3_8h_ppm", "ppm", Kind.GAUGE, "O3 8-hour moving mean (≥ 6 of 8 hours)"),
    Quantity("no2_1h_ppm", "ppm", Kind.GAUGE, "NO2 mean of the last full hour (NOM-172)"),
    Quantity("so2_1h_ppm", "ppm", Kind.GAUGE, "SO2 mean of the last full hour (NOM-172)"),
    Quantity("co_8h_ppm", "ppm", Kind.GAUGE, "CO 8-hour moving mean (≥ 6 of 8 hours)"),
    Quantity("ias_mx_pm2_5", "", Kind.GAUGE, "IAS level of PM2.5 (12-h weighted)"),
    Quantity("ias_mx_pm10", "", Kind.GAUGE, "IAS level of PM10 (12-h weighted)"),
    Quantity("ias_mx_o3", "", Kind.GAUGE, "IAS level of O3 (1 h; stage 2019: 1 h or 8 h)"),
    Quantity("ias_mx_o3_8h", "", Kind.GAUGE, "IAS level of the O3 8-h mean (2019 bands)"),
    Quantity("ias_mx_no2", "", Kind.GAUGE, "IAS level of NO2 (1 h)"),
    Quantity("ias_mx_so2", "", Kind.GAUGE, "IAS level of SO2 (1 h)"),
    Quantity("ias_mx_co", "", Kind.GAUGE, "IAS level of CO (8 h)"),
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

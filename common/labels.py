"""Short human names of the vocabulary's quantities, in English and Spanish.

The vocabulary's descriptions (:mod:`vatio.common.vocabulary`) say what a value means, with
its unit and caveats ("Total active power (W), positive = import"); a screen that shows the
unit beside the number wants a short name instead ("Power", "Potencia"). Home Assistant's
entity names come from here (:mod:`vatio.agent.homeassistant`).

:func:`label` answers for every quantity of the vocabulary (``tests/unit/test_labels.py``
checks it); names built from a pattern (phases, MPPT inputs, the site's balance, the bill's
lines) are made from their parts, so a quantity added to one of those families is named too.
Spanish follows the words Mexican meters, CFE's bill and NOM-172 use ("tensión", "demanda",
"punta", "Índice AIRE Y SALUD").
"""

from __future__ import annotations

import re

from vatio.common.i18n import spanish

# quantity → (English, Spanish)
_FIXED: dict[str, tuple[str, str]] = {
    "voltage_v": ("Voltage", "Tensión"),
    "current_n_a": ("Neutral current", "Corriente de neutro"),
    "current_a": ("Current", "Corriente"),
    "active_power_w": ("Power", "Potencia"),
    "apparent_power_va": ("Apparent power", "Potencia aparente"),
    "reactive_power_var": ("Reactive power", "Potencia reactiva"),
    "power_factor": ("Power factor", "Factor de potencia"),
    "frequency_hz": ("Frequency", "Frecuencia"),
    "demand_w": ("Demand (meter)", "Demanda (medidor)"),
    "demand_max_w": ("Maximum demand (meter)", "Demanda máxima (medidor)"),
    "active_power_import_w": ("Power imported", "Potencia importada"),
    "active_power_export_w": ("Power exported", "Potencia exportada"),
    "energy_import_kwh": ("Energy imported", "Energía importada"),
    "energy_export_kwh": ("Energy exported", "Energía exportada"),
    "energy_total_kwh": ("Energy total", "Energía total"),
    "reactive_energy_import_kvarh": ("Reactive energy imported", "Energía reactiva importada"),
    "reactive_energy_export_kvarh": ("Reactive energy exported", "Energía reactiva exportada"),
    "reactive_energy_total_kvarh": ("Reactive energy total", "Energía reactiva total"),
    "energy_total_t1_kwh": ("Energy tariff 1", "Energía tarifa 1"),
    "energy_total_t2_kwh": ("Energy tariff 2", "Energía tarifa 2"),
    "model_code": ("Model code", "Código de modelo"),
    "ac_power_w": ("AC power", "Potencia CA"),
    "energy_generated_kwh": ("Energy generated", "Energía generada"),
    "dc_power_w": ("DC power", "Potencia CD"),
    "dc_voltage_v": ("DC voltage", "Tensión CD"),
    "dc_current_a": ("DC current", "Corriente CD"),
    "cabinet_temperature_c": ("Cabinet temperature", "Temperatura interior"),
    "heatsink_temperature_c": ("Heat sink temperature", "Temperatura del disipador"),
    "operating_state": ("Operating state", "Estado de operación"),
    "typical_particle_size_um": ("Typical particle size", "Tamaño típico de partícula"),
    "co2_ppm": ("CO2", "CO2"),
    "o3_ppb": ("Ozone", "Ozono"),
    "no2_ppb": ("NO2", "NO2"),
    "so2_ppb": ("SO2", "SO2"),
    "co_ppm": ("CO", "CO"),
    "temperature_c": ("Temperature", "Temperatura"),
    "humidity_pct": ("Humidity", "Humedad"),
    "pressure_hpa": ("Pressure", "Presión"),
    # computed on the device (agent/metrics)
    "demand_15m_kw": ("Demand 15 min", "Demanda 15 min"),
    "demand_current_kw": ("Demand, current block", "Demanda del bloque en curso"),
    "demand_sliding_kw": ("Demand, last 15 min", "Demanda últimos 15 min"),
    "demand_projected_kw": ("Demand projected", "Demanda proyectada"),
    "demand_peak_month_kw": ("Peak demand this month", "Demanda máxima del mes"),
    "demand_peak_punta_kw": ("Peak demand in punta", "Demanda máxima en punta"),
    "demand_peak_yesterday_kw": ("Peak demand yesterday", "Demanda máxima de ayer"),
    "power_factor_month_pct": ("Power factor this month", "Factor de potencia del mes"),
    "pf_surcharge_pct": ("Power factor surcharge", "Cargo por factor de potencia"),
    "pf_bonus_pct": ("Power factor bonus", "Bonificación por factor de potencia"),
    "emissions_kgco2e": ("Emissions", "Emisiones"),
    "bill_energy_kwh": ("Billed energy", "Energía facturada"),
    "bill_capacity_kw": ("Billed capacity", "Capacidad facturada"),
    "bill_distribution_kw": ("Billed distribution", "Distribución facturada"),
    "bill_period_days": ("Billing period", "Periodo de facturación"),
    "bill_credit_kwh": ("Net metering credit", "Crédito de medición neta"),
    "bill_subtotal_mxn": ("Bill subtotal", "Subtotal del recibo"),
    "bill_total_mxn": ("Bill so far", "Recibo a la fecha"),
    "bill_projected_total_mxn": ("Bill projected", "Recibo proyectado"),
    "co2_avg_ppm": ("CO2 average", "CO2 promedio"),
    "aqi_us": ("AQI (US EPA)", "AQI (EPA de EE. UU.)"),
    "ias_mx": ("Air and Health Index", "Índice AIRE Y SALUD"),
    "pm2_5_corrected_ugm3": ("PM2.5 corrected", "PM2.5 corregido"),
    "pm2_5_corrected_1h_ugm3": ("PM2.5 corrected 1 h", "PM2.5 corregido 1 h"),
}

_PHASED = {  # stem → (English, Spanish), for <stem>_l1_<unit> … and <stem>_l1
    "voltage": ("Voltage", "Tensión"),
    "current": ("Current", "Corriente"),
    "active_power": ("Power", "Potencia"),
    "apparent_power": ("Apparent power", "Potencia aparente"),
    "reactive_power": ("Reactive power", "Potencia reactiva"),
    "power_factor": ("Power factor", "Factor de potencia"),
    "phase_angle": ("Phase angle", "Ángulo de fase"),
}
_MPPT = {
    "dc_power": ("DC power", "Potencia CD"),
    "dc_voltage": ("DC voltage", "Tensión CD"),
    "dc_current": ("DC current", "Corriente CD"),
    "dc_energy": ("DC energy", "Energía CD"),
}
_SPANS = {  # day and month accumulators: (English suffix, Spanish suffix)
    "today": ("today", "hoy"),
    "yesterday": ("yesterday", "ayer"),
    "month": ("this month", "del mes"),
}
_PERIOD = {"base": "base", "intermedia": "intermedia", "punta": "punta"}
_ACCUMULATED = {  # energy_today_kwh, emissions_month_kgco2e …
    "energy": ("Energy", "Energía"),
    "emissions": ("Emissions", "Emisiones"),
}
_SITE = {
    "import": ("Grid import", "Importación de la red"),
    "export": ("Grid export", "Exportación a la red"),
    "generation": ("Generation", "Generación"),
    "consumption": ("Consumption", "Consumo"),
    "self_consumption": ("Self-consumption", "Autoconsumo"),
    "self_sufficiency": ("Self-sufficiency", "Autosuficiencia"),
    "avoided": ("Emissions avoided", "Emisiones evitadas"),
}
_BILL_LINES = {  # the bill's lines (Spanish as agent/metrics/bill.py's LABELS print them)
    "energy_base": ("Bill: energy base", "Recibo: energía base"),
    "energy_intermedia": ("Bill: energy intermedia", "Recibo: energía intermedia"),
    "energy_punta": ("Bill: energy punta", "Recibo: energía punta"),
    "transmission": ("Bill: transmission", "Recibo: transmisión"),
    "cenace": ("Bill: CENACE", "Recibo: operación CENACE"),
    "scnmem": ("Bill: non-MEM services", "Recibo: servicios conexos no MEM"),
    "fixed": ("Bill: fixed charge", "Recibo: cargo fijo"),
    "capacity": ("Bill: capacity", "Recibo: capacidad"),
    "distribution": ("Bill: distribution", "Recibo: distribución"),
    "power_factor": ("Bill: power factor", "Recibo: factor de potencia"),
    "vat": ("Bill: VAT", "Recibo: IVA"),
}
_POLLUTANTS = {"pm2_5": "PM2.5", "pm10": "PM10", "pm1_0": "PM1.0", "pm4_0": "PM4.0",
               "o3": "O3", "no2": "NO2", "so2": "SO2", "co": "CO"}  # fmt: skip
_WINDOWS = {"1h": "1 h", "8h": "8 h", "12h": "12 h", "24h": "24 h", "nowcast": "NowCast",
            "cf1": "CF=1"}  # fmt: skip


def _size(text: str, es: bool) -> str:
    """``0_3`` → 0.3 µm (0,3 in Spanish)."""
    return text.replace("_", "," if es else ".")


def _pair(name: str) -> tuple[str, str] | None:
    if name in _FIXED:
        return _FIXED[name]
    m = re.fullmatch(r"(\w+?)_l([123])(?:_l([123]))?(?:_[a-z]+)?", name)
    if m and m.group(1) in _PHASED:
        en, es = _PHASED[m.group(1)]
        which = f"L{m.group(2)}" + (f"-L{m.group(3)}" if m.group(3) else "")
        return f"{en} {which}", f"{es} {which}"
    m = re.fullmatch(r"(\w+)_mppt(\d+)_[a-z]+", name)
    if m and m.group(1) in _MPPT:
        en, es = _MPPT[m.group(1)]
        return f"{en} MPPT {m.group(2)}", f"{es} MPPT {m.group(2)}"
    m = re.fullmatch(r"(energy|emissions)_(today|yesterday|month)(?:_(base|intermedia|punta))?_"
                     r"(?:kwh|kgco2e)", name)  # fmt: skip
    if m:
        en, es = _ACCUMULATED[m.group(1)]
        span_en, span_es = _SPANS[m.group(2)]
        period = f", {_PERIOD[m.group(3)]}" if m.group(3) else ""
        return f"{en} {span_en}{period}", f"{es} {span_es}{period}"
    m = re.fullmatch(r"site_(\w+)_(today|yesterday|month)_[a-z0-9]+", name)
    if m and m.group(1) in _SITE:
        en, es = _SITE[m.group(1)]
        span_en, span_es = _SPANS[m.group(2)]
        return f"{en} {span_en}", f"{es} {span_es}"
    m = re.fullmatch(r"bill_(\w+)_mxn", name)
    if m and m.group(1) in _BILL_LINES:
        return _BILL_LINES[m.group(1)]
    m = re.fullmatch(r"particles_gt(\w+?)um_per_dl", name)
    if m:
        return (f"Particles > {_size(m.group(1), False)} µm",
                f"Partículas > {_size(m.group(1), True)} µm")  # fmt: skip
    m = re.fullmatch(r"nc(\w+?)_per_cm3", name)
    if m:
        return (f"Particles 0.3–{_size(m.group(1), False)} µm",
                f"Partículas 0,3–{_size(m.group(1), True)} µm")  # fmt: skip
    m = re.fullmatch(r"ias_mx_(\w+?)(_8h)?", name)
    if m and m.group(1) in _POLLUTANTS:
        what = _POLLUTANTS[m.group(1)] + (" 8 h" if m.group(2) else "")
        return f"IAS {what}", f"IAS {what}"
    # pm2_5_ugm3, pm10_nowcast_ugm3, o3_8h_ppm, pm1_0_cf1_ugm3 …
    m = re.fullmatch(r"(pm2_5|pm10|pm1_0|pm4_0|o3|no2|so2|co)(?:_(\w+?))?_(?:ugm3|ppm|ppb)", name)
    if m and (m.group(2) is None or m.group(2) in _WINDOWS):
        text = _POLLUTANTS[m.group(1)] + (f" {_WINDOWS[m.group(2)]}" if m.group(2) else "")
        return text, text
    return None


def label(name: str, es: bool | None = None) -> str:
    """The short name of quantity ``name``; Spanish when ``es`` (default: the user's
    language, :func:`vatio.common.i18n.spanish`). A name this table does not know is
    returned as it is: never an error for a quantity added later."""
    pair = _pair(name)
    if pair is None:
        return name
    return pair[1] if (spanish() if es is None else es) else pair[0]


def known(name: str) -> bool:
    return _pair(name) is not None

"""How a message's payload is stored in the spool file: deflated with a preset dictionary.

The spool writes only what the broker has not acknowledged by the next commit, so with the
broker up almost nothing reaches the SD card; during an outage every message does, and each
cost 4.2× its payload in bytes written (issue 18: goal ≤ 3×). A telemetry payload is mostly
the same keys again and again; deflate primed with a dictionary of those keys (the quantity
names of the vocabulary and the envelope) stores it in about a third of its size, at some
25 µs per message written and 5–9 µs per message read back (figures in README, Bench).

Stored form, told apart by the first byte:

* ``0x01`` + raw deflate with :data:`DICTIONARY_V1`;
* ``0x00`` + the payload as it is (a payload that deflate would not shrink and that begins
  with 0x00 or 0x01 itself);
* anything else: the payload as it is (every JSON payload, and every row written before).

The dictionary is part of the file format: rows written with it must stay readable after an
upgrade, so it never changes. A better dictionary is ``0x02``, with this one kept for reading.
"""

from __future__ import annotations

import zlib

COMPRESSED_V1 = 0x01
AS_IS = 0x00
_WBITS = -15  # raw deflate: no zlib header or checksum (SQLite's pages carry their own)
_LEVEL = 6

# sorted quantity names of the vocabulary as it was at issue 18, then the envelope's keys
# (deflate finds matches nearer the end more cheaply: the commonest strings go last)
DICTIONARY_V1 = (
    b'"ac_power_w":0.0,"active_power_export_w":0.0,"active_power_import_w":0.0,"active_power_l1_'
    b'w":0.0,"active_power_l2_w":0.0,"active_power_l3_w":0.0,"active_power_w":0.0,"apparent_powe'
    b'r_l1_va":0.0,"apparent_power_l2_va":0.0,"apparent_power_l3_va":0.0,"apparent_power_va":0.0'
    b',"aqi_us":0.0,"bill_capacity_kw":0.0,"bill_capacity_mxn":0.0,"bill_cenace_mxn":0.0,"bill_c'
    b'redit_kwh":0.0,"bill_distribution_kw":0.0,"bill_distribution_mxn":0.0,"bill_energy_base_mx'
    b'n":0.0,"bill_energy_intermedia_mxn":0.0,"bill_energy_kwh":0.0,"bill_energy_punta_mxn":0.0,'
    b'"bill_fixed_mxn":0.0,"bill_period_days":0.0,"bill_power_factor_mxn":0.0,"bill_projected_to'
    b'tal_mxn":0.0,"bill_scnmem_mxn":0.0,"bill_subtotal_mxn":0.0,"bill_total_mxn":0.0,"bill_tran'
    b'smission_mxn":0.0,"bill_vat_mxn":0.0,"cabinet_temperature_c":0.0,"co2_avg_ppm":0.0,"co2_pp'
    b'm":0.0,"co_8h_ppm":0.0,"co_ppm":0.0,"current_a":0.0,"current_l1_a":0.0,"current_l2_a":0.0,'
    b'"current_l3_a":0.0,"current_n_a":0.0,"dc_current_a":0.0,"dc_current_mppt1_a":0.0,"dc_curre'
    b'nt_mppt2_a":0.0,"dc_current_mppt3_a":0.0,"dc_current_mppt4_a":0.0,"dc_current_mppt5_a":0.0'
    b',"dc_current_mppt6_a":0.0,"dc_current_mppt7_a":0.0,"dc_current_mppt8_a":0.0,"dc_energy_mpp'
    b't1_kwh":0.0,"dc_energy_mppt2_kwh":0.0,"dc_energy_mppt3_kwh":0.0,"dc_energy_mppt4_kwh":0.0,'
    b'"dc_energy_mppt5_kwh":0.0,"dc_energy_mppt6_kwh":0.0,"dc_energy_mppt7_kwh":0.0,"dc_energy_m'
    b'ppt8_kwh":0.0,"dc_power_mppt1_w":0.0,"dc_power_mppt2_w":0.0,"dc_power_mppt3_w":0.0,"dc_pow'
    b'er_mppt4_w":0.0,"dc_power_mppt5_w":0.0,"dc_power_mppt6_w":0.0,"dc_power_mppt7_w":0.0,"dc_p'
    b'ower_mppt8_w":0.0,"dc_power_w":0.0,"dc_voltage_mppt1_v":0.0,"dc_voltage_mppt2_v":0.0,"dc_v'
    b'oltage_mppt3_v":0.0,"dc_voltage_mppt4_v":0.0,"dc_voltage_mppt5_v":0.0,"dc_voltage_mppt6_v"'
    b':0.0,"dc_voltage_mppt7_v":0.0,"dc_voltage_mppt8_v":0.0,"dc_voltage_v":0.0,"demand_15m_kw":'
    b'0.0,"demand_current_kw":0.0,"demand_max_w":0.0,"demand_peak_month_kw":0.0,"demand_peak_pun'
    b'ta_kw":0.0,"demand_peak_yesterday_kw":0.0,"demand_projected_kw":0.0,"demand_sliding_kw":0.'
    b'0,"demand_w":0.0,"emissions_kgco2e":0.0,"emissions_month_kgco2e":0.0,"emissions_today_kgco'
    b'2e":0.0,"emissions_yesterday_kgco2e":0.0,"energy_export_kwh":0.0,"energy_generated_kwh":0.'
    b'0,"energy_import_kwh":0.0,"energy_month_base_kwh":0.0,"energy_month_intermedia_kwh":0.0,"e'
    b'nergy_month_kwh":0.0,"energy_month_punta_kwh":0.0,"energy_today_base_kwh":0.0,"energy_toda'
    b'y_intermedia_kwh":0.0,"energy_today_kwh":0.0,"energy_today_punta_kwh":0.0,"energy_total_kw'
    b'h":0.0,"energy_total_t1_kwh":0.0,"energy_total_t2_kwh":0.0,"energy_yesterday_base_kwh":0.0'
    b',"energy_yesterday_intermedia_kwh":0.0,"energy_yesterday_kwh":0.0,"energy_yesterday_punta_'
    b'kwh":0.0,"frequency_hz":0.0,"heatsink_temperature_c":0.0,"humidity_pct":0.0,"ias_mx":0.0,"'
    b'ias_mx_co":0.0,"ias_mx_no2":0.0,"ias_mx_o3":0.0,"ias_mx_o3_8h":0.0,"ias_mx_pm10":0.0,"ias_'
    b'mx_pm2_5":0.0,"ias_mx_so2":0.0,"model_code":0.0,"nc0_5_per_cm3":0.0,"nc10_per_cm3":0.0,"nc'
    b'1_0_per_cm3":0.0,"nc2_5_per_cm3":0.0,"nc4_0_per_cm3":0.0,"no2_1h_ppm":0.0,"no2_ppb":0.0,"o'
    b'3_1h_ppm":0.0,"o3_8h_ppm":0.0,"o3_ppb":0.0,"operating_state":0.0,"particles_gt0_3um_per_dl'
    b'":0.0,"particles_gt0_5um_per_dl":0.0,"particles_gt10um_per_dl":0.0,"particles_gt1_0um_per_'
    b'dl":0.0,"particles_gt2_5um_per_dl":0.0,"particles_gt5_0um_per_dl":0.0,"pf_bonus_pct":0.0,"'
    b'pf_surcharge_pct":0.0,"phase_angle_l1_deg":0.0,"phase_angle_l2_deg":0.0,"phase_angle_l3_de'
    b'g":0.0,"pm10_12h_ugm3":0.0,"pm10_1h_ugm3":0.0,"pm10_24h_ugm3":0.0,"pm10_cf1_ugm3":0.0,"pm1'
    b'0_nowcast_ugm3":0.0,"pm10_ugm3":0.0,"pm1_0_cf1_ugm3":0.0,"pm1_0_ugm3":0.0,"pm2_5_12h_ugm3"'
    b':0.0,"pm2_5_1h_ugm3":0.0,"pm2_5_24h_ugm3":0.0,"pm2_5_cf1_ugm3":0.0,"pm2_5_corrected_1h_ugm'
    b'3":0.0,"pm2_5_corrected_ugm3":0.0,"pm2_5_nowcast_ugm3":0.0,"pm2_5_ugm3":0.0,"pm4_0_ugm3":0'
    b'.0,"power_factor":0.0,"power_factor_l1":0.0,"power_factor_l2":0.0,"power_factor_l3":0.0,"p'
    b'ower_factor_month_pct":0.0,"pressure_hpa":0.0,"reactive_energy_export_kvarh":0.0,"reactive'
    b'_energy_import_kvarh":0.0,"reactive_energy_total_kvarh":0.0,"reactive_power_l1_var":0.0,"r'
    b'eactive_power_l2_var":0.0,"reactive_power_l3_var":0.0,"reactive_power_var":0.0,"site_avoid'
    b'ed_month_kgco2e":0.0,"site_avoided_today_kgco2e":0.0,"site_avoided_yesterday_kgco2e":0.0,"'
    b'site_consumption_month_kwh":0.0,"site_consumption_today_kwh":0.0,"site_consumption_yesterd'
    b'ay_kwh":0.0,"site_export_month_kwh":0.0,"site_export_today_kwh":0.0,"site_export_yesterday'
    b'_kwh":0.0,"site_generation_month_kwh":0.0,"site_generation_today_kwh":0.0,"site_generation'
    b'_yesterday_kwh":0.0,"site_import_month_kwh":0.0,"site_import_today_kwh":0.0,"site_import_y'
    b'esterday_kwh":0.0,"site_self_consumption_month_pct":0.0,"site_self_consumption_today_pct":'
    b'0.0,"site_self_consumption_yesterday_pct":0.0,"site_self_sufficiency_month_pct":0.0,"site_'
    b'self_sufficiency_today_pct":0.0,"site_self_sufficiency_yesterday_pct":0.0,"so2_1h_ppm":0.0'
    b',"so2_ppb":0.0,"temperature_c":0.0,"typical_particle_size_um":0.0,"voltage_l1_l2_v":0.0,"v'
    b'oltage_l1_v":0.0,"voltage_l2_l3_v":0.0,"voltage_l2_v":0.0,"voltage_l3_l1_v":0.0,"voltage_l'
    b'3_v":0.0,"voltage_v":0.0,"quality":{"spooled":false,{"ts":"2026-01-01T00:00:00.000Z","seq"'
    b':1,"site":"","device":"","values":{'
)


def pack(payload: bytes) -> bytes:
    """The bytes to store for ``payload``: compressed when that is shorter."""
    deflate = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, zdict=DICTIONARY_V1)
    packed = deflate.compress(payload) + deflate.flush()
    if len(packed) + 1 < len(payload):
        return bytes((COMPRESSED_V1,)) + packed
    if payload[:1] in (b"\x00", b"\x01"):
        return bytes((AS_IS,)) + payload
    return payload


def unpack(stored: bytes) -> bytes:
    """The payload ``stored`` holds (see the module docstring for the forms)."""
    if not stored:
        return stored
    first = stored[0]
    if first == COMPRESSED_V1:
        inflate = zlib.decompressobj(_WBITS, zdict=DICTIONARY_V1)
        return inflate.decompress(stored[1:]) + inflate.flush()
    if first == AS_IS:
        return stored[1:]
    return stored

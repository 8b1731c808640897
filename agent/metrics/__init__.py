"""On-device metrics: pure, table-driven rules first.

Present: US AQI and NowCast (air_quality), Mexico's Índice AIRE Y SALUD for PM (ias_mx) and
gases (ias_gases), EPA's humidity correction of Plantower PM2.5 (pm_humidity), CFE power
factor charge or credit (power_factor), grid emission factors (emissions), energy from meter
counters (counters) and from integrated power (integration), 15-minute demand windows
(demand), GDMTH tariff periods (tariff). The engine (engine) feeds them the readings, keeps
their state across restarts and publishes the ``metrics`` messages; electrical and air wrap
the rules per device; sources hands one device's humidity to another's PM correction.
"""

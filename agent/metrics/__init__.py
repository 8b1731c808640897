"""On-device metrics (issue 4, in progress): pure, table-driven rules first.

Present: US AQI and NowCast (air_quality), Mexico's Índice AIRE Y SALUD (ias_mx), CFE power
factor charge or credit (power_factor), grid emission factors (emissions), energy from meter
counters (counters) and from integrated power (integration), 15-minute demand windows
(demand), GDMTH tariff periods (tariff). Not yet wired into the agent's pipeline: per-period
totals, persisted state and the ``metrics`` messages are to come.
"""

"""On-device metrics (issue 4, in progress): pure, table-driven rules first.

Present: US AQI and NowCast (air_quality), Mexico's Índice AIRE Y SALUD (ias_mx), CFE power
factor charge or credit (power_factor), grid emission factors (emissions). Not yet wired into
the agent's pipeline; energy, demand windows, tariff periods and persisted state are to come.
"""

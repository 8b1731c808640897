"""The ``sunspec`` driver: SunSpec inverters and meters over Modbus, discovered, not
configured. models.py (point tables), values.py (sentinels and scale factors), chain.py
(marker and model chain), device.py (the driver plugin)."""

"""Metrics that need another device's reading: PM2.5 corrected with a neighbour's humidity.

Metrics are per device; this is the one place where a device's metric uses another device's
value. The design is deliberately small:

* the engine hands every successful poll to :meth:`HumiditySources.observe`, which keeps the
  **latest** ``humidity_pct`` (and its timestamp) of each device that reports one;
* a PM device names its source in its metrics settings (``humidity_from: <device>``); when
  that device's poll arrives, :meth:`HumiditySources.correct` takes the source's latest RH if
  it is **fresh**: at most ``humidity_max_age`` (default 5 minutes) apart from the PM
  reading, either way, since the two devices are polled on their own schedules;
* the result is a new value, ``pm2_5_corrected_ugm3``, added next to the raw PM2.5 in the
  device's telemetry (never replacing it), with a quality reason when it could not be
  computed or is doubtful: ``humidity_missing`` (the source has not reported RH, or reported
  null), ``humidity_stale``, ``humidity_out_of_range``, ``pm_missing`` / ``pm_invalid``,
  ``pm_beyond_range`` (value kept, input above 500 µg/m³) and ``input_not_cf1`` (value kept:
  the driver does not report CF=1 PM2.5, so its reported PM2.5 was used, see
  :mod:`~vatio.agent.metrics.pm_humidity`).

Latest humidity is not saved across restarts: after a restart the first RH poll (seconds
away) supplies it, and the corrected value is flagged ``humidity_missing`` until then.
"""

from __future__ import annotations

from typing import Any

from vatio.agent.config import DeviceMetricsConfig
from vatio.agent.metrics.pm_humidity import Corrected, correct
from vatio.common.links import SerialLine
from vatio.drivers.modbus.plugin import ModbusDriver
from vatio.drivers.reading import PollResult

CORRECTED = "pm2_5_corrected_ugm3"
CF1 = "pm2_5_cf1_ugm3"
REPORTED = "pm2_5_ugm3"


class HumiditySources:
    """The latest relative humidity of every device that reports one."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[float, float | None]] = {}  # device → (ts, RH %)

    def observe(self, result: PollResult) -> None:
        if result.ok and "humidity_pct" in result.values:
            self.latest[result.device] = (result.ts, result.values["humidity_pct"])

    def correct(
        self, settings: DeviceMetricsConfig, values: dict[str, float | None], ts: float
    ) -> Corrected | None:
        """The corrected PM2.5 of one reading, or None if the device asks for none."""
        if settings.humidity_from is None:
            return None
        choice: str = settings.humidity_input
        if choice == "auto":
            choice = CF1 if values.get(CF1) is not None else REPORTED
        pm = values.get(choice)
        if pm is None:
            return Corrected(None, "pm_missing")
        source = self.latest.get(settings.humidity_from)
        if source is None or source[1] is None:
            return Corrected(None, "humidity_missing")
        if abs(ts - source[0]) > settings.humidity_max_age:
            return Corrected(None, "humidity_stale")
        result = correct(pm, source[1])
        guessed = settings.humidity_input == "auto" and choice != CF1
        if result.value is not None and not result.flag and guessed:
            return Corrected(result.value, "input_not_cf1")
        return result


def device_quantities(name: str, plugin: type[Any], options: Any, bus: Any) -> list[str] | None:
    """What a configured device will report, when that is known without talking to it: a
    Modbus profile's quantities, or a serial driver's list (made without opening the port).
    None when it cannot be known before the device answers."""
    if plugin is ModbusDriver:
        return [p.quantity for p in options.profile.points]
    if getattr(bus, "type", None) == "serial":
        try:
            line = SerialLine(bus.port, bus.baudrate, bus.parity, bus.stopbits, bus.bytesize)
            return list(plugin.create(name, line, options).quantities)
        except Exception:  # a third-party driver that needs more to be made: check at run time
            return None
    return None

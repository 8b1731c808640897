"""The built-in ``modbus`` driver plugin: a unit id and a profile are all a device needs.

devices:
  general: {bus: tablero, unit: 1, profile: eastron_sdm630, interval: 1s}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, field_validator

from vatio.common.i18n import tr
from vatio.drivers.modbus.device import ModbusDevice
from vatio.drivers.modbus.profile import Profile, load_profile
from vatio.drivers.modbus.transport import ModbusTransport

SERIAL_BUSES = ("modbus-rtu", "modbus-rtu-tcp")  # an RS-485 line behind it: ids 1–247


def _profile_ref(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str):
        base_dir = (info.context or {}).get("base_dir")
        # ValueError (unknown name) becomes a located error; ConfigError (a profile file
        # with mistakes) carries its own locations and is reported by the config loader
        return load_profile(value, Path(base_dir) if base_dir else None)
    return value


def unit_in_range(unit: int, info: ValidationInfo) -> int:
    """A Modbus unit id for the bus type in ``info.context`` (other Modbus drivers use it)."""
    serial = (info.context or {}).get("bus_type") in SERIAL_BUSES
    low, high = (1, 247) if serial else (0, 255)
    if not low <= unit <= high:
        raise ValueError(
            tr(
                "unit id {unit} is out of range {low}–{high} for RS-485 (Modbus serial "
                "line): use the address set on the device (often 1)"
                if serial
                else "unit id {unit} is out of range {low}–{high}: use the address set on "
                "the device (often 1)",
                unit=unit,
                low=low,
                high=high,
            )
        )
    return unit


class ModbusOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: int
    profile: Annotated[Profile, BeforeValidator(_profile_ref)]

    @field_validator("unit")
    @classmethod
    def _unit_range(cls, unit: int, info: ValidationInfo) -> int:
        return unit_in_range(unit, info)


class ModbusDriver:
    """Entry point ``modbus`` of the ``vatio.drivers`` group."""

    bus_types: ClassVar[tuple[str, ...]] = ("modbus-tcp", "modbus-rtu", "modbus-rtu-tcp")
    Options: ClassVar[type[BaseModel]] = ModbusOptions

    @classmethod
    def create(cls, name: str, bus: ModbusTransport, options: ModbusOptions) -> ModbusDevice:
        return ModbusDevice(name, options.unit, options.profile, bus)

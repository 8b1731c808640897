"""Driver plugins: how a kind of device plugs into Vatio.

A driver plugin is a class registered in the ``vatio.drivers`` entry-point group. Built-in
drivers register exactly the same way (see pyproject.toml), so a third-party package is a
first-class citizen. The class provides:

* ``bus_types``: the bus types it can talk over (``modbus-tcp``, ``modbus-rtu``,
  ``modbus-rtu-tcp``, ``serial``, ``i2c``); a model with one driver per bus type registers
  ``<name>_uart`` for its serial driver and ``<name>_i2c`` for its I2C one, and ``driver: <name>``
  on such a bus finds it (:func:`load_plugin_for`);
* ``Options``: a pydantic model of its settings. Every key of a device's YAML mapping other
  than ``bus``, ``driver``, ``interval`` and ``enabled`` is an option, so a mistake in an option
  is reported with its YAML path like any other;
* ``create(name, bus, options)``: a :class:`vatio.drivers.base.Driver` for one device. ``bus`` is
  what the agent opened for that bus: a :class:`~vatio.drivers.modbus.transport.ModbusTransport`
  for Modbus buses, a :class:`~vatio.drivers.modbus.transport.SerialLine` (the port's settings)
  for a ``serial`` bus, which the driver opens itself, and the bus's one
  :class:`~vatio.drivers.i2c.transport.I2cBus` for an ``i2c`` bus (shared by every device on
  it; the driver calls ``attach()`` when created and ``detach()`` when closed).

A minimal third-party driver (``tests/fixtures/vatio_demo_driver`` is a complete one)::

    class Thermo:
        bus_types = ("serial",)

        class Options(BaseModel):
            model_config = ConfigDict(extra="forbid")
            channel: int = 1

        @classmethod
        def create(cls, name: str, bus: SerialLine, options: Options) -> Driver: ...

    # pyproject.toml of the package:
    # [project.entry-points."vatio.drivers"]
    # thermo = "vatio_thermo:Thermo"

Optional: ``use_state(store)`` on the driver. The agent then hands it a
:class:`vatio.drivers.statefile.StateFile` (``<state_dir>/drivers/<device>.json``) for what the
driver learns about its device and must keep across restarts (the Modbus driver keeps the
read plan a device taught it). Writes are atomic and never raise.

Optional: ``counters()`` on the driver, ``{name: (kind, help, value)}`` with kind "counter" or
"gauge": the agent's ``/metrics`` serves each as ``vatio_<name>{device="…"}``.

Optional: ``info()`` on the driver, ``{key: text}``: what the device says it is
(manufacturer, model, serial, firmware version …, as the SunSpec driver reads them from the
common model); the agent adds it to the device's retained ``status`` message as ``info``.

Optional: ``model`` (and ``manufacturer``) attributes on the driver, e.g. ``model =
"Plantower PMS5003"`` (without ``manufacturer``, the first word is taken as the maker): what
Home Assistant shows for the device (agent/homeassistant.py); a Modbus profile's ``model`` and
``manufacturer`` serve the same purpose.

Options models may read ``info.context`` in their validators: it holds ``base_dir`` (the
config file's folder), ``bus_type``, ``bus`` (its name) and ``baudrate`` (serial buses).
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from vatio.drivers.base import Driver
from vatio.drivers.statefile import StateFile

GROUP = "vatio.drivers"


class DriverPlugin(Protocol):
    bus_types: ClassVar[tuple[str, ...]]
    Options: ClassVar[type[BaseModel]]

    @classmethod
    def create(cls, name: str, bus: Any, options: Any) -> Driver: ...


class PluginError(ValueError):
    """A driver that is unknown, or that failed to import (message says which and why)."""


@cache
def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    return sorted(_entry_points())


@cache
def load_plugin(name: str) -> type[DriverPlugin]:
    eps = _entry_points()
    if name not in eps:
        close = difflib.get_close_matches(name, eps, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise PluginError(
            f"unknown driver '{name}': {hint}(installed: {', '.join(available())}); a "
            "third-party driver must be installed in the same environment as Vatio"
        )
    try:
        plugin = eps[name].load()
    except Exception as exc:  # a broken third-party package must not crash the agent
        raise PluginError(
            f"driver '{name}' ({eps[name].value}) failed to load: {exc!r}; reinstall or "
            "update the package that provides it"
        ) from None
    for attr in ("bus_types", "Options", "create"):
        if not hasattr(plugin, attr):
            raise PluginError(
                f"driver '{name}' ({eps[name].value}) is not a Vatio driver: it has no "
                f"'{attr}' (see drivers/plugin.py)"
            )
    result: type[DriverPlugin] = plugin
    return result


# A driver name may stand for one device model on several bus types, each served by its own
# entry point: ``driver: sps30`` on a ``serial`` bus is ``sps30_uart``; on an ``i2c`` bus the
# plain ``sps30``. The suffix of each bus type:
BUS_SUFFIXES = {"serial": "uart", "i2c": "i2c"}


def load_plugin_for(name: str, bus_type: str | None) -> type[DriverPlugin]:
    """The plugin for ``driver: name`` on a bus of ``bus_type``: ``name`` itself, or
    ``<name>_<suffix>`` (``sps30_uart``) when ``name`` is missing or does not serve that bus
    type and the suffixed entry point exists."""
    suffix = BUS_SUFFIXES.get(bus_type or "")
    variant = f"{name}_{suffix}" if suffix else None
    if variant is None or variant not in _entry_points():
        return load_plugin(name)
    if name in _entry_points():
        try:
            plugin = load_plugin(name)
        except PluginError:
            return load_plugin(variant)
        if bus_type in plugin.bus_types:
            return plugin
    return load_plugin(variant)


def state_file(state_dir: Path, device: str, writable: bool = True) -> StateFile:
    """Where a device's driver keeps its state (device names are safe file names)."""
    return StateFile(state_dir / "drivers" / f"{device}.json", writable)


def attach_state(driver: Driver, state_dir: Path, writable: bool = True) -> None:
    """Hand ``driver`` its state file if it wants one (it has ``use_state``)."""
    use_state = getattr(driver, "use_state", None)
    if use_state is not None:
        use_state(state_file(state_dir, driver.name, writable))

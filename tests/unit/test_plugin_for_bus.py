"""``driver: sps30`` on a serial bus finds ``sps30_uart``; the plain name keeps the buses it
serves (drivers/plugin.py: load_plugin_for)."""

from __future__ import annotations

import pytest

from vatio.agent.config import ConfigError, parse_config_text
from vatio.drivers import plugin
from vatio.drivers.uart.sps30_uart import Sps30UartDriver


class _I2cSps30:
    bus_types = ("i2c",)
    Options = object
    create = staticmethod(lambda *a: None)


class _EntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name, self.value, self._target = name, f"tests:{name}", target

    def load(self) -> object:
        return self._target


@pytest.fixture
def installed(monkeypatch):
    def install(**targets: object) -> None:
        eps = {n: _EntryPoint(n, t) for n, t in targets.items()}
        monkeypatch.setattr(plugin, "_entry_points", lambda: eps)
        plugin.load_plugin.cache_clear()

    yield install
    plugin.load_plugin.cache_clear()


def test_serial_bus_picks_the_uart_variant_when_the_plain_name_is_i2c(installed):
    installed(sps30=_I2cSps30, sps30_uart=Sps30UartDriver)
    assert plugin.load_plugin_for("sps30", "serial") is Sps30UartDriver
    assert plugin.load_plugin_for("sps30", "i2c") is _I2cSps30
    assert plugin.load_plugin_for("sps30_uart", "serial") is Sps30UartDriver


def test_serial_bus_picks_the_uart_variant_when_only_it_is_installed(installed):
    installed(sps30_uart=Sps30UartDriver)
    assert plugin.load_plugin_for("sps30", "serial") is Sps30UartDriver
    with pytest.raises(plugin.PluginError, match="did you mean 'sps30_uart'"):
        plugin.load_plugin_for("sps30", "i2c")


def test_a_plain_driver_that_serves_the_bus_wins(installed):
    both = type("Both", (_I2cSps30,), {"bus_types": ("i2c", "serial")})
    installed(sps30=both, sps30_uart=Sps30UartDriver)
    assert plugin.load_plugin_for("sps30", "serial") is both


def test_the_real_entry_points_resolve_sps30_on_serial():
    plugin.load_plugin.cache_clear()
    assert plugin.load_plugin_for("sps30", "serial") is Sps30UartDriver


SPS30_CONFIG = """\
site: s
buses:
  pm: {type: serial, port: /dev/ttyUSB0, baudrate: 115200}
devices:
  dust: {bus: pm, driver: sps30, %s}
outputs:
  mqtt: {url: 'mqtt://127.0.0.1:1883'}
"""


def test_config_resolves_sps30_on_a_serial_bus_and_checks_its_options():
    plugin.load_plugin.cache_clear()
    loaded = parse_config_text(SPS30_CONFIG % "auto_cleaning_interval_h: 96", file="v.yaml")
    assert loaded.entries["dust"].plugin is Sps30UartDriver
    with pytest.raises(ConfigError) as err:
        parse_config_text(SPS30_CONFIG % "auto_cleaning_interval_h: -1", file="v.yaml")
    assert "v.yaml:5: devices.dust.auto_cleaning_interval_h" in str(err.value)


def test_config_refuses_an_sps30_bus_at_another_speed():
    plugin.load_plugin.cache_clear()
    text = SPS30_CONFIG.replace("baudrate: 115200", "baudrate: 9600") % "interval: 5s"
    with pytest.raises(ConfigError) as err:
        parse_config_text(text, file="v.yaml")
    assert "v.yaml:5: devices.dust" in str(err.value)
    assert "the SPS30 talks at 115200 baud (8N1), but bus 'pm' is set to 9600" in str(err.value)

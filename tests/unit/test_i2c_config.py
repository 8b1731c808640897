"""The ``i2c`` bus type and I2C device options: defaults, and located, readable errors."""

import textwrap

import pytest

from vatio.agent.config import ConfigError, parse_config_text
from vatio.agent.runtime import build_bus
from vatio.drivers.i2c.transport import I2cBus

BASE = """\
site: s
buses:
  kit: {type: i2c, device: /dev/i2c-1}
  tablero: {type: modbus-tcp, host: 127.0.0.1}
devices:
"""


def problems(devices: str, base: str = BASE) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config_text(base + textwrap.indent(textwrap.dedent(devices), "  "), file="f.yaml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("driver", "address"),
    [("bme280", 0x76), ("sht3x", 0x44), ("sht4x", 0x44), ("scd4x", 0x62), ("sps30_i2c", 0x69)],
)
def test_each_driver_has_its_datasheet_address_by_default(driver, address):
    loaded = parse_config_text(BASE + f"  d: {{bus: kit, driver: {driver}}}\n")
    assert loaded.entries["d"].options.address == address
    assert isinstance(build_bus("kit", loaded), I2cBus)


def test_an_address_may_be_written_in_hex_either_way():
    loaded = parse_config_text(
        BASE + "  a: {bus: kit, driver: bme280, address: 0x77}\n"
        '  b: {bus: kit, driver: sht3x, address: "0x45"}\n'
    )
    assert [e.options.address for e in loaded.entries.values()] == [0x77, 0x45]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0x78", "devices.d.address: 0x78 (120) is not a 7-bit I2C device address: use 0x03–0x77"),
        ("2", "devices.d.address: 0x02 (2) is not a 7-bit I2C device address"),
        ("0xEC", "twice the 7-bit one"),
        ("zz", "devices.d.address: 'zz' is not an I2C address: write it like 0x44"),
    ],
)
def test_a_bad_address_is_named_with_the_fix(value, message):
    out = problems(f"d: {{bus: kit, driver: sht3x, address: {value}}}\n")
    assert len(out) == 1
    assert out[0].startswith("f.yaml:6: devices.d.address") and message in out[0]


def test_a_bus_device_that_is_not_an_i2c_adapter_is_named():
    base = BASE.replace("/dev/i2c-1", "/dev/ttyUSB0")
    out = problems("d: {bus: kit, driver: sht3x}\n", base)
    assert out == [
        "f.yaml:3: buses.kit.device: '/dev/ttyUSB0' is not an I2C adapter: write /dev/i2c-N "
        "(/dev/i2c-1 on a Raspberry Pi's header; ls /dev/i2c-* lists them once I2C is enabled)"
    ]


def test_i2c_drivers_and_other_buses_do_not_mix():
    out = problems(
        """\
        th: {bus: tablero, driver: sht3x}
        meter: {bus: kit, unit: 1, profile: eastron_sdm120}
        """
    )
    assert out[0] == (
        "f.yaml:6: devices.th.bus: driver 'sht3x' talks over i2c, but bus 'tablero' is "
        "modbus-tcp: choose a bus of the right type"
    )
    assert "bus 'kit' is i2c" in out[1]


def test_two_sensors_at_one_address_on_one_bus_are_refused():
    out = problems(
        """\
        a: {bus: kit, driver: sht4x}
        b: {bus: kit, driver: sht3x}
        c: {bus: kit, driver: sht3x, address: 0x45}
        """
    )
    assert out == [
        "f.yaml:7: devices.b: address 0x44 on bus 'kit' is taken by device 'a': two sensors "
        "cannot share an address; set another with the sensor's address pin, or put one on "
        "another I2C bus"
    ]


def test_an_unknown_option_suggests_the_right_one():
    out = problems("d: {bus: kit, driver: bme280, adress: 0x77}\n")
    assert out == ["f.yaml:6: devices.d.adress: unknown key 'adress': did you mean 'address'?"]


def test_bme280_mode_and_oversampling_are_checked():
    out = problems("d: {bus: kit, driver: bme280, mode: fast, oversampling: 3}\n")
    assert any("devices.d.mode" in p and "forced" in p for p in out)
    assert any("devices.d.oversampling" in p for p in out)


def test_one_adapter_is_one_bus():
    base = BASE.replace("  tablero:", "  kit2: {type: i2c}\n  tablero:")
    out = problems("d: {bus: kit, driver: sht3x}\ne: {bus: kit2, driver: sht4x}\n", base)
    assert out == [
        "f.yaml:4: buses.kit2: /dev/i2c-1 is already bus 'kit': put every sensor of one I2C "
        "adapter on one bus"
    ]

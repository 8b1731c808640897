"""Runtime wiring: a driver that fails to start is skipped with a message, not a crash."""

import dataclasses
import logging

from vatio.agent.config import DeviceEntry, parse_config_text
from vatio.agent.runtime import build_scheduler

CONFIG = """\
site: s
buses:
  gw: {type: modbus-tcp, host: 127.0.0.1, port: 5020}
devices:
  good: {bus: gw, unit: 1, profile: eastron_sdm120}
  broken: {bus: gw, unit: 2, profile: eastron_sdm120}
"""


class Sink:
    def readings(self, result):
        pass

    def device_state(self, device, state, reason):
        pass


def test_a_driver_that_fails_to_start_is_skipped(caplog):
    loaded = parse_config_text(CONFIG)
    good = loaded.entries["good"]

    class Broken:
        bus_types = good.plugin.bus_types
        Options = good.plugin.Options

        @classmethod
        def create(cls, name, bus, options):
            raise RuntimeError("boom")

    loaded.entries["broken"] = dataclasses.replace(loaded.entries["broken"], plugin=Broken)
    assert isinstance(loaded.entries["broken"], DeviceEntry)
    with caplog.at_level(logging.ERROR):
        scheduler, _, drivers = build_scheduler(loaded, Sink())
    assert [d.name for d in drivers] == ["good"]
    assert [d.driver.name for d in scheduler.devices] == ["good"]
    assert "device 'broken': driver 'modbus' failed to start (RuntimeError('boom'))" in caplog.text

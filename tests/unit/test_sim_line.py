"""The simulated RS-485 line behaves as a real one where `vatio scan` can tell: absent unit
ids stay silent, and a baud-faithful meter takes its time for exception replies too."""

from __future__ import annotations

import time

from pymodbus.constants import ExcCodes

from vatio.drivers.modbus.profile import load_profile
from vatio.simulators import mixed_line
from vatio.simulators.modbus_server import ModbusSerialSimulator, SimulatedMeter, _FaultHook


def test_replies_for_absent_units_are_swallowed_only_when_asked():
    meters = [SimulatedMeter(3, load_profile("chint_dtsu666"))]
    hook = _FaultHook(meters, 0)
    exception_for_unit_9 = bytes([9, 0x83, 0x04, 0x00, 0x00])
    assert hook(True, exception_for_unit_9) == exception_for_unit_9  # pymodbus's default
    hook.silent_absent = True
    assert hook(True, exception_for_unit_9) == b""
    reply_for_unit_3 = bytes([3, 0x03, 0x02, 0x00, 0x01, 0x00, 0x00])
    assert hook(True, reply_for_unit_3) == reply_for_unit_3


async def test_a_baud_faithful_meter_refuses_a_hole_after_its_wire_time():
    meter = SimulatedMeter(1, load_profile("chint_dtsu666"), clock=lambda: 1.7e9)
    sim = ModbusSerialSimulator([meter], "/dev/null", 9600, baud_faithful=True)
    meter.sim_device()  # the server builds it at start
    registers = [0] * 0x10000
    t0 = time.perf_counter()
    # 0x3000 is no DTSU666 register: exception 2, after request + 5-byte reply at 9600 baud
    assert await meter._on_access(3, 0, 0x3000, 2, registers, None) == ExcCodes.ILLEGAL_ADDRESS
    took = time.perf_counter() - t0
    assert took >= sim.wire_time(0) * 0.95
    # a mapped register is served, from the same full-range image
    assert await meter._on_access(3, 0, 0x2006, 2, registers, None) is None
    assert registers[0x2006] != 0


def test_the_line_has_eight_different_models():
    assert len(set(mixed_line.LINE.values())) == 8
    assert [m.unit for m in mixed_line.meters()] == sorted(mixed_line.LINE)

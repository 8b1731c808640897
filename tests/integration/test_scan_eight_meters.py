"""`vatio scan` of one RS-485 line at 9600 baud with eight different meters (issue 14's
benchmark): every unit named by its own profile, and how long the scan takes.

The line is a pty pair with baud-faithful simulators (each reply held for its time on the
wire at 9600 baud), so the time is the scan's real cost on such a line, give or take the
meters' turnaround, which real meters add (a few ms to tens of ms each).
"""

from __future__ import annotations

import time

import pytest

from tests.helpers import run_cli_async
from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.modbus_server import ModbusSerialSimulator, SimulatedMeter
from vatio.simulators.serial_pair import SerialPair

# serial: replies held for their wire time, against 0.2 s turnaround timeouts
pytestmark = [pytest.mark.integration, pytest.mark.serial]

LINE = {
    1: "abb_b23_b24",
    2: "schneider_iem3000",
    3: "eastron_sdm120",
    4: "inepro_pro380",
    5: "dzg_dvh4013",
    6: "bernecker_mpm3pm",
    7: "orno_or_we_514",
    8: "janitza_b23_b24",
}


async def test_scan_names_eight_different_meters_on_one_line(tmp_path):
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")
    meters = [SimulatedMeter(u, load_profile(p), seed=u) for u, p in LINE.items()]
    with SerialPair(tmp_path) as pair:
        sim = ModbusSerialSimulator(meters, pair.a, baudrate=9600, baud_faithful=True)
        await sim.start()
        try:
            t0 = time.monotonic()
            res = await vatio("scan", pair.b, "--units", "1-8", "-q", "--timeout", "0.2")
            took = time.monotonic() - t0
        finally:
            await sim.stop()
    assert res.returncode == 0, res.stderr
    rows = {int(x.split()[0]): x for x in res.stdout.splitlines() if x[:4].strip().isdigit()}
    assert set(rows) == set(LINE), res.stdout
    for unit, profile in LINE.items():
        # named by its own profile alone (a tie would read "a or b")
        assert rows[unit].split()[1] == profile and " or " not in rows[unit], res.stdout
    print(f"\nscan of 8 meters at 9600 baud: {took:.1f} s\n{res.stdout}")
    assert took < 60


vatio = run_cli_async

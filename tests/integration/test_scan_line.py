"""`vatio scan` on one RS-485 line with eight different meters (issue 14): a pty pair at
9600 baud whose simulated meters answer at the line's real speed (baud-faithful)."""

from __future__ import annotations

import time

import pytest

from tests.helpers import run_cli_async
from vatio.simulators import mixed_line
from vatio.simulators.modbus_server import ModbusSerialSimulator
from vatio.simulators.serial_pair import SerialPair

pytestmark = pytest.mark.integration


async def test_scan_names_eight_different_meters_on_one_line(tmp_path):
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")
    with SerialPair(tmp_path) as pair:
        sim = ModbusSerialSimulator(mixed_line.meters(), pair.a, 9600, baud_faithful=True)
        await sim.start()
        try:
            t0 = time.monotonic()
            res = await run_cli_async(
                "scan", pair.b, "--baudrate", "9600", "--units", "1-10", "-q"
            )
            took = time.monotonic() - t0
        finally:
            await sim.stop()
    assert res.returncode == 0, res.stderr
    rows = {
        int(line.split()[0]): line.split()[1]
        for line in res.stdout.splitlines()
        if line[:4].strip().isdigit()
    }
    # every unit named with its own profile and nothing else ("a or b" would be a 2nd word)
    assert rows == mixed_line.LINE, res.stdout
    assert " or " not in res.stdout.split("# paste")[0]
    assert "model_code=340" in res.stdout  # the EM340 named by its identification code
    assert took < 20, f"scan took {took:.1f} s"

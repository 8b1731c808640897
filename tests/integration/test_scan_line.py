"""`vatio scan` on one RS-485 line with eight different meters (issue 14): a pty pair at
9600 baud whose simulated meters answer at the line's real speed (baud-faithful) and stay
silent for unit ids nobody has; then `vatio read` polls the eight with the profiles found."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import run_cli_async
from vatio.simulators import mixed_line
from vatio.simulators.modbus_server import ModbusSerialSimulator
from vatio.simulators.serial_pair import SerialPair

# serial: replies held for their wire time, against 0.2 s turnaround timeouts
pytestmark = [pytest.mark.integration, pytest.mark.serial]


async def test_scan_names_eight_different_meters_on_one_line(tmp_path):
    if not SerialPair.available():
        pytest.fail("socat is not installed: run ./scripts/test as root (apt-get install socat)")
    config = tmp_path / "line.yaml"
    with SerialPair(tmp_path) as pair:
        config.write_text(mixed_line.config_text(pair.b, str(tmp_path)))
        sim = ModbusSerialSimulator(
            mixed_line.meters(), pair.a, 9600, baud_faithful=True, silent_absent=True
        )
        await sim.start()
        try:
            t0 = time.monotonic()
            res = await run_cli_async("scan", pair.b, "--baudrate", "9600", "--units", "1-10", "-q")
            took = time.monotonic() - t0
            read = await run_cli_async("read", "-c", str(config), "--json")
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
    assert "model_code=0x154" in res.stdout  # the EM340 named by its identification code, 340
    assert took < 20, f"scan took {took:.1f} s"
    # the profiles found poll their meters: Mexico's 127 V / 60 Hz on every one
    assert read.returncode == 0, read.stdout + read.stderr
    polled = json.loads(read.stdout)
    assert sorted(polled) == [f"m{u}" for u in mixed_line.LINE]
    for name, body in polled.items():
        values = body["values"]
        assert 120 < values["voltage_l1_v"] < 135, (name, values)
        assert 59.9 < values["frequency_hz"] < 60.1, (name, values)
        assert values["energy_import_kwh"] > 1000, (name, values)

"""A pseudo-terminal Python opens itself (no socat): a PMS5003 simulator on its master end
speaks real frames to whoever opens the slave end as a serial port, and hears commands."""

from __future__ import annotations

import asyncio

import serial

from vatio.drivers.uart import pms5003
from vatio.simulators.serial_pair import PtyPair
from vatio.simulators.uart_sensors import Pms5003Sim


async def read_frame(port: serial.Serial) -> bytes:
    buf = b""
    for _ in range(60):  # the simulator sends a frame a second
        await asyncio.sleep(0.05)
        buf += port.read(port.in_waiting or 1)
        start = buf.find(pms5003.HEADER)
        if start >= 0 and len(buf) - start >= pms5003.FRAME_LEN:
            return buf[start : start + pms5003.FRAME_LEN]
    raise AssertionError(f"no frame in {buf!r}")


async def test_a_pms5003_on_a_pty_pair_speaks_both_ways():
    with PtyPair() as pty:
        sim = Pms5003Sim(pty.path, seed=1)
        sim.period = 0.1
        sim.fixed = {"pm2_5_ugm3": 37.0}
        await sim.start_fd(pty.fd)
        try:
            with serial.Serial(pty.path, 9600, timeout=0) as port:
                frame = await read_frame(port)
                assert pms5003.frame_valid(frame)
                assert pms5003.parse(frame).pm2_5 == 37
                port.write(pms5003.SET_PASSIVE)
                for _ in range(40):
                    await asyncio.sleep(0.05)
                    if not sim.active:
                        break
                assert not sim.active and sim.commands[-1] == pms5003.SET_PASSIVE
        finally:
            await sim.stop()
    assert pty.fd == -1  # closed

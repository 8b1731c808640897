"""One RS-485 line with eight different meters, as a Mexican plant's switchboard might have:
the line `vatio scan` is tested and benchmarked on (tests/integration/test_scan_line.py,
bench/scan.py).

Each unit serves its built-in profile's register block (values from the factory load curve,
model codes from the profile's ``identify`` registers), so the scanner sees each model's
real layout.
All units share the line's settings (9600 baud, 8N1 here); on a real line the ORNO WE-516's
factory parity (odd) would have to be changed to match the others.

``python -m vatio.simulators.mixed_line AGENT_PORT [--baud 9600]`` serves the line on a pty
pair whose agent end is created at AGENT_PORT, answering at the baud rate's real speed and
staying silent for unit ids nobody has (as a real line does), until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from vatio.drivers.modbus.profile import load_profile
from vatio.simulators.modbus_server import ModbusSerialSimulator, SimulatedMeter
from vatio.simulators.serial_pair import SerialPair

# unit id -> built-in profile; eight models that `vatio scan` must tell apart
LINE: dict[int, str] = {
    1: "carlo_gavazzi_em24",
    2: "orno_or_we_516",
    3: "schneider_pm5000",
    4: "siemens_pac3200",
    5: "chint_dtsu666",
    6: "circutor_cvm_c10",
    7: "carlo_gavazzi_em340",
    8: "accuenergy_acuvim2",
}


def meters(seed: int = 0) -> list[SimulatedMeter]:
    """The line's meters, one per unit id, each with its own load curve."""
    return [SimulatedMeter(u, load_profile(name), seed=seed + u) for u, name in LINE.items()]


def config_text(port: str, state_dir: str, baudrate: int = 9600) -> str:
    """An agent config describing the line (for ``vatio simulate -c``)."""
    devices = "".join(
        f"  m{unit}: {{bus: line, unit: {unit}, profile: {name}}}\n" for unit, name in LINE.items()
    )
    return (
        f"site: scan-line\nstate_dir: {state_dir}\nbuses:\n"
        f"  line: {{type: modbus-rtu, port: {port}, baudrate: {baudrate}}}\n"
        f"devices:\n{devices}"
    )


async def serve(agent_port: str, baudrate: int) -> None:
    """Serve the line on a pty pair whose agent end is ``agent_port``, until SIGTERM/SIGINT."""
    pair = SerialPair.at(agent_port).start()
    sim = ModbusSerialSimulator(meters(), pair.a, baudrate, baud_faithful=True, silent_absent=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sim.start()
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await sim.stop()
        pair.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("agent_port", help="path where the agent's end of the line is created")
    ap.add_argument("--baud", type=int, default=9600)
    args = ap.parse_args()
    asyncio.run(serve(args.agent_port, args.baud))


if __name__ == "__main__":
    main()

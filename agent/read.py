"""``vatio read -c FILE [DEVICE…]``: poll devices once and show what they say.

For commissioning: the same drivers, buses and timeouts as ``vatio run``, without MQTT.
``--json`` prints one object per device; ``--watch`` polls again every second and redraws
the table in place until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import TextIO

from vatio.agent.buses import build_bus
from vatio.agent.config import LoadedConfig
from vatio.common.links import SerialLine
from vatio.common.vocabulary import QUANTITIES
from vatio.drivers.base import Driver
from vatio.drivers.i2c.transport import I2cBus
from vatio.drivers.modbus.transport import ModbusTransport
from vatio.drivers.plugin import attach_state
from vatio.drivers.reading import DeviceError, PollResult


def build_drivers(
    loaded: LoadedConfig, names: list[str]
) -> tuple[list[Driver], list[ModbusTransport]]:
    drivers: list[Driver] = []
    buses: dict[str, ModbusTransport | SerialLine | I2cBus] = {}
    transports: list[ModbusTransport] = []
    for name in names:
        entry = loaded.entries[name]
        bus_name = entry.config.bus
        if bus_name not in buses:
            bus = buses[bus_name] = build_bus(bus_name, loaded)
            if isinstance(bus, ModbusTransport):
                transports.append(bus)
        driver = entry.plugin.create(name, buses[bus_name], entry.options)
        # the plan the agent learned (read only: a commissioning run never changes it)
        attach_state(driver, Path(loaded.config.state_dir), writable=False)
        drivers.append(driver)
    return drivers, transports


def plan_lines(driver: Driver) -> list[str]:
    """How a driver's read plan differs from its profile's, and why (Modbus devices)."""
    lines = getattr(driver, "plan_lines", None)
    return list(lines()) if lines is not None else []


async def poll_once(driver: Driver) -> PollResult:
    try:
        return await driver.poll()
    except DeviceError as exc:
        code, error = exc.code, f"{exc}: {exc.hint}"
    except Exception as exc:  # a driver's bug: one located line, as `vatio run` logs it
        code = "error"
        error = (
            f"unexpected {type(exc).__name__} in its driver: {exc}: report this to the "
            "driver's authors"
        )
    q = driver.quantities
    return PollResult(
        driver.name, time.time(), dict.fromkeys(q), dict.fromkeys(q, code), error=error
    )


def table(results: list[PollResult], plans: dict[str, list[str]] | None = None) -> str:
    lines = []
    for r in results:
        lines.append(f"{r.device}" + (f"  ERROR {r.error}" if r.error else ""))
        if r.degraded:
            lines.append(f"  DEGRADED {r.degraded}")
        lines += [f"  {line}" for line in (plans or {}).get(r.device, [])]
        for q, v in r.values.items():
            unit = QUANTITIES[q].unit if q in QUANTITIES else ""
            shown = f"{v:.6g}" if v is not None else f"— ({r.quality.get(q, '')})"
            lines.append(f"  {q:<30} {shown:>14} {unit}")
    return "\n".join(lines)


async def read_command(
    loaded: LoadedConfig, names: list[str], as_json: bool, watch: bool, out: TextIO = sys.stdout
) -> int:
    # what a device taught the plan is shown with its values: not also as a log line
    logging.getLogger("vatio.drivers.modbus.device").setLevel(logging.ERROR)
    drivers, transports = build_drivers(loaded, names)
    try:
        while True:
            # devices on different buses are read at once, as the agent would
            results = list(await asyncio.gather(*(poll_once(d) for d in drivers)))
            plans = {d.name: plan_lines(d) for d in drivers}
            if as_json:
                body = {
                    r.device: {
                        "ts": r.ts,
                        "values": r.values,
                        "quality": r.quality,
                        "error": r.error,
                        "degraded": r.degraded,
                        "plan": plans[r.device],
                    }
                    for r in results
                }
                out.write(json.dumps(body) + "\n")
            else:
                text = table(results, plans)
                out.write(("\x1b[H\x1b[2J" + text if watch and out.isatty() else text) + "\n")
            out.flush()
            if not watch:
                return 0 if all(r.ok for r in results) else 1
            await asyncio.sleep(1.0)
    finally:
        for t in transports:
            t.close()
        for d in drivers:
            closer = getattr(d, "close", None)
            if closer is not None:
                await closer()

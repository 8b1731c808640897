"""``vatio scan``: find the Modbus devices on a serial line or behind a TCP gateway.

It probes unit ids (1–247 by default) with a short timeout, and for each id that answers it
reads the *signature* of every built-in profile (a few values that must fall in a range,
e.g. a frequency of 45–65 Hz) to name the model. The most specific match wins; equally good
matches are all listed. Ctrl-C stops the scan and still prints what was found. The result is
a table and a YAML snippet ready to paste into the config.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from drivers.modbus.planner import plan_reads
from drivers.modbus.profile import Profile, RegisterType, builtin_profiles, load_profile
from drivers.modbus.register_codec import NotANumber, decode

Client = AsyncModbusTcpClient | AsyncModbusSerialClient

# Exception replies that mean "nobody with this id": a gateway's "no path" / "no answer".
ABSENT_CODES = {10, 11}


@dataclass
class Found:
    unit: int
    profiles: list[str] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)


async def _read(
    client: Client, rtype: RegisterType, start: int, count: int, unit: int
) -> list[int] | None:
    """Registers, or None when the unit refuses or stays silent."""
    try:
        if rtype is RegisterType.INPUT:
            rr = await client.read_input_registers(start, count=count, device_id=unit)
        else:
            rr = await client.read_holding_registers(start, count=count, device_id=unit)
    except ModbusException:
        if not client.connected:  # pymodbus drops a TCP link after a few silences
            await client.connect()
        return None
    if rr.isError():
        return None
    return list(rr.registers)


async def _signature(client: Client, unit: int, profile: Profile) -> dict[str, float] | None:
    """The profile's signature values as this unit answers them, if all are in range."""
    wanted = {q: (lo, hi) for q, lo, hi in profile.signature}
    points = [p for p in profile.points if p.quantity in wanted]
    values: dict[str, float] = {}
    # only the signature's own registers, in gap-free requests: a meter that refuses reads
    # across undocumented registers must still be recognised (a few small reads, not the
    # 52–72-register reads of the poll plan)
    for req in plan_reads(points, profile.limits.model_copy(update={"max_gap": 0})):
        regs = await _read(client, req.register_type, req.start, req.count, unit)
        if regs is None:
            return None
        for p in req.points:
            off = p.address - req.start
            try:
                v = decode(
                    regs[off : off + p.width],
                    p.data_type,
                    p.word_order,
                    p.byte_order,
                    p.scale,
                    p.offset,
                )
            except NotANumber:
                return None
            lo, hi = wanted[p.quantity]
            if not lo <= v <= hi:
                return None
            values[p.quantity] = v
    return values


async def _alive(client: Client, unit: int) -> bool:
    """Does anything answer at this id? Any reply counts, even an exception (but 10/11)."""
    for rtype in (RegisterType.HOLDING, RegisterType.INPUT):
        try:
            if rtype is RegisterType.INPUT:
                rr = await client.read_input_registers(0, count=1, device_id=unit)
            else:
                rr = await client.read_holding_registers(0, count=1, device_id=unit)
        except ModbusException:
            if not client.connected:
                await client.connect()
            return False
        if not rr.isError() or getattr(rr, "exception_code", 0) not in ABSENT_CODES | {4}:
            return True
    return False


async def scan(client: Client, units: range, progress: bool = True) -> list[Found]:
    profiles = [load_profile(n) for n in builtin_profiles()]
    profiles = [p for p in profiles if p.signature]
    found: list[Found] = []
    try:
        for i, unit in enumerate(units, 1):
            if progress:
                bar = "#" * (30 * i // len(units))
                sys.stderr.write(
                    f"\rscanning [{bar:<30}] unit {unit:>3} ({i}/{len(units)}), {len(found)} found "
                )
                sys.stderr.flush()
            if not await _alive(client, unit):
                continue
            hit = Found(unit)
            best = 0
            for p in profiles:
                values = await _signature(client, unit, p)
                if values is None:
                    continue
                if len(values) > best:
                    best, hit.profiles, hit.values = len(values), [p.name], values
                elif len(values) == best:
                    hit.profiles.append(p.name)
            found.append(hit)
    except (KeyboardInterrupt, asyncio.CancelledError):
        if progress:
            sys.stderr.write("\ninterrupted: showing what was found so far\n")
    if progress:
        sys.stderr.write("\n")
    return found


def report(found: list[Found], bus_name: str, bus_yaml: str) -> str:
    if not found:
        return (
            "no device answered. Check the wiring (A/B), the baud rate and parity, and "
            "that the devices are powered."
        )
    lines = [f"{'unit':>4}  {'model (profile)':<40} values read"]
    for f in found:
        model = " or ".join(f.profiles) if f.profiles else "answers, model not recognised"
        vals = ", ".join(f"{k}={v:g}" for k, v in f.values.items())
        lines.append(f"{f.unit:>4}  {model:<40} {vals}")
    lines += ["", "# paste into your config:", "buses:", f"  {bus_name}: {bus_yaml}", "devices:"]
    for f in found:
        profile = f.profiles[0] if f.profiles else "PROFILE  # write or choose a profile"
        note = f"  # or {', '.join(f.profiles[1:])}" if len(f.profiles) > 1 else ""
        lines.append(
            f"  device-{f.unit}: {{bus: {bus_name}, unit: {f.unit}, profile: {profile}}}{note}"
        )
    return "\n".join(lines)


def make_client(
    *,
    host: str | None,
    tcp_port: int,
    serial_port: str | None,
    baudrate: int,
    parity: str,
    rtu_over_tcp: bool,
    timeout: float,
) -> Client:
    if serial_port is not None:
        return AsyncModbusSerialClient(
            serial_port,
            baudrate=baudrate,
            parity=parity,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
        )
    assert host is not None
    return AsyncModbusTcpClient(
        host,
        port=tcp_port,
        timeout=timeout,
        retries=0,
        reconnect_delay=0,
        framer=FramerType.RTU if rtu_over_tcp else FramerType.SOCKET,
    )

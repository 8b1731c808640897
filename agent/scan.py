"""``vatio scan``: find the Modbus devices on a serial line or behind a TCP gateway.

It probes unit ids (1–247 by default) with a short timeout, and for each id that answers it
reads the *signature* of every built-in profile (a few values that must fall in a range,
e.g. a frequency of 45–65 Hz) to name the model. The most specific match wins: a matching
model code (a profile's ``identify`` register, e.g. Eastron's 0xFC02) outranks any number of
plausible ranges, then more values beat fewer; equally good matches are all listed. Ctrl-C
stops the scan and still prints what was found. The result is a table and a YAML snippet
ready to paste into the config.

Reads go through the agent's own :class:`~vatio.drivers.modbus.transport.ModbusTransport`, so every
reply is checked against its request (a late reply to an earlier, smaller read is refused by
its register count, never decoded) and the line keeps its inter-frame silence. Each read's
timeout is its time on the wire at the line's baud rate plus a device turnaround
(``--timeout``, 0.2 s by default): an 80-register read at 2400 baud takes ~0.9 s on the wire,
which a fixed 0.2 s would call silence. Units whose replies arrive garbled (bytes, but no
valid frame) are reported as such, with "check baud rate and parity", not as absent.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field

from vatio.common.links import SerialLine, TcpEndpoint
from vatio.drivers.modbus.planner import plan_reads
from vatio.drivers.modbus.profile import Profile, RegisterType, builtin_profiles, load_profile
from vatio.drivers.modbus.register_codec import NotANumber, decode
from vatio.drivers.modbus.transport import ModbusTransport, read_wire_time
from vatio.drivers.reading import (
    BadReply,
    BusUnavailable,
    DeviceExceptionReply,
    DeviceTimeout,
    GarbledReply,
)


class ScanBus:
    """The scanned line: the agent's transport, with a timeout sized for each read."""

    def __init__(self, transport: ModbusTransport, baudrate: int | None, turnaround: float):
        self.transport = transport
        self.baudrate = baudrate  # None: unknown (a Modbus/TCP device): no wire time
        self.turnaround = turnaround
        self.garbled: dict[int, str] = {}  # unit -> what arrived instead of a frame
        self.bad: dict[int, str] = {}  # unit -> why its reply was refused

    def timeout(self, count: int) -> float:
        """The read's time on the wire (request, reply, two t3.5) plus the turnaround."""
        wire = read_wire_time(count, self.baudrate) if self.baudrate else 0.0
        return wire + self.turnaround

    async def read(self, rtype: RegisterType, start: int, count: int, unit: int) -> list[int]:
        try:
            return await self.transport.read(rtype, start, count, unit, timeout=self.timeout(count))
        except GarbledReply as exc:
            self.garbled[unit] = str(exc)
            raise
        except BadReply as exc:
            self.bad[unit] = str(exc)
            raise

    async def open(self) -> None:
        """Connect now, so a port or address that fails is reported before scanning."""
        try:
            await self.transport.connect()
        except BusUnavailable as exc:
            link = self.transport.link
            if isinstance(link, SerialLine):  # the transport named the port and the setting
                raise BusUnavailable(str(exc).split("): ", 1)[-1], exc.hint) from None
            raise BusUnavailable(
                f"cannot open {link.host}:{link.port}",
                "check the address and port, and that the gateway is on the network",
            ) from None

    def close(self) -> None:
        self.transport.close()


Client = ScanBus

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
    """Registers, or None when the unit refuses, stays silent or answers wrongly."""
    try:
        return await client.read(rtype, start, count, unit)
    except (DeviceExceptionReply, DeviceTimeout):  # BadReply and GarbledReply included
        return None
    except BusUnavailable:
        return None  # a dropped TCP link: the next read reconnects


async def _signature(client: Client, unit: int, profile: Profile) -> dict[str, float] | None:
    """The profile's signature values as this unit answers them, if all are in range."""
    wanted = {q: (lo, hi) for q, lo, hi in profile.signature}
    points = list(profile.signature_points)
    values: dict[str, float] = {}
    # only the signature's own registers, in gap-free requests: a meter that refuses reads
    # across undocumented registers must still be recognised (a few small reads, not the
    # 52–72-register reads of the poll plan). Identify registers are read alone, at their
    # own width: Eastron's even-count rule is for its floats, and its 16-bit model code at
    # 0xFC02 is read with a count of 1.
    gap_free = profile.limits.model_copy(update={"max_gap": 0})
    alone = gap_free.model_copy(update={"even_start": False, "even_count": False})
    identify = set(profile.identify)
    requests = [
        *plan_reads([p for p in points if p not in identify], gap_free),
        *plan_reads([p for p in points if p in identify], alone),
    ]
    for req in requests:
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


IDENTITY = "model_code"  # a register whose value names the model, not merely a plausible one


def specificity(values: dict[str, float]) -> int:
    """How strongly a signature match names the model: a model code counts for more than
    any number of ranges (a voltage of 230 V fits every meter; code 0x0020 only an SDM120)."""
    return len(values) + (1000 if IDENTITY in values else 0)


async def _alive(client: Client, unit: int) -> bool:
    """Does anything answer at this id? Any reply counts, even an exception (but 10/11) or
    a wrong reply from this unit; garbled bytes do not (nobody can tell who sent them)."""
    for rtype in (RegisterType.HOLDING, RegisterType.INPUT):
        try:
            await client.read(rtype, 0, 1, unit)
        except DeviceExceptionReply as exc:
            if exc.exception_code not in ABSENT_CODES | {4}:
                return True
            continue
        except GarbledReply:
            return False
        except BadReply:
            return True
        except (DeviceTimeout, BusUnavailable):
            return False
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
                score = specificity(values)
                if score > best:
                    best, hit.profiles, hit.values = score, [p.name], values
                elif score == best:
                    hit.profiles.append(p.name)
            found.append(hit)
    except (KeyboardInterrupt, asyncio.CancelledError):
        if progress:
            sys.stderr.write("\ninterrupted: showing what was found so far\n")
    if progress:
        sys.stderr.write("\n")
    return found


def report(
    found: list[Found],
    bus_name: str,
    bus_yaml: str,
    garbled: dict[int, str] | None = None,
    bad: dict[int, str] | None = None,
) -> str:
    garbled = garbled or {}
    bad = bad or {}
    warning: list[str] = []
    if garbled:
        units = ", ".join(str(u) for u in sorted(garbled)[:10])
        more = f" and {len(garbled) - 10} more" if len(garbled) > 10 else ""
        warning = [
            f"replies are garbled: check baud rate and parity. Bytes came back at unit(s) "
            f"{units}{more} but never a valid Modbus frame "
            f"(e.g. {next(iter(garbled.values()))})."
        ]
    if not found:
        return "\n".join(
            warning
            or [
                "no device answered. Check the wiring (A/B), the baud rate and parity, and "
                "that the devices are powered."
            ]
        )
    lines = [f"{'unit':>4}  {'model (profile)':<40} values read"]
    for f in found:
        model = " or ".join(f.profiles) if f.profiles else "answers, model not recognised"
        if not f.profiles and f.unit in bad:
            model = "answers with bad replies"
            warning.append(f"unit {f.unit}: {bad[f.unit]}")
        vals = ", ".join(
            f"{k}={int(v):#x}" if k == IDENTITY else f"{k}={v:g}" for k, v in f.values.items()
        )
        lines.append(f"{f.unit:>4}  {model:<40} {vals}")
    lines = [*warning, *lines]
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
    baudrate: int | None,
    parity: str,
    rtu_over_tcp: bool,
    timeout: float,
) -> ScanBus:
    """The line to scan. ``timeout`` is the device turnaround added to each read's wire time
    at ``baudrate`` (a serial line's, or a gateway's RS-485 side when given)."""
    link: SerialLine | TcpEndpoint
    if serial_port is not None:
        baudrate = baudrate or 9600
        link = SerialLine(serial_port, baudrate, parity)
    else:
        assert host is not None
        link = TcpEndpoint(host, tcp_port, rtu_framing=rtu_over_tcp)
    transport = ModbusTransport("scan", link, timeout=timeout, retries=0, keep_open_on_silence=True)
    return ScanBus(transport, baudrate, timeout)

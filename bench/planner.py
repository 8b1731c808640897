"""bench/planner: requests per poll for each built-in profile, planned vs one per quantity
and vs the minimum the profile's limits allow.

    python -m bench.planner

The minimum is computed here independently of the planner: a greedy sweep that opens a request
at the lowest unread value and stretches it over the following values while the request stays
within the limits (register count after even alignment, unmapped registers read through,
function code). For runs of sorted values whose sub-runs are as valid as the run (true of
these limits), the greedy count is the least possible (an exchange argument: the greedy
request always ends at or past the end of any other plan's request with the same number).

Also prints the registers read and the wire time per poll at 9600 baud, since on RS-485 the
requests are what costs: two inter-frame gaps and a device turnaround each.

Then the driver's own CPU per poll (``ModbusDevice.poll`` on a transport that answers from
memory at once, so only planning bookkeeping and decoding are timed), for a device that
accepts the profile's plan and for one that refuses reads across gaps once its plan is
learned, and what learning costs (the first poll against such a device).
"""

from __future__ import annotations

import asyncio
import logging
import time

from vatio.drivers.modbus.device import ModbusDevice
from vatio.drivers.modbus.planner import plan_reads
from vatio.drivers.modbus.profile import (
    Limits,
    Point,
    Profile,
    RegisterType,
    builtin_profiles,
    load_profile,
)
from vatio.drivers.modbus.transport import read_wire_time
from vatio.drivers.reading import DeviceExceptionReply


def _fits(run: list[Point], limits: Limits) -> bool:
    """Can one request read every value of ``run`` (sorted by address, one register type)?"""
    start = run[0].address - (run[0].address % 2 if limits.even_start else 0)
    end = run[0].end
    for p in run[1:]:
        if limits.max_gap is not None and p.address - end > limits.max_gap:
            return False
        end = max(end, p.end)
    count = end - start
    count += count % 2 if limits.even_count else 0
    return count <= limits.max_registers and start + count <= 0x10000


def min_requests(points: tuple[Point, ...], limits: Limits) -> int:
    """The fewest requests that read ``points`` within ``limits`` (greedy sweep)."""
    total = 0
    for rtype in RegisterType:
        rest = sorted((p for p in points if p.register_type is rtype),
                      key=lambda p: (p.address, p.end))  # fmt: skip
        while rest:
            n = 1
            while n < len(rest) and _fits(rest[: n + 1], limits):
                n += 1
            rest = rest[n:]
            total += 1
    return total


class MemoryBus:
    """Answers every read from a register image at once; ``strict`` refuses a read that
    touches a register no value occupies (exception 2), as some firmwares do."""

    name = "memory"
    timeout = 1.0

    def __init__(self, profile: Profile, strict: bool) -> None:
        self.mapped = {(p.register_type, a) for p in profile.points
                       for a in range(p.address, p.end)}  # fmt: skip
        self.strict = strict
        self.requests = 0

    async def read(
        self, rtype: RegisterType, start: int, count: int, unit: int, min_gap: float = 0.0
    ) -> list[int]:
        self.requests += 1
        if self.strict and any((rtype, a) not in self.mapped for a in range(start, start + count)):
            raise DeviceExceptionReply("refused", 2)
        return [0x4366] * count


async def poll_cost(name: str, strict: bool, polls: int = 2000) -> tuple[float, float, int]:
    """(µs per poll learned, µs of the first poll, requests per poll learned)."""
    profile = load_profile(name)
    bus = MemoryBus(profile, strict)
    device = ModbusDevice("bench", 1, profile, bus)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    await device.poll()
    first = time.perf_counter() - t0
    bus.requests = 0
    t0 = time.perf_counter()
    for _ in range(polls):
        await device.poll()
    per_poll = (time.perf_counter() - t0) / polls
    return per_poll * 1e6, first * 1e6, bus.requests // polls


def main() -> None:
    logging.getLogger("vatio.drivers.modbus.device").setLevel(logging.ERROR)  # the learning lines
    print(
        f"{'profile':<20} {'naive (1/value)':>15} {'planned':>7} {'minimum':>7} {'ratio':>6} "
        f"{'regs':>5} {'wire@9600 naive':>16} {'planned':>8}"
    )
    above = []
    for name in builtin_profiles():
        profile = load_profile(name)
        plan = plan_reads(profile.points, profile.limits)
        least = min_requests(profile.points, profile.limits)
        if len(plan) != least:
            above.append(name)
        naive = len(profile.points)  # one request per quantity
        naive_wire = sum(read_wire_time(p.width, 9600) for p in profile.points)
        wire = sum(read_wire_time(r.count, 9600) for r in plan)
        regs = sum(r.count for r in plan)
        print(
            f"{name:<20} {naive:>15} {len(plan):>7} {least:>7} {len(plan) / naive:>6.3f} "
            f"{regs:>5} {naive_wire * 1000:>13.0f} ms {wire * 1000:>5.0f} ms"
        )
    print(
        f"{len(builtin_profiles()) - len(above)} of {len(builtin_profiles())} profiles planned "
        f"at their minimum" + (f"; above it: {', '.join(above)}" if above else "")
    )
    print()
    print(f"{'poll() CPU':<20} {'accepts gaps':>12} {'refuses gaps':>12} {'ratio':>6} "
          f"{'requests':>9} {'learning poll':>14}")  # fmt: skip
    for name in ("eastron_sdm630", "eastron_sdm120", "carlo_gavazzi_em24"):
        plain, _, n_plain = asyncio.run(poll_cost(name, strict=False))
        learned, first, n_learned = asyncio.run(poll_cost(name, strict=True))
        print(
            f"{name:<20} {plain:>9.1f} µs {learned:>9.1f} µs {learned / plain:>6.2f} "
            f"{n_plain:>4} → {n_learned:<3} {first:>11.0f} µs"
        )


if __name__ == "__main__":
    main()

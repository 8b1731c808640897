"""Read planner: turn a profile into the fewest Modbus requests the device allows.

Every request costs a round trip (and on RS-485 two inter-frame gaps and a device
turnaround), while an extra register costs only two bytes. So the planner first minimises the
number of requests, then, among plans with that number, the registers read.

Rules it honours, from the profile's ``limits``:

* a value is never split across two requests;
* at most ``max_registers`` per request (125 by the protocol; Eastron allows 80);
* ``even_start`` / ``even_count``: the start address and the count are rounded to even;
* ``max_gap``: at most this many unmapped registers are read through between two values
  (None = any, 0 = only ever read mapped registers);
* input and holding registers are read by different function codes, so never share a request.

Worked example (a made-up map, ``max_registers=10``, no alignment)::

    register:  0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15 ... 24 25
    values:   [a  a][b][   c   ][d  d]          [e  e][f  f]     [g  g]
    requests: |<---- 1: 0..8 (9 regs) ---->|    |<-2: 12..15->|  |<3>|

One request per value would take 7 requests, and 0..25 in one would exceed 10 registers.
``a``..``d`` fit in one request of 9 registers; ``e`` and ``f`` in one of 4; ``g`` is 12
registers past ``e``, so 12..25 (14) is too long and it gets its own: 3 requests, 15
registers. Had ``g`` sat at 20, 12..21 (10 registers) would have taken ``e``..``g`` at once.
The planner is a dynamic programme over the values sorted by address, exact for these
rules; ``tests/unit/test_planner.py`` checks it against a brute-force search on random maps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drivers.modbus.profile import Limits, Point, RegisterType


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read (FC3 or FC4) and the values decoded from its answer."""

    register_type: RegisterType
    start: int
    count: int
    points: tuple[Point, ...]

    @property
    def end(self) -> int:
        return self.start + self.count


def _window(points: Sequence[Point], limits: Limits) -> tuple[int, int] | None:
    """(start, count) of one request covering ``points`` (sorted), or None if not allowed."""
    start = points[0].address
    if limits.even_start:
        start -= start % 2
    end = points[0].end
    for p in points[1:]:
        if limits.max_gap is not None and p.address - end > limits.max_gap:
            return None
        end = max(end, p.end)
    count = end - start
    if limits.even_count and count % 2:
        count += 1
    if count > limits.max_registers or start + count > 0x10000:
        return None
    return start, count


def plan_reads(points: Iterable[Point], limits: Limits) -> list[ReadRequest]:
    """The fewest requests covering all ``points`` (ties broken by fewest registers)."""
    plan: list[ReadRequest] = []
    by_type: dict[RegisterType, list[Point]] = {}
    for p in points:
        by_type.setdefault(p.register_type, []).append(p)
    for register_type in sorted(by_type, key=lambda t: t.value):
        group = sorted(by_type[register_type], key=lambda p: (p.address, p.end))
        plan.extend(_plan_one_type(register_type, group, limits))
    return plan


def _plan_one_type(
    register_type: RegisterType, points: list[Point], limits: Limits
) -> list[ReadRequest]:
    # best[i] = (requests, registers, j) to cover points[:i], the last request being points[j:i].
    # Any plan can be rearranged into requests over runs of consecutive sorted points without
    # more requests or registers, so scanning contiguous runs is exact.
    n = len(points)
    inf = (n + 1, 0, -1)
    best: list[tuple[int, int, int]] = [(0, 0, -1)] + [inf] * n
    for i in range(1, n + 1):
        for j in range(i - 1, -1, -1):
            window = _window(points[j:i], limits)
            if window is None:
                # a longer run (smaller j) only grows the span or keeps the same gap
                break
            requests, registers, _ = best[j]
            candidate = (requests + 1, registers + window[1], j)
            if candidate[:2] < best[i][:2]:
                best[i] = candidate
    if best[n][2] < 0:
        raise ValueError("no valid plan: a value is wider than limits.max_registers")
    plan: list[ReadRequest] = []
    i = n
    while i > 0:
        j = best[i][2]
        run = points[j:i]
        window = _window(run, limits)
        assert window is not None  # the DP only keeps valid runs
        plan.append(ReadRequest(register_type, window[0], window[1], tuple(run)))
        i = j
    plan.reverse()
    return plan

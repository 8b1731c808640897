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

from vatio.drivers.modbus.profile import Limits, Point, RegisterType


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


# --- Re-planning after a refusal --------------------------------------------------------
#
# ``max_gap: null`` lets the planner read through registers no value needs, and most meters
# answer such reads. Some firmwares (and servers such as libmodbus with a sparse map) answer
# "illegal data address" to any request that touches an undocumented register, and whether a
# device does cannot be told from a data sheet. So the device (drivers/modbus/device.py)
# splits a refused request at its gaps, a bisection that ends at the gap-free plan: each
# piece then reads only runs of back-to-back values (plus the alignment the limits force).
# Exception 3 (illegal data value) is some firmwares' answer to a count they dislike: then
# the bisection goes on between back-to-back values too, down to single values.


def _cuts(points: Sequence[Point], at_values: bool = False) -> list[int]:
    """Indices ``i`` of ``points`` (sorted) where a request may be cut before ``points[i]``:
    where a gap starts (the registers between the end of everything before it and its
    address serve no value), or, with ``at_values``, at any boundary between values."""
    cuts = []
    end = points[0].end
    for i in range(1, len(points)):
        p = points[i]
        if p.address > end or (at_values and p.address == end):
            cuts.append(i)
        end = max(end, p.end)
    return cuts


def is_gap_free(req: ReadRequest) -> bool:
    """True when no register between the request's first and last value is unmapped: a
    refusal of it cannot be avoided by splitting at gaps."""
    points = sorted(req.points, key=lambda p: (p.address, p.end))
    return not _cuts(points)


def split_request(
    req: ReadRequest, limits: Limits, at_values: bool = False
) -> list[ReadRequest] | None:
    """Two requests covering ``req``'s values, cut at the gap nearest the middle of its
    registers (a bisection: a hole that is refused is found in log2(gaps) steps), or None
    when ``req`` is gap-free. ``at_values`` also cuts between back-to-back values (for a
    device that refuses a count, not an address), so only a single value (or values that
    overlap) is left whole. Each piece honours ``limits`` (a subset of a valid request
    always fits; ``max_gap`` does not apply, the pieces only shrink the gaps)."""
    points = sorted(req.points, key=lambda p: (p.address, p.end))
    cuts = _cuts(points, at_values)
    if not cuts:
        return None
    middle = req.start + req.count / 2
    cut = min(cuts, key=lambda i: abs(points[i].address - middle))
    free = limits.model_copy(update={"max_gap": None})
    pieces: list[ReadRequest] = []
    for part in (points[:cut], points[cut:]):
        window = _window(part, free)
        if window is None:  # cannot happen for a subset of a valid request; stay correct
            pieces.extend(_plan_one_type(req.register_type, list(part), free))
        else:
            pieces.append(ReadRequest(req.register_type, window[0], window[1], tuple(part)))
    return pieces


def gap_free_pieces(req: ReadRequest, limits: Limits) -> list[ReadRequest]:
    """Where repeated splitting of ``req`` ends (if every piece with a gap is refused)."""
    pieces = split_request(req, limits)
    if pieces is None:
        return [req]
    return [leaf for piece in pieces for leaf in gap_free_pieces(piece, limits)]


def request_fits(req: ReadRequest, limits: Limits) -> bool:
    """Does ``req`` (e.g. one loaded from a stored plan) honour ``limits`` and hold its
    values whole?"""
    if not 1 <= req.count <= limits.max_registers or req.end > 0x10000:
        return False
    if (limits.even_start and req.start % 2) or (limits.even_count and req.count % 2):
        return False
    return all(
        p.register_type is req.register_type and req.start <= p.address and p.end <= req.end
        for p in req.points
    )

"""A device's read plan as it learns what the device refuses, kept across restarts.

The profile's plan (drivers/modbus/planner.py) may read through registers no value needs.
When the device answers such a request with exception 2 (illegal data address) or 3
(illegal data value, which some firmwares use for a count they dislike), the request is
split at its gaps (``split_request``, a bisection) and the pieces are tried, in the same
poll while the bus time allows, else from the next one. It ends at the gap-free plan (for
exception 3, which may be about the count, at single values). A request there that is still
refused is read every poll (a device may start answering, e.g. after a firmware update or a
replacement), its values are null with the reason, and the device reports itself degraded.
If no piece of a split request answers, splitting gained nothing, so the request is read as
planned again (one refused request per poll, not many).

One log line per adjustment (per device and poll in which learning settled), never per
poll. The learned plan is written to a :class:`~vatio.drivers.statefile.StateFile`, keyed by a hash
of the profile's points and limits and the unit id: a profile change starts from the
profile's plan again. Refused requests loaded from the file are explored once more after
each start, so a device that refused everything while booting is not split wrongly for good.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from vatio.drivers.modbus.planner import (
    ReadRequest,
    is_gap_free,
    plan_reads,
    request_fits,
    split_request,
)
from vatio.drivers.modbus.profile import Point, Profile, RegisterType
from vatio.drivers.modbus.register_codec import Decoder, run_decoder
from vatio.drivers.modbus.transport import EXCEPTION_NAMES
from vatio.drivers.statefile import StateFile

log = logging.getLogger("vatio.drivers.modbus.device")

REPLAN_CODES = frozenset({2, 3})  # illegal data address, illegal data value
FORMAT = 1


@dataclass(frozen=True, slots=True)
class Run:
    """Back-to-back values of one type in a request's answer, decoded in one call."""

    offset: int  # of the first value, in registers from the request's start
    points: tuple[Point, ...]
    width: int  # registers
    decode: Decoder  # their registers → their raw values

    @classmethod
    def of(cls, offset: int, points: tuple[Point, ...]) -> Run:
        first = points[0]
        decode = run_decoder(first.data_type, len(points), first.word_order, first.byte_order)
        return cls(offset, points, sum(p.width for p in points), decode)


def runs_of(req: ReadRequest) -> list[Run]:
    runs: list[Run] = []
    current: list[Point] = []
    for p in sorted(req.points, key=lambda p: p.address):
        prev = current[-1] if current else None
        if prev is not None and not (
            p.address == prev.end
            and (p.data_type, p.word_order, p.byte_order)
            == (prev.data_type, prev.word_order, prev.byte_order)
        ):
            runs.append(Run.of(current[0].address - req.start, tuple(current)))
            current = []
        current.append(p)
    if current:
        runs.append(Run.of(current[0].address - req.start, tuple(current)))
    return runs


def profile_key(profile: Profile, unit: int) -> str:
    """What a learned plan is valid for: the profile's points and limits, and the unit."""
    body = json.dumps(
        {
            "points": [p.model_dump(mode="json") for p in profile.points],
            "limits": profile.limits.model_dump(mode="json"),
            "unit": unit,
        },
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def span(req: ReadRequest) -> str:
    return f"{req.start}..{req.end - 1}"


def _why(code: int) -> str:
    return f"exception {code} ({EXCEPTION_NAMES.get(code, 'unknown exception')})"


class ReadPlan:
    """The requests a device is polled with, and what it learned about refusals."""

    def __init__(self, device: str, profile: Profile, unit: int) -> None:
        self.device = device
        self.profile = profile
        self.unit = unit
        self.profile_plan = plan_reads(profile.points, profile.limits)
        self.requests: list[ReadRequest] = list(self.profile_plan)
        self.runs = [runs_of(r) for r in self.requests]
        self.store: StateFile | None = None
        self.learned_at: float | None = None
        self.replans = 0  # requests split
        self.refusals = 0  # requests answered with an exception (any code), every poll
        self.degraded: str | None = None  # why the device is not fully read, or None
        self.untried: set[ReadRequest] = set()  # pieces not read yet
        self.final: dict[ReadRequest, int] = {}  # refused and not to be split again: code
        self._root: dict[ReadRequest, ReadRequest] = {}  # piece -> request it was split from
        self._split_by: dict[ReadRequest, int] = {}  # root -> code that made it split
        self._exploring: dict[ReadRequest, int] = {}  # roots being learned -> code
        self._stored: list[dict[str, Any]] | None = None

    @property
    def learning(self) -> bool:
        """Some split request still has pieces not tried."""
        return bool(self._exploring)

    # --- the poll's slow paths ---------------------------------------------------------

    def refused(self, index: int, code: int) -> int:
        """The request at ``index`` was refused with ``code``: how many pieces now stand in
        its place (0 if it is not split)."""
        req = self.requests[index]
        self.refusals += 1
        if code not in REPLAN_CODES or req in self.final:
            return 0  # busy, device failure …: says nothing about the plan (still untried)
        self.untried.discard(req)
        root = self._root.get(req, req)
        self._exploring.setdefault(root, code)
        # exception 3 may be about the count, not the addresses: cut between values too.
        # Exception 2 on a request with no gap left: one of its values is not there (an
        # SDM120 variant without frequency_hz): cut between values, or the rest of the run,
        # energy included, would never be read again
        pieces = split_request(req, self.profile.limits, at_values=code == 3)
        if pieces is None and code == 2:
            pieces = split_request(req, self.profile.limits, at_values=True)
        if pieces is None:  # nothing left to leave out (or a single value)
            self.final[req] = code
            return 0
        self.replans += 1
        self._split_by.setdefault(root, code)
        self.requests[index : index + 1] = pieces
        self.runs[index : index + 1] = [runs_of(p) for p in pieces]
        self._root.pop(req, None)
        for p in pieces:
            self._root[p] = root
            self.untried.add(p)
        return len(pieces)

    def accepted(self, req: ReadRequest) -> None:
        """``req`` was answered (called only while something is untried or refused)."""
        self.untried.discard(req)
        if self.final.pop(req, None) is not None:
            log.info(
                "device '%s' unit %d answers %s registers %s again",
                self.device, self.unit, req.register_type.value, span(req),
            )  # fmt: skip
            self.degraded = self._degraded_reason()
            self._save()

    def settle(self) -> None:
        """After a poll: log and store what was learned about requests no longer untried."""
        settled: list[tuple[ReadRequest, list[ReadRequest], int]] = []
        for root, code in list(self._exploring.items()):
            pieces = [r for r in self.requests if self._root.get(r, r) == root]
            if any(p in self.untried for p in pieces):
                continue  # still learning: the next poll tries the rest
            del self._exploring[root]
            if len(pieces) > 1 and all(p in self.final for p in pieces):
                # nothing of it answers (a wrong profile, a device that refuses all): read
                # it as planned, one refused request per poll
                at = self.requests.index(pieces[0])
                self.requests[at : at + len(pieces)] = [root]
                self.runs[at : at + len(pieces)] = [runs_of(root)]
                for p in pieces:
                    del self.final[p]
                    self._root.pop(p, None)
                self._split_by.pop(root, None)
                self.final[root] = code
                pieces = [root]
            settled.append((root, pieces, code))
        if not settled:
            return
        self.learned_at = time.time()
        self.degraded = self._degraded_reason()
        parts = []
        for root, pieces, code in settled:
            what = f"{root.register_type.value} registers {span(root)} refused with {_why(code)}"
            if pieces == [root]:
                parts.append(f"{what}, read as planned (nothing to leave out)")
            else:
                parts.append(f"{what}, now read as {', '.join(span(p) for p in pieces)}")
        refused_values = sum(len(r.points) for r in self.final)
        log.warning(
            "device '%s' unit %d: %s; %d → %d request(s) per poll; %s",
            self.device, self.unit, "; ".join(parts), len(self.profile_plan),
            len(self.requests),
            f"still refused: {self.degraded}" if refused_values
            else f"all {len(self.profile.points)} values read",
        )  # fmt: skip
        self._save()

    def _degraded_reason(self) -> str | None:
        names = [p.quantity for r in self.requests if r in self.final for p in r.points]
        if not names:
            return None
        codes = sorted({self.final[r] for r in self.final})
        return (
            f"{len(names)} of {len(self.profile.points)} values refused by the device "
            f"({', '.join(_why(c) for c in codes)}): {', '.join(names)}"
        )

    # --- persistence ---------------------------------------------------------------------

    def _entries(self) -> list[dict[str, Any]]:
        out = []
        for r in self.requests:
            root = self._root.get(r)
            out.append({
                "register_type": r.register_type.value, "start": r.start, "count": r.count,
                "from": [root.start, root.count] if root is not None else None,
                "split_by": self._split_by.get(root, 0) if root is not None else 0,
                "refused": self.final.get(r, 0),
            })  # fmt: skip
        return out

    def _save(self) -> None:
        entries = self._entries()
        if self.store is None or entries == self._stored:
            return
        data = {
            "format": FORMAT,
            "key": profile_key(self.profile, self.unit),
            "device": self.device,
            "model": self.profile.model,
            "learned": self.learned_at,
            "plan": entries,
        }
        if self.store.save(data):
            self._stored = entries

    def use_store(self, store: StateFile) -> None:
        """Load the plan learned before (if it still fits the profile); save to ``store``."""
        self.store = store
        data = store.load()
        if data is None:
            return
        if data.get("format") != FORMAT or data.get("key") != profile_key(self.profile, self.unit):
            log.info(
                "device '%s': the profile or unit changed since its read plan was learned: "
                "starting from the profile's plan",
                self.device,
            )
            return
        try:
            loaded = self._from_entries(data["plan"])
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("device '%s': stored read plan %s ignored (%s)", self.device,
                        store.path, exc)  # fmt: skip
            return
        self.requests, roots, refused = loaded
        self.runs = [runs_of(r) for r in self.requests]
        self._root, self._split_by = roots
        # a refused gap-free request stays refused (still read every poll); one with gaps
        # (no piece of it answered) is explored again after each start, so a device that
        # refused everything while it booted is not taken at its word for good
        self.final = {r: code for r, code in refused.items() if is_gap_free(r)}
        self.degraded = self._degraded_reason()
        learned = data.get("learned")
        self.learned_at = float(learned) if isinstance(learned, int | float) else None
        self._stored = self._entries()
        if self.requests != self.profile_plan or refused:
            log.info(
                "device '%s' unit %d: using the read plan learned before (%s): %d → %d "
                "request(s) per poll",
                self.device, self.unit, store.path, len(self.profile_plan), len(self.requests),
            )  # fmt: skip

    def _from_entries(
        self, entries: list[dict[str, Any]]
    ) -> tuple[
        list[ReadRequest],
        tuple[dict[ReadRequest, ReadRequest], dict[ReadRequest, int]],
        dict[ReadRequest, int],
    ]:
        left = list(self.profile.points)
        requests: list[ReadRequest] = []
        origin: dict[ReadRequest, tuple[int, int, int]] = {}
        refused: dict[ReadRequest, int] = {}
        for e in entries:
            rtype = RegisterType(e["register_type"])
            start, count = int(e["start"]), int(e["count"])
            inside = tuple(
                p for p in left
                if p.register_type is rtype and start <= p.address and p.end <= start + count
            )  # fmt: skip
            req = ReadRequest(rtype, start, count, inside)
            if not inside or not request_fits(req, self.profile.limits):
                raise ValueError(f"request {start}+{count} does not fit the profile")
            left = [p for p in left if p not in inside]
            requests.append(req)
            if e.get("from"):
                origin[req] = (int(e["from"][0]), int(e["from"][1]), int(e.get("split_by", 0)))
            if e.get("refused"):
                refused[req] = int(e["refused"])
        if left:
            raise ValueError(f"{len(left)} value(s) not in any request")
        roots: dict[ReadRequest, ReadRequest] = {}
        split_by: dict[ReadRequest, int] = {}
        by_span: dict[tuple[int, int], list[ReadRequest]] = {}
        for req, (s, c, _) in origin.items():
            by_span.setdefault((s, c), []).append(req)
        for (s, c), pieces in by_span.items():
            root = ReadRequest(
                pieces[0].register_type, s, c, tuple(p for r in pieces for p in r.points)
            )
            for r in pieces:
                roots[r] = root
            split_by[root] = origin[pieces[0]][2]
        return requests, (roots, split_by), refused

    # --- what `vatio read` and `vatio check` show -----------------------------------------

    def lines(self) -> list[str]:
        """The adjusted plan in a few lines (none when it is the profile's plan)."""
        if self.requests == self.profile_plan and not self.final:
            return []
        when = (
            time.strftime(", learned %Y-%m-%d %H:%M UTC", time.gmtime(self.learned_at))
            if self.learned_at
            else ""
        )
        out = [
            f"read plan adjusted to the device{when}: {len(self.requests)} request(s) per "
            f"poll (the profile's plan has {len(self.profile_plan)})"
        ]
        seen: set[ReadRequest] = set()
        for r in self.requests:
            root = self._root.get(r)
            if root is not None and root not in seen:
                seen.add(root)
                pieces = [p for p in self.requests if self._root.get(p) == root]
                code = self._split_by.get(root, 2)
                out.append(
                    f"  {root.register_type.value} {span(root)} split into "
                    f"{', '.join(span(p) for p in pieces)}: the device answered {_why(code)} "
                    "to a read across registers no value needs"
                )
            if r in self.final:
                names = ", ".join(p.quantity for p in r.points)
                gap = "" if is_gap_free(r) else " (no piece of it answers either)"
                out.append(
                    f"  {r.register_type.value} {span(r)} refused with {_why(self.final[r])}"
                    f"{gap}: {names} (null every poll)"
                )
        return out

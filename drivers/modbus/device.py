"""A Modbus device: a profile's read plan executed on a bus, decoded into readings.

The plan adapts to the device: a request refused with exception 2 or 3 across registers no
value needs is split (drivers/modbus/replan.py), and what was learned is kept in the state
file the agent hands over through :meth:`ModbusDevice.use_state`.
"""

from __future__ import annotations

import time

from vatio.common import clock
from vatio.drivers.modbus.planner import ReadRequest
from vatio.drivers.modbus.profile import Point, Profile
from vatio.drivers.modbus.register_codec import NotANumber, scaled
from vatio.drivers.modbus.replan import ReadPlan
from vatio.drivers.modbus.transport import ModbusTransport
from vatio.drivers.reading import BusUnavailable, DeviceExceptionReply, DeviceTimeout, PollResult
from vatio.drivers.statefile import StateFile


class ModbusDevice:
    """Polls one unit id on one bus with the fewest requests its profile (and the device)
    allows."""

    def __init__(self, name: str, unit: int, profile: Profile, transport: ModbusTransport) -> None:
        self.name = name
        self.unit = unit
        self.profile = profile
        self.transport = transport
        self.read_plan = ReadPlan(name, profile, unit)
        self._min_gap = profile.limits.min_gap_ms / 1000.0

    @property
    def plan(self) -> list[ReadRequest]:
        return self.read_plan.requests

    @property
    def quantities(self) -> list[str]:
        return [p.quantity for p in self.profile.points]

    def use_state(self, store: StateFile) -> None:
        """Where to keep what this device taught the driver (the agent calls it once)."""
        self.read_plan.use_store(store)

    def describe(self) -> str:
        return (
            f"{self.profile.manufacturer} {self.profile.model} unit {self.unit} on "
            f"'{self.transport.name}': {len(self.profile.points)} values in "
            f"{len(self.plan)} request(s) per poll"
        )

    def counters(self) -> dict[str, tuple[str, str, float]]:
        """For the agent's /metrics (see drivers/plugin.py)."""
        plan = self.read_plan
        refused = sum(len(r.points) for r in plan.final)
        return {
            "read_plan_splits_total": (
                "counter", "Requests split after the device refused them.", plan.replans),
            "exception_replies_total": (
                "counter", "Requests the device answered with a Modbus exception.",
                plan.refusals),
            "values_refused": (
                "gauge", "Values the device keeps refusing (null every poll).", refused),
        }  # fmt: skip

    def plan_lines(self) -> list[str]:
        """How the plan differs from the profile's, and why (empty when it does not)."""
        return self.read_plan.lines()

    async def poll(self) -> PollResult:
        ts = clock.now()
        values: dict[str, float | None] = {}
        quality: dict[str, str] = {}
        refused: DeviceExceptionReply | None = None  # last exception reply, if any
        read_any = False
        plan = self.read_plan
        requests, runs = plan.requests, plan.runs  # edited in place when a request is split
        replan_until = 0.0
        index = 0
        while index < len(requests):
            req = requests[index]
            try:
                regs = await self.transport.read(
                    req.register_type, req.start, req.count, self.unit, self._min_gap
                )
            except DeviceExceptionReply as exc:
                # the device is alive; only these values are unreadable as asked
                refused = exc
                reason = f"exception {exc.exception_code}"
                pieces = plan.refused(index, exc.exception_code)
                if pieces:
                    # try the pieces in this poll while the bus time allows (a timeout's
                    # worth: at most half the interval), else from the next poll
                    now = time.monotonic()
                    replan_until = replan_until or now + self.transport.timeout
                    if now < replan_until:
                        continue
                    for piece in requests[index : index + pieces]:
                        self._mark(piece.points, values, quality, reason)
                    index += pieces
                    continue
                self._mark(req.points, values, quality, reason)
                index += 1
                continue
            except (DeviceTimeout, BusUnavailable) as exc:
                if not (read_any or refused):
                    raise
                # a partial poll: keep what arrived, mark the rest
                for rest in requests[index:]:
                    self._mark(rest.points, values, quality, exc.code)
                break
            read_any = True
            if plan.untried or plan.final:
                plan.accepted(req)
            for run in runs[index]:
                raws = run.decode(regs[run.offset : run.offset + run.width])
                for p, raw in zip(run.points, raws, strict=True):
                    try:
                        values[p.quantity] = scaled(raw, p.scale, p.offset)
                    except NotANumber:
                        values[p.quantity] = None
                        quality[p.quantity] = "nan"
            index += 1
        if refused is not None or plan.learning:
            plan.settle()
        if refused is not None and not read_any:
            raise refused  # every request was refused: the poll failed as a whole
        return PollResult(self.name, ts, values, quality, degraded=plan.degraded)

    @staticmethod
    def _mark(
        points: tuple[Point, ...],
        values: dict[str, float | None],
        quality: dict[str, str],
        reason: str,
    ) -> None:
        for p in points:
            values[p.quantity] = None
            quality[p.quantity] = reason

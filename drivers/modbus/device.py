"""A Modbus device: a profile's read plan executed on a bus, decoded into readings."""

from __future__ import annotations

import time
from dataclasses import dataclass

from drivers.modbus.planner import ReadRequest, plan_reads
from drivers.modbus.profile import Point, Profile
from drivers.modbus.register_codec import NotANumber, decode
from drivers.modbus.transport import ModbusTransport
from drivers.reading import BusUnavailable, DeviceExceptionReply, DeviceTimeout, PollResult


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where one value sits in a request's answer, with its decoding resolved."""

    point: Point
    offset: int


class ModbusDevice:
    """Polls one unit id on one bus with the fewest requests its profile allows."""

    def __init__(self, name: str, unit: int, profile: Profile, transport: ModbusTransport) -> None:
        self.name = name
        self.unit = unit
        self.profile = profile
        self.transport = transport
        self.plan: list[ReadRequest] = plan_reads(profile.points, profile.limits)
        self._slots = [[_Slot(p, p.address - req.start) for p in req.points] for req in self.plan]
        self._min_gap = profile.limits.min_gap_ms / 1000.0

    @property
    def quantities(self) -> list[str]:
        return [p.quantity for p in self.profile.points]

    def describe(self) -> str:
        return (
            f"{self.profile.manufacturer} {self.profile.model} unit {self.unit} on "
            f"'{self.transport.name}': {len(self.profile.points)} values in "
            f"{len(self.plan)} request(s) per poll"
        )

    async def poll(self) -> PollResult:
        ts = time.time()
        values: dict[str, float | None] = {}
        quality: dict[str, str] = {}
        refused: DeviceExceptionReply | None = None  # last exception reply, if any
        read_any = False
        for index, (req, slots) in enumerate(zip(self.plan, self._slots, strict=True)):
            try:
                regs = await self.transport.read(
                    req.register_type, req.start, req.count, self.unit, self._min_gap
                )
            except DeviceExceptionReply as exc:
                # the device is alive; only these values are unreadable
                refused = exc
                for s in slots:
                    values[s.point.quantity] = None
                    quality[s.point.quantity] = f"exception {exc.exception_code}"
                continue
            except (DeviceTimeout, BusUnavailable) as exc:
                if not (read_any or refused):
                    raise
                # a partial poll: keep what arrived, mark the rest
                for rest in self._slots[index:]:
                    for s in rest:
                        values[s.point.quantity] = None
                        quality[s.point.quantity] = exc.code
                break
            read_any = True
            for s in slots:
                p = s.point
                try:
                    values[p.quantity] = decode(
                        regs[s.offset : s.offset + p.width],
                        p.data_type,
                        p.word_order,
                        p.byte_order,
                        p.scale,
                        p.offset,
                    )
                except NotANumber:
                    values[p.quantity] = None
                    quality[p.quantity] = "nan"
        if refused is not None and not read_any:
            raise refused  # every request was refused: the poll failed as a whole
        return PollResult(self.name, ts, values, quality)

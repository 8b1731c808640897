"""A Modbus device: a profile's read plan executed on a bus, decoded into readings."""

from __future__ import annotations

from dataclasses import dataclass

from drivers import clock
from drivers.modbus.planner import ReadRequest, plan_reads
from drivers.modbus.profile import Point, Profile
from drivers.modbus.register_codec import NotANumber, decode_array, scaled
from drivers.modbus.transport import ModbusTransport
from drivers.reading import BusUnavailable, DeviceExceptionReply, DeviceTimeout, PollResult


@dataclass(frozen=True, slots=True)
class _Run:
    """Back-to-back values of one type in a request's answer, decoded in one call."""

    offset: int  # of the first value, in registers from the request's start
    points: tuple[Point, ...]

    @property
    def width(self) -> int:
        return sum(p.width for p in self.points)


def _runs(req: ReadRequest) -> list[_Run]:
    runs: list[_Run] = []
    current: list[Point] = []
    for p in sorted(req.points, key=lambda p: p.address):
        prev = current[-1] if current else None
        if prev is not None and not (
            p.address == prev.end
            and (p.data_type, p.word_order, p.byte_order)
            == (prev.data_type, prev.word_order, prev.byte_order)
        ):
            runs.append(_Run(current[0].address - req.start, tuple(current)))
            current = []
        current.append(p)
    if current:
        runs.append(_Run(current[0].address - req.start, tuple(current)))
    return runs


class ModbusDevice:
    """Polls one unit id on one bus with the fewest requests its profile allows."""

    def __init__(self, name: str, unit: int, profile: Profile, transport: ModbusTransport) -> None:
        self.name = name
        self.unit = unit
        self.profile = profile
        self.transport = transport
        self.plan: list[ReadRequest] = plan_reads(profile.points, profile.limits)
        self._runs = [_runs(req) for req in self.plan]
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
        ts = clock.now()
        values: dict[str, float | None] = {}
        quality: dict[str, str] = {}
        refused: DeviceExceptionReply | None = None  # last exception reply, if any
        read_any = False
        for index, req in enumerate(self.plan):
            try:
                regs = await self.transport.read(
                    req.register_type, req.start, req.count, self.unit, self._min_gap
                )
            except DeviceExceptionReply as exc:
                # the device is alive; only these values are unreadable
                refused = exc
                self._mark(req.points, values, quality, f"exception {exc.exception_code}")
                continue
            except (DeviceTimeout, BusUnavailable) as exc:
                if not (read_any or refused):
                    raise
                # a partial poll: keep what arrived, mark the rest
                for rest in self.plan[index:]:
                    self._mark(rest.points, values, quality, exc.code)
                break
            read_any = True
            for run in self._runs[index]:
                first = run.points[0]
                raws = decode_array(
                    regs[run.offset : run.offset + run.width],
                    first.data_type, first.word_order, first.byte_order,
                )  # fmt: skip
                for p, raw in zip(run.points, raws, strict=True):
                    try:
                        values[p.quantity] = scaled(raw, p.scale, p.offset)
                    except NotANumber:
                        values[p.quantity] = None
                        quality[p.quantity] = "nan"
        if refused is not None and not read_any:
            raise refused  # every request was refused: the poll failed as a whole
        return PollResult(self.name, ts, values, quality)

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

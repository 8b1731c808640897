"""The ``sunspec`` driver: any SunSpec inverter or meter, with no profile to write.

devices:
  tejado: {bus: inversor, driver: sunspec, unit: 1}        # base found: 40000, 0 or 50000

On the first poll (and again after a poll that read nothing, i.e. when the device comes
back, or when a read suggests its map changed) the driver discovers the device
(:mod:`vatio.drivers.sunspec.chain`) and plans the reads of every mapped model with the
read planner: each model's values, its scale factors and its ID register (read back every
poll: a model id that moved means a new firmware or device, and the chain is walked again),
merged into as few requests of at most ``max_registers`` as the planner finds. Scale factors
are read in the same request set as the values they scale, so a value is never scaled by
a factor from another poll.

Quality reasons (``PollResult.quality``): ``not_implemented`` (a SunSpec sentinel),
``bad_scale_factor``, ``sunspec_bad_model`` (the model is on the device but its length is
wrong, so it is not read), ``sunspec_changed`` (its ID register no longer holds its id),
``exception N``/``timeout`` (as the modbus driver). A chain with problems makes the poll
``degraded`` with the located messages (unit id, register address, model id).
"""

from __future__ import annotations

import logging
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from vatio.common import clock
from vatio.drivers.modbus.planner import ReadRequest, plan_reads
from vatio.drivers.modbus.plugin import unit_in_range
from vatio.drivers.modbus.profile import Limits, Point, RegisterType
from vatio.drivers.modbus.register_codec import DataType
from vatio.drivers.modbus.transport import ModbusTransport
from vatio.drivers.reading import (
    BusUnavailable,
    DeviceExceptionReply,
    DeviceTimeout,
    PollResult,
)
from vatio.drivers.sunspec.chain import Chain, ModelBlock, discover
from vatio.drivers.sunspec.models import MODELS, SunSpecPoint
from vatio.drivers.sunspec.values import decode_point

log = logging.getLogger(__name__)

BAD_MODEL = "sunspec_bad_model"
CHANGED = "sunspec_changed"


class SunSpecOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: int
    # where the "SunS" marker is; None: try 40000, 0 and 50000
    base: Annotated[int, Field(ge=0, le=65533)] | None = None
    max_registers: int = Field(125, ge=8, le=125)  # per read; some gateways want fewer

    @field_validator("unit")
    @classmethod
    def _unit_range(cls, unit: int, info: ValidationInfo) -> int:
        return unit_in_range(unit, info)  # the modbus driver's rule and words


class _Planned:
    """What one discovery turned into: requests, and which point each register serves."""

    def __init__(self, chain: Chain, max_registers: int) -> None:
        self.chain = chain
        self.points: list[tuple[ModelBlock, SunSpecPoint]] = []
        self.bad: list[str] = []  # quantities of models that are there but cannot be read
        self.ignored_blocks = 0
        provided: set[str] = set()
        registers: dict[int, int] = {}  # address → width of what must be read there
        for block in chain.usable:
            model = MODELS[block.id]
            points, left_out = model.expand(block.length)
            self.ignored_blocks += left_out
            if not points:
                continue  # the common model: read once, at discovery
            registers[block.address] = 1  # its ID: checked every poll
            for p in points:
                if p.quantity in provided:  # a second model with the same value: first wins
                    continue
                provided.add(p.quantity)
                self.points.append((block, p))
                registers[block.address + p.offset] = p.type.width
                if p.sf is not None:
                    registers[block.address + p.sf] = 1
        for block in chain.skipped:
            for p in MODELS[block.id].points:  # (a repeating model's count is unknown)
                if p.quantity not in provided:
                    provided.add(p.quantity)
                    self.bad.append(p.quantity)
        self.quantities = [p.quantity for _, p in self.points] + self.bad
        self.blocks = sorted({b for b, _ in self.points}, key=lambda b: b.address)
        plan_points = [
            Point(
                quantity=str(address), address=address, register_type=RegisterType.HOLDING,
                data_type=DataType.U16 if width == 1 else DataType.U32,
                word_order="big", byte_order="big",
            )
            for address, width in sorted(registers.items())
        ]  # fmt: skip
        limits = Limits(max_registers=max_registers)
        self.requests: list[ReadRequest] = plan_reads(plan_points, limits) if plan_points else []


class SunSpecDevice:
    """One SunSpec unit on a Modbus bus."""

    def __init__(
        self, name: str, unit: int, transport: ModbusTransport, options: SunSpecOptions
    ) -> None:
        self.name = name
        self.unit = unit
        self.transport = transport
        self.options = options
        self.where = f"unit {unit} on '{transport.name}'"
        self._planned: _Planned | None = None
        self.discoveries = 0  # chain walks done, for /metrics and tests

    @property
    def chain(self) -> Chain | None:
        return self._planned.chain if self._planned else None

    @property
    def quantities(self) -> list[str]:
        return self._planned.quantities if self._planned else []

    def describe(self) -> str:
        if self._planned is None:
            return f"SunSpec device {self.where} (models found on first poll)"
        p = self._planned
        return (
            f"SunSpec {p.chain.summary()} {self.where}: {len(p.points)} values in "
            f"{len(p.requests)} request(s) per poll"
        )

    def info(self) -> dict[str, str]:
        """What the device says it is (common model), for the device's status."""
        if self._planned is None:
            return {}
        chain = self._planned.chain
        return {**chain.info, "sunspec_models": chain.summary()}

    def plan_lines(self) -> list[str]:
        """For `vatio read`: the models found and what is wrong with the chain."""
        if self._planned is None:
            return []
        lines = [f"SunSpec at {self._planned.chain.base}: {self._planned.chain.summary()}"]
        return lines + [f"PROBLEM {p}" for p in self._planned.chain.problems]

    def counters(self) -> dict[str, tuple[str, str, float]]:
        return {
            "sunspec_discoveries_total": (
                "counter", "SunSpec model chain walks (first poll, device back, map changed).",
                self.discoveries),
        }  # fmt: skip

    async def _read(self, start: int, count: int) -> list[int]:
        return await self.transport.read(RegisterType.HOLDING, start, count, self.unit)

    async def _discover(self) -> _Planned:
        self.discoveries += 1
        chain = await discover(self._read, self.where, self.options.base)
        planned = _Planned(chain, self.options.max_registers)
        for problem in chain.problems:
            log.warning("device '%s': %s", self.name, problem)
        if planned.ignored_blocks:
            chain.problems.append(
                f"{self.where}: {planned.ignored_blocks} MPPT input(s) beyond the first "
                "8 are not published"
            )
        return planned

    async def poll(self) -> PollResult:
        ts = clock.now()
        planned = self._planned
        if planned is None:
            planned = self._planned = await self._discover()
        values: dict[str, float | None] = {}
        quality: dict[str, str] = {}
        words: dict[int, int] = {}  # address → register, for what this poll read
        failed: dict[int, str] = {}  # address → why it was not read
        read_any = False
        rediscover = False
        for index, req in enumerate(planned.requests):
            try:
                regs = await self._read(req.start, req.count)
            except DeviceExceptionReply as exc:
                # these addresses were in the chain a moment ago: the map may have moved
                rediscover = rediscover or exc.exception_code == 2
                failed.update(
                    dict.fromkeys(range(req.start, req.end), f"exception {exc.exception_code}")
                )
                continue
            except (DeviceTimeout, BusUnavailable) as exc:
                if not read_any:
                    # nothing read: the device is gone; walk the chain again when it is back
                    self._planned = None
                    raise
                for rest in planned.requests[index:]:
                    failed.update(dict.fromkeys(range(rest.start, rest.end), exc.code))
                break
            read_any = True
            words.update(zip(range(req.start, req.end), regs, strict=True))
        if failed and not read_any:
            self._planned = None
            raise DeviceExceptionReply(
                f"{self.where}: every SunSpec read was refused ({next(iter(failed.values()))})",
                2,
                "the device's map changed or it refuses reads: the chain is walked again on "
                "the next poll",
            )
        moved: set[int] = set()
        for block in planned.blocks:
            got = words.get(block.address)
            if got is not None and got != block.id:
                moved.add(block.address)
                rediscover = True
                log.warning(
                    "device '%s': %s, register %d: model %d is gone (the register holds %d): "
                    "the SunSpec chain is walked again", self.name, self.where, block.address,
                    block.id, got,
                )  # fmt: skip
        local: dict[int, dict[int, int]] = {}  # per model: offset → register
        for address, word in words.items():
            for block in planned.blocks:
                if block.address <= address < block.end:
                    local.setdefault(block.address, {})[address - block.address] = word
        for block, p in planned.points:
            if block.address in moved:
                values[p.quantity], quality[p.quantity] = None, CHANGED
                continue
            first = block.address + p.offset
            missing = failed.get(first) or (
                failed.get(block.address + p.sf) if p.sf is not None else None
            )
            if missing:
                values[p.quantity], quality[p.quantity] = None, missing
                continue
            value, reason = decode_point(local.get(block.address, {}), p)
            values[p.quantity] = value
            if reason is not None:
                quality[p.quantity] = reason
        for q in planned.bad:
            values[q], quality[q] = None, BAD_MODEL
        if rediscover:
            self._planned = None
        problems = planned.chain.problems
        degraded = "; ".join(problems) if problems else None
        return PollResult(self.name, ts, values, quality, degraded=degraded)


class SunSpecDriver:
    """Entry point ``sunspec`` of the ``vatio.drivers`` group."""

    bus_types: ClassVar[tuple[str, ...]] = ("modbus-tcp", "modbus-rtu", "modbus-rtu-tcp")
    Options: ClassVar[type[BaseModel]] = SunSpecOptions

    @classmethod
    def create(cls, name: str, bus: ModbusTransport, options: SunSpecOptions) -> SunSpecDevice:
        return SunSpecDevice(name, options.unit, bus, options)

"""SunSpec discovery: find the "SunS" marker and walk the model chain of one unit.

A SunSpec device starts its map with the marker 0x5375 0x6E53 ("SunS") in holding registers
at 40000 (most devices), 0 or 50000, followed by models, each a two-register header
(model id, length L of what follows) and L registers, until a model id 0xFFFF
(*SunSpec Information Model Specification* v1.0, "Device Modbus map"). The walk reads each
header (two registers), so it costs one request per model plus one for the common model's
strings; the driver does it once per connection and caches it.

A chain can be wrong, and the walk says where (unit id, register address, model id) and
keeps what came before:

* it ends early: no 0xFFFF, and a read fails past some point (or the chain runs past
  register 65535): the models before are used;
* a model appears twice: the first one is used (model 1 excepted: a device that shows a
  meter behind it, SolarEdge-style, starts that meter with a second common model);
* a model we map reports a length that disagrees with the model's definition: its values
  are not read (an offset table is only right for the layout it was written for), and the
  walk goes on with the length the device gave, which is where its next header must be.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from vatio.drivers.reading import DeviceError, DeviceExceptionReply, DeviceTimeout
from vatio.drivers.sunspec.models import (
    BASES,
    COMMON_STRINGS,
    END_ID,
    MARKER,
    MODELS,
    short_label,
)
from vatio.drivers.sunspec.values import decode_string

Reader = Callable[[int, int], Awaitable[list[int]]]  # (start, count) → holding registers

MAX_MODELS = 100  # a chain longer than this is a loop in a broken device, not a device


class NotSunSpec(DeviceError):
    """The unit answers, but no "SunS" marker at any of the usual bases."""

    code = "not_sunspec"
    default_hint = (
        "this device does not speak SunSpec at 40000, 0 or 50000: enable SunSpec (Modbus) "
        "in the inverter's settings, check the unit id, or use driver: modbus with a profile"
    )


@dataclass(frozen=True, slots=True)
class ModelBlock:
    id: int
    address: int  # of its ID register
    length: int  # L: registers after the two-register header

    @property
    def end(self) -> int:
        return self.address + 2 + self.length


@dataclass
class Chain:
    """What the walk found on one unit."""

    base: int
    models: list[ModelBlock] = field(default_factory=list)  # every header, in order
    usable: list[ModelBlock] = field(default_factory=list)  # mapped models that can be read
    skipped: list[ModelBlock] = field(default_factory=list)  # mapped models that cannot
    problems: list[str] = field(default_factory=list)  # located, one line each
    info: dict[str, str] = field(default_factory=dict)  # manufacturer, model, serial, version
    complete: bool = False  # ended with 0xFFFF

    def summary(self) -> str:
        """'1 common (SMA, SB5.0), 103 inverter, 160 MPPT'."""
        parts = []
        for m in self.models:
            text = f"{m.id} {short_label(m.id)}"
            if m.id == 1 and m is self.models[0] and self.info:
                who = [self.info.get(k, "") for k in ("manufacturer", "model")]
                text += f" ({', '.join(w for w in who if w)})"
            parts.append(text)
        return ", ".join(parts) or "no models"


async def find_base(read: Reader, where: str, bases: tuple[int, ...] = BASES) -> int:
    """The base address of the marker. Raises :class:`NotSunSpec` when the unit answers
    but has none, or the last read's error when the unit never answers."""
    silent: DeviceError | None = None
    answered = []
    for base in bases:
        try:
            words = await read(base, 2)
        except DeviceExceptionReply as exc:
            answered.append(f"{base}: exception {exc.exception_code}")
            continue
        except DeviceTimeout as exc:  # a device may stay silent at addresses it lacks
            silent = exc
            continue
        if tuple(words) == MARKER:
            return base
        answered.append(f"{base}: {words[0]:#06x} {words[1]:#06x}")
    if not answered and silent is not None:
        raise silent
    raise NotSunSpec(f'{where}: no SunSpec marker "SunS" (tried {"; ".join(answered)})')


async def walk(read: Reader, base: int, where: str) -> Chain:
    """Walk the chain that starts after the marker at ``base``. Never raises for a broken
    chain: the problems are in :attr:`Chain.problems`, what was readable is kept."""
    chain = Chain(base)
    first_at: dict[int, int] = {}
    address = base + 2
    last = "the marker"
    for _ in range(MAX_MODELS):
        if address + 2 > 0x10000:
            chain.problems.append(
                f"{where}: the SunSpec chain runs past register 65535 after {last}, with no "
                "end marker (0xFFFF): the device's map is broken; models before it are read"
            )
            return chain
        try:
            model_id, length = await read(address, 2)
        except DeviceError as exc:
            chain.problems.append(
                f"{where}, register {address}: the SunSpec chain breaks after {last}: "
                f"{exc}; there is no end marker (0xFFFF). Models before it are read"
            )
            return chain
        if model_id == END_ID:
            chain.complete = True
            return chain
        block = ModelBlock(model_id, address, length)
        chain.models.append(block)
        where_model = f"{where}, register {address}, model {model_id}"
        definition = MODELS.get(model_id)
        if definition is not None:
            if not definition.length_ok(length):
                chain.skipped.append(block)
                chain.problems.append(
                    f"{where_model} ({definition.label}): length {length} disagrees with the "
                    f"model's {definition.expected_length()}: its values are not read; the "
                    "device's firmware does not follow SunSpec here"
                )
            elif model_id in first_at and model_id != 1:
                chain.skipped.append(block)
                chain.problems.append(
                    f"{where_model} ({definition.label}): the model appears again (first at "
                    f"register {first_at[model_id]}): this repeat is ignored"
                )
            else:
                first_at.setdefault(model_id, address)
                chain.usable.append(block)
                if model_id == 1 and not chain.info:
                    await _read_common(read, block, chain, where_model)
        last = f"model {model_id} at register {address}"
        address = block.end
    chain.problems.append(
        f"{where}: more than {MAX_MODELS} models and still no end marker (0xFFFF) after "
        f"{last}: the chain is taken as broken there"
    )
    return chain


async def _read_common(read: Reader, block: ModelBlock, chain: Chain, where: str) -> None:
    """Manufacturer, model, version and serial from model 1 (one read of its strings)."""
    count = max(off + n for off, n in COMMON_STRINGS.values()) - 2
    try:
        words = await read(block.address + 2, count)
    except DeviceError as exc:
        chain.problems.append(f"{where} (common): its strings cannot be read: {exc}")
        return
    for key, (offset, n) in COMMON_STRINGS.items():
        text = decode_string(words[offset - 2 : offset - 2 + n])
        if text:
            chain.info[key] = text


async def discover(read: Reader, where: str, base: int | None = None) -> Chain:
    """Find the marker (at ``base``, or at each of 40000, 0, 50000) and walk the chain."""
    found = await find_base(read, where, (base,) if base is not None else BASES)
    return await walk(read, found, where)

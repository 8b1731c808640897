"""Device profiles: YAML register maps that make a Modbus device work with no code.

A profile names each register by a quantity of the vocabulary and says how to decode it::

    model: Eastron SDM120
    source: Eastron SDM120 Modbus protocol v2.5, input registers 3X
    defaults: {register_type: input, data_type: f32}
    limits: {max_registers: 80, even_start: true, even_count: true, min_gap_ms: 60}
    registers:
      voltage_v: 0x0000                 # shorthand: only the address, defaults apply
      energy_import_kwh: {address: 0x0048}
      power_factor: {address: 0x001E, scale: 1.0}

A profile may name registers that only ``vatio scan`` reads, never the poll: ``identify``,
typically a model code register with a fixed value (Eastron 0xFC02, ABB 0x8960)::

    identify:
      model_code: {address: 0xFC02, register_type: holding, data_type: u16}
    signature:
      model_code: [0x0020, 0x0020]      # SDM120

Built-in profiles live in ``drivers/profiles/*.yaml`` and are referred to by file stem
(``eastron_sdm630``); a config may also give a path to its own profile file.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterator
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from vatio.common.i18n import tr
from vatio.common.vocabulary import UnknownQuantityError, check_quantity
from vatio.common.yamlconf import ConfigError, YamlDocument, load_yaml_file, validation_problems
from vatio.drivers.modbus.register_codec import DataType, Order

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"

MODBUS_MAX_READ_REGISTERS = 125  # FC3/FC4 limit of the protocol (Modbus Application Protocol §6.3)


class RegisterType(StrEnum):
    INPUT = "input"  # function code 4, 3X registers
    HOLDING = "holding"  # function code 3, 4X registers


def _known_quantity(name: str) -> str:
    try:
        check_quantity(name)
    except UnknownQuantityError as exc:
        raise ValueError(str(exc)) from None
    return name


QuantityName = Annotated[str, AfterValidator(_known_quantity)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Decoding(_Strict):
    register_type: RegisterType = RegisterType.HOLDING
    data_type: DataType = DataType.U16
    word_order: Order = "big"
    byte_order: Order = "big"


class PointSpec(_Strict):
    """One register entry as written in YAML (fields left out take the profile's defaults)."""

    address: int = Field(ge=0, le=0xFFFF)
    register_type: RegisterType | None = None
    data_type: DataType | None = None
    word_order: Order | None = None
    byte_order: Order | None = None
    scale: float = 1.0
    offset: float = 0.0


PointEntry = Annotated[
    PointSpec,
    # `voltage_v: 0x0000` is shorthand for `voltage_v: {address: 0x0000}`
    BeforeValidator(lambda v: {"address": v} if isinstance(v, int) else v),
]


class Limits(_Strict):
    """What the device accepts in one request and between requests."""

    max_registers: int = Field(MODBUS_MAX_READ_REGISTERS, ge=1, le=MODBUS_MAX_READ_REGISTERS)
    even_start: bool = False  # Eastron: start address must be even
    even_count: bool = False  # Eastron: register count must be even
    # Unmapped registers the planner may read through to save a request; None = any.
    # Set 0 for devices that answer "illegal address" when a request touches a hole.
    max_gap: int | None = Field(None, ge=0)
    min_gap_ms: float = Field(0.0, ge=0, le=5000)  # silence between requests on a serial bus


class ProfileFile(_Strict):
    model: str
    manufacturer: str = ""
    source: str = Field(min_length=1, description="where the register map comes from")
    defaults: Decoding = Decoding()
    limits: Limits = Limits()
    registers: dict[QuantityName, PointEntry] = Field(min_length=1)
    # registers read by `vatio scan` only (a model code), never polled
    identify: dict[QuantityName, PointEntry] = {}
    # how `vatio scan` recognises the model: quantities whose values must fall in a range
    signature: dict[QuantityName, tuple[float, float]] = {}


class Point(_Strict):
    """A register entry with every decoding parameter resolved."""

    quantity: str
    address: int
    register_type: RegisterType
    data_type: DataType
    word_order: Order
    byte_order: Order
    scale: float = 1.0
    offset: float = 0.0

    @property
    def width(self) -> int:
        return self.data_type.width

    @property
    def end(self) -> int:
        return self.address + self.width


class Profile(_Strict):
    name: str
    model: str
    manufacturer: str
    source: str
    limits: Limits
    points: tuple[Point, ...]
    signature: tuple[tuple[str, float, float], ...] = ()
    identify: tuple[Point, ...] = ()  # read by `vatio scan` only

    @property
    def signature_points(self) -> tuple[Point, ...]:
        """The registers `vatio scan` reads to check the signature (polled or identify-only)."""
        wanted = {q for q, _, _ in self.signature}
        return tuple(p for p in (*self.points, *self.identify) if p.quantity in wanted)

    def __iter__(self) -> Iterator[Point]:  # type: ignore[override]
        return iter(self.points)


def _resolve(name: str, spec: PointSpec, defaults: Decoding) -> Point:
    return Point(
        quantity=name,
        address=spec.address,
        register_type=spec.register_type or defaults.register_type,
        data_type=spec.data_type or defaults.data_type,
        word_order=spec.word_order or defaults.word_order,
        byte_order=spec.byte_order or defaults.byte_order,
        scale=spec.scale,
        offset=spec.offset,
    )


def profile_from_document(doc: YamlDocument, name: str) -> Profile:
    try:
        parsed = ProfileFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, doc, ProfileFile)) from None
    points = tuple(_resolve(q, spec, parsed.defaults) for q, spec in parsed.registers.items())
    identify = tuple(_resolve(q, spec, parsed.defaults) for q, spec in parsed.identify.items())
    problems = []
    for p in identify:
        if p.end > 0x10000:
            problems.append(doc.problem(("identify", p.quantity), "runs past address 0xFFFF"))
        if p.quantity in parsed.registers:
            problems.append(doc.problem(
                ("identify", p.quantity),
                f"'{p.quantity}' is also in registers: name it in one place",
            ))  # fmt: skip
    for p in points:
        if p.end > 0x10000:
            problems.append(doc.problem(("registers", p.quantity), "runs past address 0xFFFF"))
        if parsed.limits.even_start and p.address % 2:
            problems.append(
                doc.problem(
                    ("registers", p.quantity),
                    f"address {p.address} is odd but limits.even_start is set; check the map",
                )
            )
        if p.width > parsed.limits.max_registers:
            problems.append(
                doc.problem(
                    ("registers", p.quantity),
                    f"{p.data_type.value} needs {p.width} registers, more than "
                    f"limits.max_registers ({parsed.limits.max_registers})",
                )
            )
    # two values in one register are a typo in an address or a data type (a float32 at 0x0000
    # and another at 0x0001), never a map: the second would decode half of the first's words
    by_type = sorted(points, key=lambda p: (p.register_type.value, p.address))
    for before, p in itertools.pairwise(by_type):
        if p.register_type is before.register_type and p.address < before.end:
            problems.append(doc.problem(
                ("registers", p.quantity),
                f"registers {p.address}..{p.end - 1} overlap '{before.quantity}' "
                f"({before.data_type.value} at {before.address}..{before.end - 1}): check the "
                "address or the data type",
            ))  # fmt: skip
    for quantity, (lo, hi) in parsed.signature.items():
        if quantity not in parsed.registers and quantity not in parsed.identify:
            problems.append(doc.problem(
                ("signature", quantity),
                f"'{quantity}' is not in registers or identify: a signature uses mapped values",
            ))  # fmt: skip
        elif lo > hi:
            problems.append(doc.problem(
                ("signature", quantity), f"the range [{lo}, {hi}] is empty: write [low, high]"
            ))  # fmt: skip
    for quantity in parsed.identify:
        if quantity not in parsed.signature:
            problems.append(doc.problem(
                ("identify", quantity),
                f"'{quantity}' is read only to identify the device: give its range in signature",
            ))  # fmt: skip
    if problems:
        raise ConfigError(problems)
    return Profile(
        name=name,
        model=parsed.model,
        manufacturer=parsed.manufacturer,
        source=parsed.source,
        limits=parsed.limits,
        points=points,
        signature=tuple((q, lo, hi) for q, (lo, hi) in parsed.signature.items()),
        identify=identify,
    )


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


@cache
def _load_path(path: Path, name: str) -> Profile:
    return profile_from_document(load_yaml_file(path), name)


def load_profile(ref: str, base_dir: Path | None = None) -> Profile:
    """Load a built-in profile by name, or a profile file by path (relative to ``base_dir``).

    Raises :class:`ValueError` with a hint for an unknown name and :class:`ConfigError` for
    a profile file with mistakes.
    """
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        path = Path(ref).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise ValueError(f"profile file '{path}' not found; check the path")
        return _load_path(path.resolve(), path.stem)
    if ref in builtin_profiles():
        return _load_path(PROFILE_DIR / f"{ref}.yaml", ref)
    close = difflib.get_close_matches(ref, builtin_profiles(), n=1)
    hint = (
        tr("did you mean '{close}'?", close=close[0])
        if close
        else tr("or give the path of a profile .yaml file")
    )
    raise ValueError(
        tr(
            "unknown profile '{ref}': {hint} (built-in: {builtin})",
            ref=ref,
            hint=hint,
            builtin=", ".join(builtin_profiles()),
        )
    )

"""SunSpec registers → numbers: the "not implemented" sentinels and the scale factors.

SunSpec marks a point a device does not implement with a fixed value per type
(*SunSpec Information Model Specification* v1.0, §"Unimplemented registers"; also the
``sunspec/models`` README): int16 0x8000, uint16/enum16 0xFFFF, int32 0x80000000, uint32
and acc32 0xFFFFFFFF (what devices in the field send; the specification also reserves 0 for
an acc32 "not accumulated", which Vatio reads as 0 because a new counter reads 0 too),
float32 NaN, and a scale factor (sunssf, int16 in −10…10) of 0x8000. Such a point, or a
point whose scale factor is one, is ``None`` with the quality reason
:data:`NOT_IMPLEMENTED`; a scale factor outside −10…10 gives :data:`BAD_SCALE_FACTOR`.

A value is ``raw × 10^sf × 10^exp`` (``exp`` converts to the vocabulary's unit), computed as
one division or multiplication by a power of ten so that 2301 with sf −1 is 230.1, not
230.10000000000002.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping

from vatio.drivers.sunspec.models import PointType, SunSpecPoint

NOT_IMPLEMENTED = "not_implemented"
BAD_SCALE_FACTOR = "bad_scale_factor"
NOT_READ = "not_read"  # the register was not in what the poll read (should not happen)

SF_NOT_IMPLEMENTED = 0x8000
SF_RANGE = range(-10, 11)

_SENTINELS: dict[PointType, int] = {
    PointType.I16: 0x8000,
    PointType.U16: 0xFFFF,
    PointType.ENUM16: 0xFFFF,
    PointType.I32: 0x80000000,
    PointType.U32: 0xFFFFFFFF,
    PointType.ACC32: 0xFFFFFFFF,
}


def _int16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def raw_value(words: list[int], type_: PointType) -> float | None:
    """The raw number in ``words`` (big-endian, SunSpec's only order), None for a sentinel."""
    if type_ is PointType.F32:
        (value,) = struct.unpack(">f", struct.pack(">HH", words[0], words[1]))
        return None if math.isnan(value) or math.isinf(value) else float(value)
    word = words[0] if type_.width == 1 else (words[0] << 16) | words[1]
    if word == _SENTINELS[type_]:
        return None
    if type_ is PointType.I16:
        return float(_int16(word))
    if type_ is PointType.I32:
        return float(word - 0x100000000 if word & 0x80000000 else word)
    return float(word)


def scale_factor(word: int) -> tuple[int | None, str | None]:
    """A sunssf register: (exponent, None), or (None, reason)."""
    if word == SF_NOT_IMPLEMENTED:
        return None, NOT_IMPLEMENTED
    sf = _int16(word)
    if sf not in SF_RANGE:
        return None, BAD_SCALE_FACTOR
    return sf, None


def apply_power(raw: float, exp: int) -> float:
    """``raw × 10^exp`` with one correctly rounded operation."""
    if exp >= 0:
        return raw * float(10**exp)
    return raw / float(10**-exp)


def decode_point(words: Mapping[int, int], point: SunSpecPoint) -> tuple[float | None, str | None]:
    """The value of ``point`` from ``words`` (model-relative offset → register), or
    (None, quality reason)."""
    try:
        regs = [words[point.offset + i] for i in range(point.type.width)]
        sf_word = words[point.sf] if point.sf is not None else None
    except KeyError:
        return None, NOT_READ
    raw = raw_value(regs, point.type)
    if raw is None:
        return None, NOT_IMPLEMENTED
    exp = point.exp
    if sf_word is not None:
        sf, reason = scale_factor(sf_word)
        if sf is None:
            return None, reason
        exp += sf
    return apply_power(raw, exp), None


def decode_string(words: list[int]) -> str:
    """A SunSpec string: two ASCII bytes per register, padded with NULs (or spaces)."""
    data = b"".join(w.to_bytes(2, "big") for w in words)
    return data.split(b"\0", 1)[0].decode("latin-1").strip()

"""Sensirion's I2C framing: 16-bit commands, and data as 16-bit words each followed by CRC-8.

Every Sensirion sensor here (SHT3x, SHT4x, SCD4x, SPS30) sends its data as big-endian
16-bit words, each followed by a CRC-8 of its two bytes; arguments written to the sensor
carry the same CRC. The CRC is polynomial 0x31 (x⁸ + x⁵ + x⁴ + 1), initial value 0xFF, no
reflection, no final XOR; the datasheets' example is CRC(0xBEEF) = 0x92 (Sensirion,
"Datasheet SHT3x-DIS", v7 2019, §4.12 "Checksum Calculation"; the same table is in the SHT4x,
SCD4x and SPS30 datasheets). A word whose CRC fails is never decoded.

Sensirion's own Python drivers (sensirion-i2c-driver 1.0.2 with sensirion-driver-adapters and
the per-sensor packages) are not used, although they run over this transport (tried with an
``I2cTransceiverV1`` on the simulated bus: same values). Measured 2026-12-01 on Python 3.11:
* they cannot be installed together: sensirion-i2c-sht3x 1.0.0 and -sht4x 1.1.0 want
  sensirion-driver-support-types ~=0.2.0, -scd4x 1.1.0 and -sps30 1.0.0 want >=1.1,<2.0
  (pip: ResolutionImpossible), so at most half of these sensors could use them;
* import cost on top of asyncio: +4.2–4.4 MiB RSS, +87–93 modules, 37–48 ms (they pull the
  SHDLC sensor-bridge packages and intelhex), against +0.4 MiB, 5 modules, 4 ms for smbus2;
* their API blocks, sleeping through every command's execution time: each would hold a worker
  thread, where this driver awaits the time and leaves the bus to its neighbours.
The command set used here is a dozen documented commands, written from the datasheets.
"""

from __future__ import annotations

import struct

from vatio.drivers.i2c.transport import BadCrc


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


_TABLE = _table()


def crc8(data: bytes) -> int:
    """Sensirion's CRC-8 of ``data`` (two bytes per word in practice)."""
    crc = 0xFF
    for byte in data:
        crc = _TABLE[crc ^ byte]
    return crc


def command(code: int, *args: int) -> bytes:
    """A 16-bit command, then each 16-bit argument with its CRC."""
    out = bytearray(code.to_bytes(2, "big"))
    for arg in args:
        word = arg.to_bytes(2, "big")
        out += word + bytes([crc8(word)])
    return bytes(out)


def encode_words(words: list[int]) -> bytes:
    """Words as the sensor sends them (simulators, tests)."""
    out = bytearray()
    for w in words:
        b = (w & 0xFFFF).to_bytes(2, "big")
        out += b + bytes([crc8(b)])
    return bytes(out)


def words_or_none(data: bytes) -> list[int | None]:
    """The 16-bit words of a reply; None for a word whose CRC does not match."""
    if len(data) % 3:
        raise ValueError(f"a Sensirion reply is 3 bytes per word, got {len(data)}")
    out: list[int | None] = []
    for i in range(0, len(data), 3):
        pair = data[i : i + 2]
        out.append(int.from_bytes(pair, "big") if crc8(pair) == data[i + 2] else None)
    return out


def words(data: bytes, where: str) -> list[int]:
    """The words of a reply; :class:`BadCrc` (naming the byte offset) if any CRC fails."""
    decoded = words_or_none(data)
    for i, w in enumerate(decoded):
        if w is None:
            raise BadCrc(
                f"{where}: CRC mismatch in word {i} (bytes {3 * i}–{3 * i + 2}: "
                f"{data[3 * i : 3 * i + 3].hex(' ')})"
            )
    return [w for w in decoded if w is not None]


def float_from_words(high: int, low: int) -> float:
    """An IEEE 754 big-endian float sent as two words (SPS30)."""
    value: float = struct.unpack(">f", struct.pack(">HH", high, low))[0]
    return value


def words_from_float(value: float) -> list[int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]

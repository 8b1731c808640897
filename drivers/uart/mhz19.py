"""Winsen MH-Z19B CO2 sensor: the read command and its reply (domain.md §5.4).

Request ``FF 01 86 00 00 00 00 00 79``; reply ``FF 86 hi lo b4 b5 b6 b7 cs`` with
CO2 = hi·256 + lo ppm and cs = (0x100 − (sum of bytes 1..7 & 0xFF)) & 0xFF.
"""

from __future__ import annotations


def checksum(frame: bytes) -> int:
    return (0x100 - (sum(frame[1:8]) & 0xFF)) & 0xFF


READ_CO2 = bytes([0xFF, 0x01, 0x86, 0, 0, 0, 0, 0, 0x79])
HEADER = b"\xff\x86"


def frame_length(buf: bytes) -> int | None:
    return 9


def frame_valid(frame: bytes) -> bool:
    return len(frame) == 9 and frame[:2] == HEADER and checksum(frame) == frame[8]


def parse_co2(frame: bytes) -> int:
    return frame[2] * 256 + frame[3]


def reply(co2_ppm: int, temperature_c: int = 28) -> bytes:
    """Encode a reply (simulators, tests); byte 4 as temperature + 40 (UNCONFIRMED)."""
    body = bytes([0xFF, 0x86, co2_ppm >> 8, co2_ppm & 0xFF, temperature_c + 40, 0, 0, 0])
    return body + bytes([checksum(body + b"\x00")])

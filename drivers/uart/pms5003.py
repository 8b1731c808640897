"""Plantower PMS5003 protocol family (PMS5003, PMS7003, PMSA003): frames and commands
(domain.md §5.2).

Frame: ``42 4D`` + 16-bit length (28) + 13 big-endian words + 16-bit checksum (sum of bytes
0..29). Words 1–3 are PM1.0/2.5/10 "CF=1" (factory calibration conditions), words 4–6 the
same under atmospheric conditions (what ambient monitoring reports), 7–12 particle counts
(particles larger than 0.3/0.5/1.0/2.5/5.0/10 µm in 0.1 L of air).

Word 13: the PMS5003 manual (v2.3, 2016) calls it "reserved"; the PMS7003 and PMSA003
manuals (Plantower "PMS7003 series data manual" V2.5 and "PMSA003 series data manual", the
Chinese editions linked from avaldebe/PyPMS docs/sensors/Plantower.md; their field table is
transcribed in public drivers as 版本号 + 错误代码) split it into a version byte (high, byte
28) and an error code (low, byte 29; 0 = no error; the codes are not documented).

The PMS7003 and PMSA003 use the same 32-byte frame, the same 9600 8N1 line and the same
commands as the PMS5003 (active/passive mode ``E1``, passive read ``E2``, sleep/wake
``E4``). None of the three reports formaldehyde or temperature (those are the PMS5003S/T/ST
variants, whose frames are longer or reuse words 10–13). In active mode the PMS7003 sends a
frame every ~2.3 s when the concentration is steady and every 200–800 ms when it changes
fast; after a wake-up, data are stable only after 30 s (PMS7003 manual, "Output result" and
"Circuit attentions", as transcribed in the pmme project's pms7003-spec.txt).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = b"\x42\x4d"
FRAME_LEN = 32


@dataclass(frozen=True)
class Pms5003Reading:
    pm1_0_cf1: int
    pm2_5_cf1: int
    pm10_cf1: int
    pm1_0: int  # atmospheric environment
    pm2_5: int
    pm10: int
    counts: tuple[int, int, int, int, int, int]  # >0.3, >0.5, >1, >2.5, >5, >10 µm per 0.1 L
    version: int = 0  # byte 28 (PMS7003/PMSA003; "reserved" on the PMS5003)
    error_code: int = 0  # byte 29 (PMS7003/PMSA003: 0 = no error)


VERSION_OFFSET = 28
ERROR_OFFSET = 29


def frame_length(buf: bytes) -> int | None:
    if len(buf) < 4:
        return None
    length = buf[2] << 8 | buf[3]
    # a length other than 28 is noise that happened to start with 42 4D: treat as a frame of
    # the normal size so the checksum rejects it and the scanner moves on
    return 4 + length if length == FRAME_LEN - 4 else FRAME_LEN


def frame_valid(frame: bytes) -> bool:
    return (
        len(frame) == FRAME_LEN
        and frame[:2] == HEADER
        and (frame[2] << 8 | frame[3]) == FRAME_LEN - 4
        and sum(frame[:30]) & 0xFFFF == (frame[30] << 8 | frame[31])
    )


def parse(frame: bytes) -> Pms5003Reading:
    w = struct.unpack(">13H", frame[4:30])
    return Pms5003Reading(
        w[0],
        w[1],
        w[2],
        w[3],
        w[4],
        w[5],
        (w[6], w[7], w[8], w[9], w[10], w[11]),
        version=frame[VERSION_OFFSET],
        error_code=frame[ERROR_OFFSET],
    )


def data_frame(
    atm: tuple[int, int, int],
    cf1: tuple[int, int, int] | None = None,
    counts: tuple[int, ...] = (0, 0, 0, 0, 0, 0),
    word13: int = 0x9700,
) -> bytes:
    """Encode a frame (for simulators and tests); word 13 = 0x9700 as seen on devices."""
    words = (*(cf1 or atm), *atm, *counts, word13)
    body = HEADER + struct.pack(">H", FRAME_LEN - 4) + struct.pack(">13H", *words)
    return body + struct.pack(">H", sum(body) & 0xFFFF)


def command(cmd: int, data: int = 0) -> bytes:
    body = HEADER + bytes([cmd, data >> 8, data & 0xFF])
    return body + struct.pack(">H", sum(body) & 0xFFFF)


SET_PASSIVE = command(0xE1, 0)
SET_ACTIVE = command(0xE1, 1)
READ = command(0xE2, 0)
SLEEP = command(0xE4, 0)
WAKE = command(0xE4, 1)

"""Nova Fitness SDS011 PM2.5/PM10 sensor: frames and commands (domain.md §5.1).

Data frame, 10 bytes: ``AA C0 pm25_lo pm25_hi pm10_lo pm10_hi id_lo id_hi checksum AB``,
PM = (hi·256 + lo) / 10 µg/m³, checksum = sum of bytes 2..7 & 0xFF. Command replies start
``AA C5``. Commands are 19 bytes: ``AA B4 cmd d1..d12 id_lo id_hi checksum AB`` with
checksum = sum of bytes 2..16 & 0xFF; id FF FF addresses every sensor.
"""

from __future__ import annotations

from dataclasses import dataclass

HEAD = 0xAA
TAIL = 0xAB
DATA = 0xC0
REPLY = 0xC5
COMMAND = 0xB4

CMD_MODE = 0x02  # d1=1 set, d2: 0 active, 1 query
CMD_QUERY = 0x04
CMD_SLEEP = 0x06  # d1=1 set, d2: 0 sleep, 1 work


@dataclass(frozen=True)
class Sds011Reading:
    pm2_5: float
    pm10: float
    device_id: int


def frame_length(buf: bytes) -> int | None:
    return 10


def frame_valid(frame: bytes) -> bool:
    return (
        len(frame) == 10
        and frame[0] == HEAD
        and frame[1] in (DATA, REPLY)
        and frame[9] == TAIL
        and sum(frame[2:8]) & 0xFF == frame[8]
    )


def parse_data(frame: bytes) -> Sds011Reading:
    """A checked data frame (``AA C0 …``) → PM values."""
    return Sds011Reading(
        pm2_5=(frame[3] * 256 + frame[2]) / 10,
        pm10=(frame[5] * 256 + frame[4]) / 10,
        device_id=frame[6] | frame[7] << 8,
    )


def data_frame(pm2_5: float, pm10: float, device_id: int = 0xA160) -> bytes:
    """Encode a data frame (for simulators and tests)."""
    a, b = round(pm2_5 * 10), round(pm10 * 10)
    body = bytes([a & 0xFF, a >> 8, b & 0xFF, b >> 8, device_id & 0xFF, device_id >> 8])
    return bytes([HEAD, DATA]) + body + bytes([sum(body) & 0xFF, TAIL])


def command(cmd: int, data: bytes = b"", device_id: int = 0xFFFF) -> bytes:
    """A 19-byte command frame; ``data`` fills d1.. (zero padded to 12 bytes)."""
    payload = bytes([cmd]) + data.ljust(12, b"\x00") + bytes([device_id & 0xFF, device_id >> 8])
    return bytes([HEAD, COMMAND]) + payload + bytes([sum(payload) & 0xFF, TAIL])


QUERY = command(CMD_QUERY)
SET_QUERY_MODE = command(CMD_MODE, b"\x01\x01")
SET_ACTIVE_MODE = command(CMD_MODE, b"\x01\x00")
SLEEP = command(CMD_SLEEP, b"\x01\x00")
WAKE = command(CMD_SLEEP, b"\x01\x01")

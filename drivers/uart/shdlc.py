"""Sensirion SHDLC framing (the SPS30's UART protocol): encode requests, check and decode
replies, and find frames in a byte stream.

Source: Sensirion, "Datasheet SPS30 — Particulate Matter Sensor for Air Quality Monitoring
and Control", Version 1.0 – D1 – March 2020, §5.1–5.2 (UART 115200 8N1, the SHDLC frame,
byte stuffing, checksum, MISO state byte); cross-checked against Sensirion's own drivers
(Sensirion/embedded-uart-sps ``sensirion_shdlc.c``, Sensirion/python-uart-sps30).

Frames on the wire::

    MOSI (host → sensor):  7E | ADR | CMD | L | DATA (L bytes) | CHK | 7E
    MISO (sensor → host):  7E | ADR | CMD | STATE | L | DATA (L bytes) | CHK | 7E

* CHK = the inverted least significant byte of the sum of every byte between the start and
  the checksum (ADR … last DATA byte), taken *before* byte stuffing.
* Byte stuffing: between the start and the stop byte, each of 0x7E, 0x7D, 0x11, 0x13 is sent
  as 0x7D followed by the byte XOR 0x20 (0x7E → 7D 5E, 0x7D → 7D 5D, 0x11 → 7D 31, 0x13 →
  7D 33), so 0x7E only ever marks a frame's ends.
* L is at most 255, so an unstuffed MISO frame is at most 262 bytes, a stuffed one at most
  2 + (5 + 255)·2 = 522 bytes (the bound Sensirion's C driver uses too).
* STATE: bit 7 says "the device status register has an error flag set" (read it with
  command 0xD2); bits 0–6 are an error code for this command (table below); 0 = all good.

Why not Sensirion's ``sensirion-shdlc-driver`` package: it owns the serial port and reads it
with blocking calls, while the agent reads every UART in asyncio through
:class:`~vatio.drivers.uart.link.UartLink` and resynchronises after noise with a
:class:`~vatio.drivers.uart.frames.FrameScanner`; the framing itself is twenty lines.
"""

from __future__ import annotations

from dataclasses import dataclass

FLAG = 0x7E  # start and stop byte
ESCAPE = 0x7D
_STUFFED = (0x7E, 0x7D, 0x11, 0x13)
MAX_DATA = 255
MAX_MISO_STUFFED = 2 + (5 + MAX_DATA) * 2  # 522 bytes: the longest frame a sensor can send

# MISO state, bits 0–6 (datasheet §5.2, Table "error codes")
ERRORS: dict[int, str] = {
    0x01: "wrong data length for this command (too much or too little data)",
    0x02: "unknown command",
    0x03: "no access right for command",
    0x04: "illegal command parameter or parameter out of allowed range",
    0x28: "internal function argument out of range",
    0x43: "command not allowed in current state",
}
STATUS_FLAG = 0x80  # state bit 7: an error flag is set in the device status register


class ShdlcError(ValueError):
    """A frame that is not a valid SHDLC reply; ``offset`` is the byte of the frame (as
    received, stuffed, start byte = 0) where it goes wrong."""

    def __init__(self, reason: str, offset: int | None = None) -> None:
        where = f" (byte {offset} of the frame)" if offset is not None else ""
        super().__init__(reason + where)
        self.reason = reason
        self.offset = offset


@dataclass(frozen=True)
class MisoFrame:
    address: int
    command: int
    state: int
    data: bytes

    @property
    def error_code(self) -> int:
        return self.state & 0x7F

    @property
    def status_flag(self) -> bool:
        return bool(self.state & STATUS_FLAG)

    def describe_state(self) -> str:
        """The state byte in words: "" when it is 0."""
        parts = []
        if self.error_code:
            text = ERRORS.get(self.error_code, "unknown error code")
            parts.append(f"error 0x{self.error_code:02X}: {text}")
        if self.status_flag:
            parts.append("an error flag is set in the device status register")
        return "; ".join(parts)


def checksum(body: bytes) -> int:
    """Inverted LSB of the sum of ``body`` (ADR … last DATA byte, unstuffed)."""
    return ~sum(body) & 0xFF


def stuff(body: bytes) -> bytes:
    out = bytearray()
    for b in body:
        if b in _STUFFED:
            out += bytes([ESCAPE, b ^ 0x20])
        else:
            out.append(b)
    return bytes(out)


def unstuff(stuffed: bytes, first_offset: int = 1) -> bytes:
    """Undo byte stuffing; ``first_offset`` is where ``stuffed`` starts in the frame (for the
    offset an error names)."""
    out = bytearray()
    escaped = False
    for i, b in enumerate(stuffed):
        if escaped:
            original = b ^ 0x20
            if original not in _STUFFED:
                raise ShdlcError(
                    f"bad byte stuffing: 7D {b:02X} is no escape sequence", first_offset + i
                )
            out.append(original)
            escaped = False
        elif b == ESCAPE:
            escaped = True
        elif b == FLAG:
            raise ShdlcError("unexpected 7E inside the frame", first_offset + i)
        else:
            out.append(b)
    if escaped:
        raise ShdlcError(
            "frame ends in the middle of an escape sequence (7D)", first_offset + len(stuffed) - 1
        )
    return bytes(out)


def mosi(command: int, data: bytes = b"", address: int = 0) -> bytes:
    """A request frame, stuffed and delimited, ready to write."""
    if len(data) > MAX_DATA:
        raise ValueError(f"SHDLC data is at most {MAX_DATA} bytes, not {len(data)}")
    body = bytes([address, command, len(data)]) + data
    return bytes([FLAG]) + stuff(body + bytes([checksum(body)])) + bytes([FLAG])


def miso(command: int, data: bytes = b"", state: int = 0, address: int = 0) -> bytes:
    """A reply frame (for simulators and tests)."""
    body = bytes([address, command, state, len(data)]) + data
    return bytes([FLAG]) + stuff(body + bytes([checksum(body)])) + bytes([FLAG])


def decode_miso(frame: bytes) -> MisoFrame:
    """Check a whole reply frame (start and stop byte included) and decode it.

    Raises :class:`ShdlcError` naming what is wrong and where: too long, missing start or
    stop byte, bad stuffing, a length byte that disagrees with the data, a bad checksum.
    A state byte that reports an error is *not* an error here: the frame is valid, and
    :meth:`MisoFrame.describe_state` says what the sensor refused.
    """
    if len(frame) > MAX_MISO_STUFFED:
        raise ShdlcError(
            f"frame of {len(frame)} bytes is longer than SHDLC's maximum of "
            f"{MAX_MISO_STUFFED} bytes",
            MAX_MISO_STUFFED,
        )
    if len(frame) < 2 or frame[0] != FLAG:
        raise ShdlcError("frame does not start with 7E", 0)
    if frame[-1] != FLAG:
        raise ShdlcError("frame does not end with 7E", len(frame) - 1)
    body = unstuff(frame[1:-1])
    if len(body) < 5:
        raise ShdlcError(f"frame too short: {len(body)} bytes between 7E and 7E, at least 5")
    length = body[3]
    if len(body) != 5 + length:
        raise ShdlcError(
            f"length byte says {length} data bytes, the frame holds {len(body) - 5}",
            _stuffed_offset(frame, 3),
        )
    expected = checksum(body[:-1])
    if body[-1] != expected:
        raise ShdlcError(
            f"checksum 0x{body[-1]:02X}, computed 0x{expected:02X}",
            _stuffed_offset(frame, len(body) - 1),
        )
    return MisoFrame(body[0], body[1], body[2], body[4:-1])


def _stuffed_offset(frame: bytes, index: int) -> int:
    """Offset in the stuffed ``frame`` of unstuffed body byte ``index`` (0 = ADR)."""
    n = 0
    i = 1
    while i < len(frame) - 1:
        if n == index:
            return i
        i += 2 if frame[i] == ESCAPE else 1
        n += 1
    return i


@dataclass(frozen=True)
class MosiFrame:
    address: int
    command: int
    data: bytes


def decode_mosi(frame: bytes) -> MosiFrame:
    """Check and decode a request frame (the sensor's side: simulators, tests)."""
    if len(frame) < 2 or frame[0] != FLAG or frame[-1] != FLAG:
        raise ShdlcError("frame is not delimited by 7E … 7E", 0)
    body = unstuff(frame[1:-1])
    if len(body) < 4 or len(body) != 4 + body[2]:
        raise ShdlcError(f"request of {len(body)} bytes does not match its length byte")
    if body[-1] != checksum(body[:-1]):
        raise ShdlcError(f"checksum 0x{body[-1]:02X}, computed 0x{checksum(body[:-1]):02X}")
    return MosiFrame(body[0], body[1], body[3:-1])


class MisoReceiver:
    """The frame rules for a :class:`~vatio.drivers.uart.frames.FrameScanner` on the host's
    side; remembers why the last rejected frame was rejected, so a poll that times out can
    say it ("last frame rejected: checksum …")."""

    header = bytes([FLAG])

    def __init__(self) -> None:
        self.last_error: ShdlcError | None = None
        self.rejected = 0

    @staticmethod
    def length(buf: bytes) -> int | None:
        stop = buf.find(FLAG, 1, MAX_MISO_STUFFED + 1)
        if stop > 0:
            return stop + 1
        # no stop byte within SHDLC's maximum: hand over one byte more than the maximum,
        # so it is rejected as too long and the scan goes on from the next 7E
        return MAX_MISO_STUFFED + 1 if len(buf) > MAX_MISO_STUFFED else None

    def valid(self, frame: bytes) -> bool:
        if len(frame) == 2:
            # "7E 7E": the stop byte of a frame and the start of the next, seen while
            # resynchronising: not worth reporting
            return False
        try:
            decode_miso(frame)
        except ShdlcError as exc:
            self.last_error = exc
            self.rejected += 1
            return False
        return True

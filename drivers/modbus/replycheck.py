"""Every Modbus reply is checked against the request it answers, before pymodbus decodes it.

pymodbus 3.16 frames replies but does not hold them to the request: an FC03 answer to an FC04
request decodes as good registers, bytes after a valid frame are dropped unseen, and a PDU
shorter than its byte count raises inside ``data_received`` (asyncio then logs a 17-line
traceback and, on TCP, closes the connection). A reply from another unit or with a broken
CRC is silently skipped, so a garbled line looks exactly like a silent one.

:class:`ReplyGuard` sits in pymodbus's ``trace_packet`` hook, which sees the raw bytes of
both directions on TCP and serial clients alike:

* an outgoing request tells it what to expect (unit id, function code, register count and,
  on Modbus/TCP, the transaction id) — no coordination with the caller is needed;
* incoming bytes are handed to pymodbus only once they form exactly one complete frame that
  answers that request (right unit, function code, byte count = 2 × count, PDU length =
  byte count, nothing after it). Until then pymodbus sees nothing, so it can neither decode a
  wrong reply nor raise on a broken one;
* a well-framed but wrong reply fails the request at once (:class:`ReplyRejected`), without
  waiting for the timeout; bytes that never form a frame (a broken CRC, noise, a frame cut
  short) are remembered, so a timeout can say "garbled" instead of "no answer".

Only reads of holding/input registers (FC03/FC04) are checked: they are all the agent sends.
Any other request passes through untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymodbus.framer import FramerRTU

READ_FUNCTIONS = {3: "read holding registers", 4: "read input registers"}
MAX_MBAP_LENGTH = 254  # unit id + the largest PDU (253 bytes)


class ReplyRejected(Exception):
    """A reply that does not answer the request (raised out of the pymodbus call).

    ``garbled``: the line, not the device, is the likely cause (on a serial line, a valid
    frame followed by more bytes is what a parity or baud mismatch often leaves)."""

    def __init__(self, reason: str, garbled: bool = False) -> None:
        super().__init__(reason)
        self.garbled = garbled


class ReplyGuard:
    """The ``trace_packet`` hook of one pymodbus client: checks replies against requests.

    ``rtu``: RTU framing (serial, or RTU over TCP) instead of Modbus/TCP's MBAP header.
    """

    def __init__(self, rtu: bool, on_receive: Callable[[], None] | None = None) -> None:
        self.rtu = rtu
        self.on_receive = on_receive  # told of every received chunk (serial timing)
        self.ctx: Any = None  # the client's pymodbus TransactionManager (set by attach)
        # the request in flight; fc 0 = none yet (drop what arrives), -1 = not a read (pass)
        self.unit = 0
        self.fc = 0
        self.count = 0
        self.tid = 0
        # what happened to its reply
        self.received = 0  # bytes seen for this request
        self.problem = ""  # why the bytes so far are not a valid reply (garbled, cut short)
        self.rejected = ""  # set once the reply was refused
        self.accepted = False
        self.stray = 0  # bytes after the accepted reply (trailing bytes, late on serial)
        self.rejects = 0  # totals, for tests and counters
        self.garbled = 0

    def attach(self, client: Any) -> None:
        """Watch ``client``'s replies (its constructor got this object as trace_packet)."""
        self.ctx = client.ctx
        decode = self.ctx.callback_data

        def callback_data(data: bytes, addr: tuple[Any, ...] | None = None) -> int:
            # pymodbus runs this inside asyncio's data_received: anything it raises becomes
            # a logged traceback (and a closed TCP connection). The checks above mean only
            # sound frames get here; if pymodbus still fails on one, refuse that reply.
            try:
                return int(decode(data, addr))
            except Exception as exc:
                self._reject(f"undecodable reply ({exc})")
                return len(data)

        self.ctx.callback_data = callback_data

    # the trace_packet hook --------------------------------------------------------------

    def __call__(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self._expect(data)
            return data
        if self.on_receive is not None:
            self.on_receive()
        if self.fc < 0:
            return data
        if not self.fc or self.rejected:
            return b""  # nothing asked, or this reply already refused: pymodbus sees nothing
        if self.accepted:
            # more bytes after the reply was taken: counted, checked by the caller
            self.stray = len(data)
            return b""
        self.received = len(data)
        return self._check_rtu(data) if self.rtu else self._check_mbap(data)

    def _expect(self, frame: bytes) -> None:
        self.received = self.stray = 0
        self.problem = self.rejected = ""
        self.accepted = False
        head = 0 if self.rtu else 6  # where the unit id sits
        if len(frame) < head + 6 or frame[head + 1] not in READ_FUNCTIONS:
            self.fc = -1
            return
        self.tid = 0 if self.rtu else int.from_bytes(frame[0:2], "big")
        self.unit = frame[head]
        self.fc = frame[head + 1]
        self.count = int.from_bytes(frame[head + 4 : head + 6], "big")

    # framings ---------------------------------------------------------------------------

    def _check_mbap(self, data: bytes) -> bytes:
        pos = 0
        while True:
            rest = len(data) - pos
            if rest < 8:  # MBAP header (7) + function code
                if rest:
                    self.problem = f"a frame cut short ({rest} bytes of a Modbus/TCP header)"
                return b""
            tid = int.from_bytes(data[pos : pos + 2], "big")
            pid = int.from_bytes(data[pos + 2 : pos + 4], "big")
            length = int.from_bytes(data[pos + 4 : pos + 6], "big")
            if pid != 0:
                return self._reject(f"protocol id {pid} in the Modbus/TCP header (0 expected)")
            if not 2 <= length <= MAX_MBAP_LENGTH:
                return self._reject(f"Modbus/TCP length field {length} (2–254 allowed)")
            end = pos + 6 + length
            if len(data) < end:
                self.problem = (
                    f"a frame cut short ({rest} of the {6 + length} bytes its header announces)"
                )
                return b""
            if self.tid and tid != self.tid:
                # a late reply to an earlier request on this connection: not this one's
                pos = end
                continue
            if len(data) > end:
                return self._reject(f"{len(data) - end} trailing bytes after the reply frame")
            error = self._check_pdu(data[pos + 6], data[pos + 7 : end])
            if error:
                return self._reject(error)
            self.accepted = True
            return data[pos:end]

    def _check_rtu(self, data: bytes) -> bytes:
        if len(data) < 5:  # the shortest reply: an exception (unit, fc, code, CRC)
            self.problem = f"a frame cut short ({len(data)} bytes)"
            return b""
        fc = data[1]
        if fc & 0x80 and (fc & 0x7F) in READ_FUNCTIONS:
            size = 5
        elif fc in READ_FUNCTIONS:
            size = data[2] + 5
        else:
            self.problem = "bytes that are no Modbus reply"
            return b""
        if len(data) < size:
            self.problem = f"a frame cut short ({len(data)} of {size} bytes)"
            return b""
        crc = int.from_bytes(data[size - 2 : size], "big")
        if not FramerRTU.check_CRC(data[: size - 2], crc):
            self.problem = "a frame with a wrong CRC"
            return b""
        if len(data) > size:
            return self._reject(
                f"{len(data) - size} trailing bytes after the reply frame", garbled=True
            )
        error = self._check_pdu(data[0], data[1 : size - 2])
        if error:
            return self._reject(error)
        self.accepted = True
        return data

    def _check_pdu(self, unit: int, pdu: bytes) -> str:
        """Why ``pdu`` from ``unit`` does not answer the request; "" when it does."""
        if self.unit and unit != self.unit:
            return f"a reply from unit {unit} to a request for unit {self.unit}"
        if not pdu:
            return "an empty reply"
        fc = pdu[0]
        if fc == self.fc | 0x80:
            return "" if len(pdu) == 2 else f"an exception reply of {len(pdu)} bytes (2 expected)"
        if fc != self.fc:
            return (
                f"function code {fc} in reply to function code {self.fc} "
                f"({READ_FUNCTIONS[self.fc]})"
            )
        if len(pdu) < 2:
            return "a reply cut short before its byte count"
        byte_count = pdu[1]
        if byte_count != 2 * self.count:
            return (
                f"byte count {byte_count} in reply to a read of {self.count} registers "
                f"({2 * self.count} expected)"
            )
        if len(pdu) - 2 != byte_count:
            return f"byte count {byte_count} but {len(pdu) - 2} data bytes"
        return ""

    def _reject(self, reason: str, garbled: bool = False) -> bytes:
        self.rejected = reason
        self.rejects += 1
        future = getattr(self.ctx, "response_future", None)
        if future is not None and not future.done():
            future.set_exception(ReplyRejected(reason, garbled))
        return b""

    def silence_problem(self) -> str:
        """After a timeout: what arrived instead of a reply ("" when nothing did)."""
        if not self.received:
            return ""
        self.garbled += 1
        return self.problem or "bytes that never formed a complete reply"

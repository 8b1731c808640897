"""A Modbus/TCP server that lies: raw MBAP bytes on an asyncio socket, no pymodbus.

pymodbus's own server can only send well-formed replies, so the agent's reply checks are
tested against this one. Each request (FC03/FC04) is answered by a *lie* — a function that
turns the request into the bytes sent back — chosen in turn from ``lies``:

    wrong_fc        an FC03 answer to an FC04 request (and FC04 to FC03)
    wrong_unit      the reply carries another unit id
    count_long      the byte count says more than the data that follows
    count_short     the byte count says less (the data is longer)
    wrong_count     a consistent reply with a different number of registers
    truncated_pdu   the PDU stops after the byte count (MBAP length says so)
    length_long     the MBAP length covers bytes after the PDU
    trailing        a correct frame followed by junk bytes
    cut_frame       the frame stops before the length its header announces
    garbage         random bytes

Every lie carries registers that decode (f32) to :data:`POISON`, so a test can prove no
lie was ever published as a value. ``respond`` may be any function (request → bytes), e.g.
bytes drawn by hypothesis.

    server = LyingModbusServer(["wrong_fc", "trailing"])
    port = await server.start()
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Callable, Sequence

POISON = 12345.0  # every lie's registers decode (float32, big endian) to this
POISON_WORDS = struct.unpack(">HH", struct.pack(">f", POISON))


def _parse(request: bytes) -> tuple[int, int, int, int]:
    """(tid, unit, function code, register count) of an MBAP read request."""
    tid = int.from_bytes(request[0:2], "big")
    return tid, request[6], request[7], int.from_bytes(request[10:12], "big")


def mbap(tid: int, unit: int, pdu: bytes, length: int | None = None) -> bytes:
    """An MBAP frame; ``length`` overrides the header's length field (for lies)."""
    n = len(pdu) + 1 if length is None else length
    return tid.to_bytes(2, "big") + b"\x00\x00" + n.to_bytes(2, "big") + bytes([unit]) + pdu


def _data(count: int) -> bytes:
    words = [POISON_WORDS[i % 2] for i in range(count)]
    return b"".join(w.to_bytes(2, "big") for w in words)


def correct_reply(request: bytes) -> bytes:
    tid, unit, fc, count = _parse(request)
    return mbap(tid, unit, bytes([fc, 2 * count]) + _data(count))


def _lie(name: str, request: bytes, rng: random.Random) -> bytes:
    tid, unit, fc, count = _parse(request)
    data = _data(count)
    if name == "wrong_fc":
        return mbap(tid, unit, bytes([7 - fc, 2 * count]) + data)  # 3 <-> 4
    if name == "wrong_unit":
        return mbap(tid, (unit % 247) + 1, bytes([fc, 2 * count]) + data)
    if name == "count_long":
        return mbap(tid, unit, bytes([fc, 2 * count + 2]) + data)
    if name == "count_short":
        return mbap(tid, unit, bytes([fc, 2 * count - 2]) + data)
    if name == "wrong_count":
        more = _data(count + 2)
        return mbap(tid, unit, bytes([fc, len(more)]) + more)
    if name == "truncated_pdu":
        return mbap(tid, unit, bytes([fc, 2 * count]))
    if name == "length_long":
        pdu = bytes([fc, 2 * count]) + data + b"\x00\x00"
        return mbap(tid, unit, pdu)
    if name == "trailing":
        return correct_reply(request) + b"\x01\x02\x03"
    if name == "cut_frame":
        return correct_reply(request)[: 9 + count]
    if name == "garbage":
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    raise ValueError(f"unknown lie {name!r}")


LIES = (
    "wrong_fc",
    "wrong_unit",
    "count_long",
    "count_short",
    "wrong_count",
    "truncated_pdu",
    "length_long",
    "trailing",
    "cut_frame",
    "garbage",
)


class LyingModbusServer:
    """Answers every Modbus/TCP read with the next lie (or ``respond(request)``)."""

    def __init__(
        self,
        lies: Sequence[str] = LIES,
        respond: Callable[[bytes], bytes] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        rtu: bool = False,
        hold: Callable[[bytes], float] | None = None,
    ) -> None:
        """``rtu``: requests come as RTU frames over TCP (8 bytes each, for ``respond``).
        ``hold(request)``: seconds to wait before answering (a late reply)."""
        self.hold = hold
        self.lies = list(lies)
        self.respond = respond
        self.host = host
        self.port = port
        self.rng = random.Random(seed)
        self.rtu = rtu
        self.sent: dict[str, int] = {}  # lie -> replies sent
        self.requests = 0
        self.last_request = b""
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    def reply(self, request: bytes) -> bytes:
        if self.respond is not None:
            self.sent["custom"] = self.sent.get("custom", 0) + 1
            return self.respond(request)
        name = self.lies[self.requests % len(self.lies)]
        self.sent[name] = self.sent.get(name, 0) + 1
        return _lie(name, request, self.rng)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            while True:
                if self.rtu:  # a read request: unit, fc, start, count, CRC
                    request = await reader.readexactly(8)
                else:
                    head = await reader.readexactly(6)
                    body = await reader.readexactly(int.from_bytes(head[4:6], "big"))
                    request = head + body
                self.last_request = request
                out = self.reply(request)
                self.requests += 1
                delay = self.hold(request) if self.hold is not None else 0.0
                if delay:
                    await asyncio.sleep(delay)
                if out:
                    writer.write(out)  # one write: a lie arrives in one piece on loopback
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._handlers.discard(task)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            if self._handlers:
                await asyncio.wait(list(self._handlers))
            await self._server.wait_closed()
            self._server = None


def main() -> None:
    """``python -m vatio.simulators.lying_modbus PORT [LIE,…]``: serve until killed (tests)."""
    import sys

    port = int(sys.argv[1])
    lies = sys.argv[2].split(",") if len(sys.argv) > 2 else list(LIES)

    async def run() -> None:
        server = LyingModbusServer(lies, port=port)
        await server.start()
        print(f"lying Modbus/TCP server on 127.0.0.1:{server.port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()

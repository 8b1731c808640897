"""Modbus replies are held to their request (drivers/modbus/replycheck.py), on real sockets.

A raw-bytes server (simulators/lying_modbus.py) answers the agent's own transport with
wrong function codes, unit ids, byte counts and lengths, truncated and trailing frames, and,
in the fuzz test, with whatever bytes hypothesis draws. Every reply must be either the
correct one (accepted, with exactly its registers) or a DeviceError; never another
exception, never a value from a wrong reply, never a traceback in the log.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU

from vatio.common.links import TcpEndpoint
from vatio.drivers.modbus.profile import RegisterType
from vatio.drivers.modbus.transport import ModbusTransport
from vatio.drivers.reading import BadReply, DeviceError, DeviceExceptionReply
from vatio.simulators.lying_modbus import LIES, POISON_WORDS, LyingModbusServer, correct_reply

UNIT, COUNT = 1, 3


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_every_lie_is_a_bad_reply_and_nothing_is_decoded(caplog):
    async def run() -> tuple[dict[str, int], int, list[str]]:
        server = LyingModbusServer()
        port = await server.start()
        bus = ModbusTransport(
            "liar", TcpEndpoint("127.0.0.1", port), timeout=0.2, retries=0,
            keep_open_on_silence=True,
        )  # fmt: skip
        accepted = 0
        reasons: list[str] = []
        try:
            for i in range(3 * len(LIES)):
                rtype = RegisterType.INPUT if (i + i // len(LIES)) % 2 else RegisterType.HOLDING
                try:
                    await bus.read(rtype, 0, 4, UNIT)
                    accepted += 1
                except BadReply as exc:
                    reasons.append(str(exc))
        finally:
            bus.close()
            await server.stop()
        return server.sent, accepted, reasons

    with caplog.at_level(logging.DEBUG):
        sent, accepted, reasons = asyncio.run(run())
    assert sum(sent.values()) == 3 * len(LIES) and set(sent) == set(LIES)
    assert accepted == 0 and len(reasons) == 3 * len(LIES)
    joined = "\n".join(reasons)
    for words in (
        "function code 4 in reply to function code 3",
        "function code 3 in reply to function code 4",
        "a reply from unit 2 to a request for unit 1",
        "byte count 10 in reply to a read of 4 registers",
        "byte count 6 in reply to a read of 4 registers",
        "byte count 8 but 0 data bytes",
        "byte count 8 but 10 data bytes",
        "3 trailing bytes after the reply frame",
        "a frame cut short",
    ):
        assert words in joined, words
    assert not [r for r in caplog.records if r.exc_info or "data_received" in r.getMessage()]


# --- fuzz: any bytes for one request ---------------------------------------------------------


@st.composite
def replies(draw: st.DrawFn, rtu: bool) -> dict[str, object]:
    """A reply as fields around the correct one (near misses find the edge cases), or
    plain random bytes."""
    kind = draw(st.sampled_from(["raw", "correct", "near", "near"]))
    if kind == "raw":
        return {"raw": draw(st.binary(max_size=40))}
    if kind == "correct":  # the right reply, any register values
        data = draw(st.binary(min_size=2 * COUNT, max_size=2 * COUNT))
        fields: dict[str, object] = {"unit": UNIT, "fc": 4, "body": bytes([2 * COUNT]) + data}
        fields.update(cut=0, trailing=b"", crc_ok=True, tid_ok=True, pid=0, length_delta=0)
        return fields
    exception = draw(st.booleans())
    count = COUNT if draw(st.booleans()) else draw(st.integers(0, 6))
    data = draw(st.binary(min_size=2 * count, max_size=2 * count))
    fields = {
        "unit": draw(st.sampled_from([UNIT, UNIT, 2, 0, 255])),
        "fc": draw(st.sampled_from([0x84, 0x83]) if exception else st.sampled_from([4, 4, 3, 6])),
        "body": (
            bytes([draw(st.integers(0, 11))])
            if exception
            else bytes([draw(st.sampled_from([2 * COUNT, 2 * count, 2 * count + 2, 0, 255]))])
            + data
        ),
        "cut": draw(st.sampled_from([0, 0, 0, 1, 3])),  # bytes cut off the end
        "trailing": draw(st.sampled_from([b"", b"", b"\x00", b"\x01\x02\x03"])),
    }
    if rtu:
        fields["crc_ok"] = draw(st.booleans()) or draw(st.booleans())
    else:
        fields["tid_ok"] = draw(st.booleans()) or draw(st.booleans())
        fields["pid"] = draw(st.sampled_from([0, 0, 0, 1]))
        fields["length_delta"] = draw(st.sampled_from([0, 0, 0, -1, 1, 5]))
    return fields


def build(fields: dict[str, object], request: bytes, rtu: bool) -> bytes:
    if "raw" in fields:
        return fields["raw"]  # type: ignore[return-value]
    pdu = bytes([fields["fc"]]) + fields["body"]  # type: ignore[operator, list-item]
    if rtu:
        frame = bytes([fields["unit"]]) + pdu  # type: ignore[list-item]
        crc = FramerRTU.compute_CRC(frame) ^ (0 if fields["crc_ok"] else 0x5A5A)
        frame += crc.to_bytes(2, "big")
    else:
        tid = int.from_bytes(request[0:2], "big") + (0 if fields["tid_ok"] else 7)
        length = len(pdu) + 1 + int(fields["length_delta"])  # type: ignore[call-overload]
        frame = (
            (tid & 0xFFFF).to_bytes(2, "big")
            + int(fields["pid"]).to_bytes(2, "big")  # type: ignore[call-overload]
            + max(length, 0).to_bytes(2, "big")
            + bytes([fields["unit"]])  # type: ignore[list-item]
            + pdu
        )
    cut = int(fields["cut"])  # type: ignore[call-overload]
    return frame[: len(frame) - cut] + fields["trailing"]  # type: ignore[operator]


def verdict(reply: bytes, request: bytes, rtu: bool) -> tuple[str, list[int] | int | None]:
    """What a correct client must do with ``reply``: ("ok", registers), ("exception",
    code) or ("reject", None). Written from the Modbus spec, not from the code under test."""
    if rtu:
        if len(reply) < 5 or FramerRTU.compute_CRC(reply[:-2]) != int.from_bytes(reply[-2:], "big"):
            return "reject", None
        unit, pdu = reply[0], reply[1:-2]
    else:
        if len(reply) < 8 or reply[0:2] != request[0:2] or reply[2:4] != b"\x00\x00":
            return "reject", None
        if int.from_bytes(reply[4:6], "big") != len(reply) - 6:
            return "reject", None
        unit, pdu = reply[6], reply[7:]
    if unit != UNIT:
        return "reject", None
    if len(pdu) == 2 and pdu[0] == 0x84:
        return "exception", pdu[1]
    if len(pdu) == 2 + 2 * COUNT and pdu[0] == 4 and pdu[1] == 2 * COUNT:
        return "ok", [int.from_bytes(pdu[i : i + 2], "big") for i in range(2, len(pdu), 2)]
    return "reject", None


@pytest.mark.parametrize("rtu", [False, True], ids=["modbus-tcp", "rtu-over-tcp"])
def test_fuzz_any_reply_is_the_right_one_or_a_device_error(rtu, loop, caplog):
    current: dict[str, object] = {}
    server = LyingModbusServer(respond=lambda req: build(current, req, rtu), rtu=rtu)
    port = loop.run_until_complete(server.start())
    bus = ModbusTransport(
        "fuzz", TcpEndpoint("127.0.0.1", port, rtu_framing=rtu), timeout=0.1, retries=0,
        keep_open_on_silence=True,
    )  # fmt: skip
    tally = {"tried": 0, "accepted": 0, "exception": 0, "rejected": 0, "wrong": 0}

    @settings(
        max_examples=120,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(replies(rtu))
    def check(fields: dict[str, object]) -> None:
        current.clear()
        current.update(fields)
        tally["tried"] += 1
        try:
            regs = loop.run_until_complete(bus.read(RegisterType.INPUT, 0, COUNT, UNIT))
            outcome: tuple[str, object] = ("ok", regs)
        except DeviceExceptionReply as exc:
            outcome = ("exception", exc.exception_code)
        except DeviceError:
            outcome = ("reject", None)
        # the request the server saw is the one pymodbus just sent: rebuild the reply
        request = server.last_request
        expected = verdict(build(fields, request, rtu), request, rtu)
        tally[{"ok": "accepted", "exception": "exception", "reject": "rejected"}[outcome[0]]] += 1
        if outcome[0] != "reject" and outcome != expected:
            tally["wrong"] += 1
        assert outcome == expected or (outcome[0] == "reject" and expected[0] == "reject")

    with caplog.at_level(logging.DEBUG):
        try:
            check()
        finally:
            bus.close()
            loop.run_until_complete(server.stop())
    print(f"fuzz {'rtu' if rtu else 'mbap'}: {tally}")
    assert tally["wrong"] == 0 and tally["tried"] >= 100
    assert tally["accepted"] and tally["rejected"]  # both kinds were exercised
    assert not [r for r in caplog.records if r.exc_info or "data_received" in r.getMessage()]


def test_a_correct_reply_decodes_to_its_registers(loop):
    server = LyingModbusServer(respond=correct_reply)
    port = loop.run_until_complete(server.start())
    bus = ModbusTransport("ok", TcpEndpoint("127.0.0.1", port), timeout=0.5, retries=0)
    try:
        regs = loop.run_until_complete(bus.read(RegisterType.HOLDING, 10, 4, UNIT))
    finally:
        bus.close()
        loop.run_until_complete(server.stop())
    assert regs == [POISON_WORDS[0], POISON_WORDS[1]] * 2
    assert struct.unpack(">f", struct.pack(">HH", *regs[:2]))[0] == 12345.0


def test_a_late_reply_is_never_taken_for_the_next_reads_answer(loop):
    """RTU frames carry no transaction id: a reply that comes after its timeout lands in
    the next read. Its register count gives it away; it is refused, never decoded."""
    rtu_reply = FramerRTU(None)  # type: ignore[arg-type]  # only its encode() is used

    def answer(request: bytes) -> bytes:
        count = int.from_bytes(request[4:6], "big")
        pdu = bytes([request[1], 2 * count]) + b"\x11\x11" * count
        return rtu_reply.encode(pdu, request[0], 0)

    # the 2-register read is answered after 0.3 s (its timeout is 0.2 s), the rest at once
    server = LyingModbusServer(respond=answer, rtu=True, hold=lambda r: 0.3 if r[5] == 2 else 0.0)
    port = loop.run_until_complete(server.start())
    bus = ModbusTransport(
        "late", TcpEndpoint("127.0.0.1", port, rtu_framing=True), timeout=0.2, retries=0,
        keep_open_on_silence=True,
    )  # fmt: skip
    outcomes: list[str] = []
    try:
        for count in (2, 10):
            try:
                regs = loop.run_until_complete(bus.read(RegisterType.INPUT, 0, count, UNIT))
                outcomes.append(f"{len(regs)} registers")
            except DeviceError as exc:
                outcomes.append(type(exc).__name__ + ": " + str(exc))
    finally:
        bus.close()
        loop.run_until_complete(server.stop())
    assert outcomes[0].startswith("DeviceTimeout")
    # the late 2-register reply arrives while the 10-register read waits (here together
    # with the right one, which the server sends straight after it): refused, not decoded
    assert outcomes[1].startswith(("BadReply", "GarbledReply")), outcomes

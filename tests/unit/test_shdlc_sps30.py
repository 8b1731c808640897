"""SHDLC framing and SPS30 replies against published frames, and bad input.

Frame sources (hex as published; checksums recomputed by hand where noted):
* MOSI commands: the SPS30 datasheet V1.0 §5.3 examples, as also used by Sensirion's drivers
  and public test suites (MasandeM/SPS30_golang ``sps30_test.go``);
* ``ZEROS``: the datasheet's read-measured-values example (40 zero bytes, checksum D4);
* ``CAPTURED``: a real read-measured-values reply from MasandeM/SPS30_golang, with a stuffed
  7E (``7D 5E``) inside the data;
* ``WAKE_REFUSED``: a real reply (raspberrypi.stackexchange.com question 137657) with a
  stuffed 0x11 command byte and state 0x43;
* ``PRODUCT``: the product-type reply from the same thread's chat ("00080000").
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vatio.drivers.uart import shdlc, sps30
from vatio.drivers.uart.frames import FrameScanner

ZEROS = bytes.fromhex("7E00030028" + "00" * 40 + "D47E")
CAPTURED = bytes.fromhex(
    "7e000300283d2001e33d5adecf3d81cc533d8c48ae3e73397d5e3e97b9033e9e8b9f3e9ff1713ea04e18"
    "3f3650125a7e"
)
WAKE_REFUSED = bytes.fromhex("7e007d314300ab7e")
PRODUCT = bytes.fromhex("7e00d000093030303830303030009e7e")
VERSION = bytes.fromhex("7e00d1000702 7d31 0007000200 0b7e".replace(" ", ""))
STATUS = bytes.fromhex("7e00d20005000000000028 7e".replace(" ", ""))


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (sps30.start_measurement(), "7E 00 00 02 01 03 F9 7E"),
        (sps30.stop_measurement(), "7E 00 01 00 FE 7E"),
        (sps30.read_measured_values(), "7E 00 03 00 FC 7E"),
        # the checksum is 7E itself: stuffed to 7D 5E
        (sps30.read_auto_cleaning_interval(), "7E 00 80 01 00 7D 5E 7E"),
        (sps30.start_fan_cleaning(), "7E 00 56 00 A9 7E"),
        (sps30.device_information(sps30.INFO_PRODUCT_TYPE), "7E 00 D0 01 00 2E 7E"),
        (sps30.device_information(sps30.INFO_SERIAL_NUMBER), "7E 00 D0 01 03 2B 7E"),
        (sps30.read_status_register(), "7E 00 D2 01 00 2C 7E"),
        (shdlc.mosi(sps30.RESET), "7E 00 D3 00 2C 7E"),
        (shdlc.mosi(0x11), "7E 00 7D 31 00 EE 7E"),  # wake-up: a stuffed command byte
    ],
)
def test_requests_match_the_published_frames(frame, expected):
    assert frame == bytes.fromhex(expected)


def test_write_auto_cleaning_interval_frame():
    # 4 days = 345600 s = 00 05 46 00; checksum ~(80+05+00+00+05+46+00) & FF = 0x2F
    assert sps30.write_auto_cleaning_interval(345_600) == bytes.fromhex(
        "7E 00 80 05 00 00 05 46 00 2F 7E"
    )


def test_zero_values_example_decodes():
    reply = shdlc.decode_miso(ZEROS)
    assert (reply.command, reply.state, len(reply.data)) == (0x03, 0, 40)
    m = sps30.parse_measured_values(reply.data)
    assert m is not None and set(m.values.values()) == {0.0}


def test_captured_reply_with_stuffing_decodes():
    reply = shdlc.decode_miso(CAPTURED)
    assert reply.state == 0 and len(reply.data) == 40
    m = sps30.parse_measured_values(reply.data)
    assert m is not None
    assert list(m.values) == list(sps30.QUANTITIES)
    assert m.values["pm2_5_ugm3"] == pytest.approx(0.05343, abs=1e-5)
    assert m.values["nc0_5_per_cm3"] == pytest.approx(0.23752, abs=1e-5)
    assert m.values["typical_particle_size_um"] == pytest.approx(0.71216, abs=1e-5)
    # NC0.5 is the float that holds the stuffed byte: 3E 73 39 7E, sent as 3E 73 39 7D 5E
    assert struct.pack(">f", m.values["nc0_5_per_cm3"]) == bytes.fromhex("3e73397e")


def test_state_byte_is_decoded_not_rejected():
    reply = shdlc.decode_miso(WAKE_REFUSED)
    assert (reply.command, reply.error_code, reply.data) == (0x11, 0x43, b"")
    assert reply.describe_state() == "error 0x43: command not allowed in current state"
    flagged = shdlc.decode_miso(shdlc.miso(0x03, b"", state=0x80))
    assert flagged.status_flag and flagged.error_code == 0
    assert "device status register" in flagged.describe_state()


def test_device_information_version_and_status_replies():
    assert sps30.parse_string(shdlc.decode_miso(PRODUCT).data) == sps30.PRODUCT_TYPE
    assert shdlc.decode_miso(VERSION).data == bytes([0x02, 0x11, 0x00, 0x07, 0x00, 0x02, 0x00])
    assert sps30.parse_status_register(shdlc.decode_miso(STATUS).data) == 0


def test_status_register_bits_in_words():
    assert sps30.describe_status(0) == ""
    text = sps30.describe_status(1 << 21 | 1 << 4)
    assert "fan speed out of range" in text and "fan failure" in text
    assert "laser" not in text


def test_encode_and_decode_replies_round_trip():
    values = dict(
        zip(sps30.QUANTITIES, (3.97, 15.84, 15.88, 63.5, 1, 2, 3, 4, 5, 0.99), strict=True)
    )
    frame = shdlc.miso(sps30.READ_MEASURED_VALUES, sps30.encode_measured_values(values))
    assert b"\x7d\x5e" in frame and b"\x7d\x5d" in frame  # 7E and 7D inside, stuffed
    assert frame.count(b"\x7e") == 2
    m = sps30.parse_measured_values(shdlc.decode_miso(frame).data)
    assert m is not None
    assert m.values == pytest.approx(values, rel=1e-6)


@pytest.mark.parametrize(
    ("frame", "reason", "offset"),
    [
        (CAPTURED[:-2] + bytes([CAPTURED[-2] ^ 1]) + b"\x7e", "checksum 0x5B, computed 0x5A", 46),
        # 7D 00 is no escape sequence
        (bytes.fromhex("7E 00 03 00 02 7D 00 00 F9 7E"), "bad byte stuffing", 6),
        (bytes.fromhex("7E 00 03 00 02 00 7D 7E"), "escape sequence", 6),
        (bytes.fromhex("7E 00 03 00 05 00 F7 7E"), "length byte says 5", 4),
        (bytes.fromhex("7E 00 03 7E"), "too short", None),
        (bytes.fromhex("00 00 03 00 00 FC 7E"), "does not start with 7E", 0),
        (bytes.fromhex("7E 00 03 00 00 FC 00"), "does not end with 7E", 6),
        (b"\x7e" + b"\x00" * 600 + b"\x7e", "longer than SHDLC's maximum of 522", 522),
    ],
)
def test_bad_frames_name_the_fault_and_its_byte(frame, reason, offset):
    with pytest.raises(shdlc.ShdlcError) as err:
        shdlc.decode_miso(frame)
    assert reason in str(err.value)
    assert err.value.offset == offset
    if offset is not None:
        assert f"(byte {offset} of the frame)" in str(err.value)


def test_wrong_length_of_measured_values_is_an_error_not_a_crash():
    with pytest.raises(shdlc.ShdlcError, match="40 bytes in float format"):
        sps30.parse_measured_values(bytes(20))
    assert sps30.parse_measured_values(b"") is None  # no new values


def scanner() -> tuple[FrameScanner, shdlc.MisoReceiver]:
    rx = shdlc.MisoReceiver()
    return FrameScanner(rx.header, rx.length, rx.valid), rx


def test_scanner_resyncs_after_garbage_half_frames_and_bad_checksums():
    sc, rx = scanner()
    bad = ZEROS[:-2] + b"\x00\x7e"
    stream = b"\x13\x7e\x01\x02" + CAPTURED[10:] + bad + ZEROS + b"\xff" * 5 + CAPTURED
    got = []
    for i in range(0, len(stream), 7):
        got += sc.feed(stream[i : i + 7])
    assert got == [ZEROS, CAPTURED]
    assert rx.last_error is not None and "checksum" in str(rx.last_error)


def test_scanner_drops_a_run_longer_than_shdlc_allows_and_finds_the_next_frame():
    sc, rx = scanner()
    got = sc.feed(b"\x7e" + b"\x55" * 700 + ZEROS)
    assert got == [ZEROS]
    assert rx.rejected >= 1 and "longer than SHDLC" in str(rx.last_error)


@given(st.binary(max_size=64))
def test_stuffing_round_trips_and_hides_every_flag(body):
    stuffed = shdlc.stuff(body)
    assert shdlc.FLAG not in stuffed
    assert shdlc.unstuff(stuffed) == body


@given(st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\x7e", b"")), max_size=6),
       st.integers(1, 20))  # fmt: skip
def test_every_reply_is_recovered_from_noise_in_any_chunking(noises, chunk):
    stream = b"".join(noise + CAPTURED for noise in noises)
    sc, _ = scanner()
    got = []
    for i in range(0, len(stream), chunk):
        got += sc.feed(stream[i : i + chunk])
    assert got == [CAPTURED] * len(noises)

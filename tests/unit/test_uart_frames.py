"""UART sensor frames against the worked frames of domain.md §5, and resynchronisation."""

from hypothesis import given
from hypothesis import strategies as st

from vatio.drivers.uart import mhz19, pms5003, sds011
from vatio.drivers.uart.frames import FrameScanner

SDS = bytes.fromhex("AAC0D4043A0AA1601DAB")  # bertrik test frame: 123.6 / 261.8
PMS = bytes.fromhex("424d001c00000008000800000008000800d20046002d001e00000000970002c5")
MHZ = bytes.fromhex("ff86028a44000000aa")  # 650 ppm


def sds_scanner() -> FrameScanner:
    return FrameScanner(bytes([sds011.HEAD]), sds011.frame_length, sds011.frame_valid)


def test_sds011_worked_frames():
    assert sds011.frame_valid(SDS)
    r = sds011.parse_data(SDS)
    assert (r.pm2_5, r.pm10, r.device_id) == (123.6, 261.8, 0x60A1)
    other = sds011.parse_data(bytes.fromhex("AAC0E510BF140101CAAB"))  # sds011lib emulator
    assert (other.pm2_5, other.pm10) == (432.5, 531.1)
    assert sds011.data_frame(123.6, 261.8, 0x60A1) == SDS


def test_sds011_commands_match_the_reference():
    assert sds011.QUERY.hex() == "aab404000000000000000000000000ffff02ab"
    assert sds011.SET_QUERY_MODE.hex() == "aab402010100000000000000000000ffff02ab"
    assert sds011.SET_ACTIVE_MODE.hex() == "aab402010000000000000000000000ffff01ab"
    assert sds011.SLEEP.hex() == "aab406010000000000000000000000ffff05ab"  # not "awaken"
    assert sds011.WAKE.hex() == "aab406010100000000000000000000ffff06ab"


def test_sds011_rejects_a_bad_checksum():
    assert not sds011.frame_valid(SDS[:8] + bytes([SDS[8] ^ 1]) + SDS[9:])


def test_pms5003_worked_frame_and_commands():
    assert pms5003.frame_valid(PMS)
    r = pms5003.parse(PMS)
    assert (r.pm1_0_cf1, r.pm2_5_cf1, r.pm10_cf1) == (0, 8, 8)
    assert (r.pm1_0, r.pm2_5, r.pm10) == (0, 8, 8)
    assert r.counts == (210, 70, 45, 30, 0, 0)
    assert pms5003.SET_PASSIVE.hex() == "424de100000170"
    assert pms5003.SET_ACTIVE.hex() == "424de100010171"
    assert pms5003.READ.hex() == "424de200000171"
    assert pms5003.SLEEP.hex() == "424de400000173"
    assert pms5003.WAKE.hex() == "424de400010174"


def test_mhz19b_worked_reply():
    assert mhz19.frame_valid(MHZ)
    assert mhz19.parse_co2(MHZ) == 650
    assert mhz19.READ_CO2.hex() == "ff0186000000000079"
    assert mhz19.reply(650) == MHZ


def test_scanner_skips_noise_and_half_frames_and_survives_splits():
    sc = sds_scanner()
    got = sc.feed(b"\x00\x13" + SDS[:4])  # noise, then half a frame…
    got += sc.feed(SDS[4:7])
    got += sc.feed(SDS[7:] + SDS[:5] + SDS)  # …its end, a cut-off frame, a whole frame
    assert got == [SDS, SDS]
    assert sc.stats.frames == 2
    assert sc.stats.noise_bytes >= 2


def test_scanner_counts_bad_checksums_and_finds_the_next_frame():
    sc = sds_scanner()
    bad = SDS[:8] + bytes([SDS[8] ^ 0xFF]) + SDS[9:]
    assert sc.feed(bad + SDS) == [SDS]
    assert sc.stats.bad_frames >= 1


def test_scanner_memory_is_bounded_on_a_line_of_garbage():
    sc = FrameScanner(pms5003.HEADER, pms5003.frame_length, pms5003.frame_valid)
    for _ in range(100):
        sc.feed(bytes(range(256)))
    assert len(sc._buf) < 64


@given(st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\xaa", b"")), max_size=8),
       st.integers(1, 17))  # fmt: skip
def test_every_frame_is_recovered_from_noise_in_any_chunking(noises, chunk):
    stream = b"".join(noise + SDS for noise in noises)
    sc = sds_scanner()
    got = []
    for i in range(0, len(stream), chunk):
        got += sc.feed(stream[i : i + chunk])
    assert got == [SDS] * len(noises)


# A PMSx003 capture from avaldebe/PyPMS docs/sensors/Plantower.md (PyPMS reads the PMS5003,
# PMS7003 and PMSA003 with one message class): word 13 = 97 00, version 0x97, error code 0
PMSX = bytes.fromhex(
    "42 4d 00 1c 00 00 00 05 00 05 00 00 00 05 00 0500 8a 00 2e 00 17 00 0f 00 00 00 00 97 00 02 34"
)


def test_pms7003_frame_version_and_error_code():
    assert pms5003.frame_valid(PMSX)
    r = pms5003.parse(PMSX)
    assert (r.pm1_0_cf1, r.pm2_5_cf1, r.pm10_cf1, r.pm1_0, r.pm2_5, r.pm10) == (0, 5, 5, 0, 5, 5)
    assert r.counts == (138, 46, 23, 15, 0, 0)
    assert (r.version, r.error_code) == (0x97, 0)
    faulty = pms5003.data_frame((1, 2, 3), word13=0x9103)
    assert pms5003.frame_valid(faulty)
    assert (pms5003.parse(faulty).version, pms5003.parse(faulty).error_code) == (0x91, 3)
    assert faulty[pms5003.ERROR_OFFSET] == 3


def test_plantower_checksum_errors_and_resync():
    sc = FrameScanner(pms5003.HEADER, pms5003.frame_length, pms5003.frame_valid)
    bad = PMSX[:30] + bytes([PMSX[30], PMSX[31] ^ 0x10])
    # garbage holding a false header, a frame with a broken checksum, a good frame
    got = sc.feed(b"\x42\x4d\x00\x99\x13" + bad + b"\x00\x42" + PMSX)
    assert got == [PMSX]
    assert sc.stats.bad_frames >= 2

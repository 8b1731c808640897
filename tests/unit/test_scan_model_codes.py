"""Meters with the same register layout told apart by their model code (Carlo Gavazzi's
identification code at 0x000B): how `vatio scan` ranks them, and how the simulator serves the
code and splits a map spread over the address space into blocks."""

from __future__ import annotations

import pytest

from vatio.agent.scan import scan
from vatio.drivers.modbus.profile import RegisterType, load_profile
from vatio.drivers.modbus.register_codec import encode
from vatio.drivers.reading import DeviceExceptionReply
from vatio.simulators.modbus_server import SimulatedMeter, _blocks


class ImageBus:
    """One unit answering from a register image; anything else is 'illegal address'."""

    def __init__(self, image: dict[tuple[RegisterType, int], int]) -> None:
        self.image = image

    async def read(self, rtype: RegisterType, start: int, count: int, unit: int) -> list[int]:
        try:
            return [self.image[(rtype, a)] for a in range(start, start + count)]
        except KeyError:
            raise DeviceExceptionReply("illegal data address", 2) from None


def carlo_gavazzi_image(code: int | None) -> dict[tuple[RegisterType, int], int]:
    """A three-phase meter of the EM24/EM340 layout at 230 V, 50 Hz, and its code."""
    profile = load_profile("carlo_gavazzi_em340")
    values = {"voltage_l1_v": 230.0, "voltage_l1_l2_v": 398.4, "frequency_hz": 50.0}
    image: dict[tuple[RegisterType, int], int] = {}
    for p in profile.points:
        words = encode(values.get(p.quantity, 0.0), p.data_type, p.word_order, p.byte_order,
                       p.scale, p.offset)  # fmt: skip
        for i, w in enumerate(words):
            image[(p.register_type, p.address + i)] = w
    if code is not None:
        image[(RegisterType.HOLDING, 0x000B)] = code
    return image


@pytest.mark.parametrize(
    "code,named",
    [
        (341, ["carlo_gavazzi_em340"]),
        (345, ["carlo_gavazzi_et340"]),
        # an EM24's code: both EM340 profiles are ruled out, the EM24 matches on ranges alone
        (1650, ["carlo_gavazzi_em24"]),
        # no code register at all: the same
        (None, ["carlo_gavazzi_em24"]),
    ],
)
async def test_scan_names_same_layout_meters_by_their_code(code, named):
    found = await scan(ImageBus(carlo_gavazzi_image(code)), range(1, 2), progress=False)  # type: ignore[arg-type]
    assert [f.profiles for f in found] == [named]
    assert found[0].values.get("model_code") == (code if named != ["carlo_gavazzi_em24"] else None)


async def test_the_simulator_serves_the_code_where_scan_reads_it():
    em340 = load_profile("carlo_gavazzi_em340")
    holding = [(b.address, b.count) for b in _blocks(em340, RegisterType.HOLDING)]
    assert holding == [(0, 1)]  # no polled holding register: the placeholder only
    meter = SimulatedMeter(1, em340, clock=lambda: 1_700_000_000.0)
    blocks = meter.sim_device().simdata[2]  # type: ignore[index]
    assert [(b.address, b.count) for b in blocks] == [(0, 1), (0x000B, 1)]
    registers = [0] * 12  # the holding image 0x0000-0x000B, as pymodbus hands it over
    assert await meter._on_access(3, 0x0000, 0x000B, 1, registers, None) is None
    assert registers[0x000B] == 340  # the low end of the signature's model_code range


def test_a_map_spread_over_the_address_space_is_served_in_blocks():
    dtsu = load_profile("chint_dtsu666")
    blocks = [(b.address, b.count) for b in _blocks(dtsu, RegisterType.HOLDING)]
    # energies at 0x101E-0x1029 and the 0x2000-0x2045 block (each with the one spare register
    # after it that a single block always had): two blocks, not one of 4k registers
    assert blocks == [(0x101E, 0x1029 - 0x101E + 2), (0x2000, 0x2045 - 0x2000 + 2)]

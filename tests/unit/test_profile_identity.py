"""Identity (model-code) registers: the profile schema, how `vatio scan` ranks them, and the
simulator serving them."""

from __future__ import annotations

import pytest

from vatio.agent.scan import rank, scan
from vatio.common.yamlconf import ConfigError, load_yaml_text
from vatio.drivers.modbus.profile import Profile, RegisterType, load_profile, profile_from_document
from vatio.drivers.modbus.register_codec import DataType, encode
from vatio.drivers.reading import DeviceExceptionReply
from vatio.simulators.modbus_server import SimulatedMeter, _blocks

PROFILE = """\
model: M
source: test
defaults: {register_type: input, data_type: i32, word_order: little}
registers:
  voltage_l1_v: {address: 0, scale: 0.1}
signature: {voltage_l1_v: [50, 500]}
identity:
  model_code: {address: 0x000B, register_type: holding, data_type: u16, values: [340, 341]}
"""


def parse(text: str) -> Profile:
    return profile_from_document(load_yaml_text(text, "test.yaml"), "test")


def test_identity_takes_its_own_decoding_and_the_profile_defaults():
    ident = parse(PROFILE).identity[0]
    assert (ident.name, ident.address, ident.register_type) == ("model_code", 11, "holding")
    assert ident.data_type is DataType.U16 and ident.word_order == "little"
    assert ident.values == (340, 341)


@pytest.mark.parametrize(
    "entry,message",
    [
        ("{address: 0x000B, values: []}", "values"),
        ("{address: 0xFFFF, data_type: u32, values: [1]}", "runs past address 0xFFFF"),
        ("{address: 11, values: [1], scale: 2}", "scale"),
    ],
)
def test_bad_identity_entries_are_located_errors(entry, message):
    text = PROFILE.replace(
        "{address: 0x000B, register_type: holding, data_type: u16, values: [340, 341]}", entry
    )
    with pytest.raises(ConfigError) as err:
        parse(text)
    assert "identity" in str(err.value) and message in str(err.value)


def test_a_model_code_outranks_any_number_of_values_in_range():
    assert rank(1, 1) > rank(0, 40)
    assert rank(1, 3) > rank(1, 2)


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
    """A three-phase EM24/EM340-layout meter at 230 V, 50 Hz, and its identification code."""
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
    ],
)
async def test_scan_names_same_layout_meters_by_their_code(code, named):
    found = await scan(ImageBus(carlo_gavazzi_image(code)), range(1, 2), progress=False)  # type: ignore[arg-type]
    assert [f.profiles for f in found] == [named]
    if code != 1650:
        assert found[0].values["model_code"] == code


async def test_without_a_code_register_the_identity_profiles_are_ruled_out():
    found = await scan(ImageBus(carlo_gavazzi_image(None)), range(1, 2), progress=False)  # type: ignore[arg-type]
    assert found[0].profiles == ["carlo_gavazzi_em24"]


async def test_the_simulator_serves_the_code_and_splits_far_apart_blocks():
    em340 = load_profile("carlo_gavazzi_em340")
    holding = _blocks(em340, RegisterType.HOLDING)
    assert [(b.address, b.count) for b in holding] == [(0x000A, 3)]  # from an even address
    dtsu = load_profile("chint_dtsu666")
    blocks = [(b.address, b.count) for b in _blocks(dtsu, RegisterType.HOLDING)]
    # energies at 0x101E-0x1029 and the 0x2000-0x2045 block (each with the one spare register
    # after it that a single block always had): two blocks, not one of 4k registers
    assert blocks == [(0x101E, 0x1029 - 0x101E + 2), (0x2000, 0x2045 - 0x2000 + 2)]
    meter = SimulatedMeter(1, em340, clock=lambda: 1_700_000_000.0)
    registers = [0, 0, 0]  # the holding image, 0x000A-0x000C
    assert await meter._on_access(3, 0x000A, 0x000B, 1, registers, None) is None
    assert registers == [0, 340, 0]  # the first of the profile's codes, at 0x000B

"""Every built-in profile: loads, names its source, has a signature and a golden case, is
planned at the minimum its limits allow, and `vatio scan` names a simulated meter of it.

A new profile that skips any of these fails here, by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.planner import min_requests
from vatio.agent import scan as scanning
from vatio.common.yamlconf import ConfigError, load_yaml_file
from vatio.drivers.modbus.planner import plan_reads
from vatio.drivers.modbus.profile import (
    Profile,
    RegisterType,
    builtin_profiles,
    load_profile,
    profile_from_document,
)
from vatio.drivers.modbus.register_codec import encode
from vatio.drivers.reading import DeviceExceptionReply
from vatio.simulators.modbus_server import SimulatedMeter

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
PROFILES = builtin_profiles()


def golden_profiles() -> set[str]:
    return {yaml.safe_load(f.read_text())["profile"] for f in GOLDEN.glob("*/case.yaml")}


def wire_signature(profile: Profile) -> frozenset[tuple[object, ...]]:
    """What `vatio scan` reads and checks for ``profile``: registers, decoding and ranges."""
    ranges = {q: (lo, hi) for q, lo, hi in profile.signature}
    return frozenset(
        (p.register_type, p.address, p.data_type, p.word_order, p.byte_order, p.scale,
         p.offset, *ranges[p.quantity])
        for p in profile.signature_points
    )  # fmt: skip


def test_there_are_the_mbmd_families():
    # issue 14: every family mbmd reads (the OR-WE-516 profile covers the WE-517)
    for name in (
        "abb_a43_a44", "abb_b23_b24", "dzg_dvh4013", "schneider_iem3000", "inepro_pro380",
        "janitza_b23_b24", "bernecker_mpm3pm", "orno_or_we_514", "orno_or_we_516",
        "saia_burgess_ale3", "eastron_sdm72", "eastron_sdm120", "eastron_sdm220",
        "eastron_sdm230", "eastron_sdm630",
    ):  # fmt: skip
        assert name in PROFILES


@pytest.mark.parametrize("name", PROFILES)
def test_profile_loads_names_a_source_and_has_a_signature(name: str):
    profile = load_profile(name)
    assert len(profile.source.split()) >= 5, "source: name the document (title, version, URL)"
    assert profile.signature, "signature: what `vatio scan` checks to name the model"
    assert {p.quantity for p in profile.signature_points} == {q for q, _, _ in profile.signature}


@pytest.mark.parametrize("name", PROFILES)
def test_profile_has_a_golden_case(name: str):
    assert name in golden_profiles(), f"add tests/golden/<case>/case.yaml for {name}"


def test_no_two_profiles_have_the_same_signature():
    seen: dict[frozenset[tuple[object, ...]], str] = {}
    for name in PROFILES:
        sig = wire_signature(load_profile(name))
        assert sig not in seen, f"{name} and {seen.get(sig)} have identical signatures"
        seen[sig] = name


@pytest.mark.parametrize("name", PROFILES)
def test_planned_at_the_minimum_the_limits_allow(name: str):
    profile = load_profile(name)
    assert len(plan_reads(profile.points, profile.limits)) == min_requests(
        profile.points, profile.limits
    )


def test_min_requests_is_a_real_bound():
    # SDM230 with 60 registers needs three requests where 80 would take two (0x00-0x4F, 0x156)
    sdm230 = load_profile("eastron_sdm230")
    wide = sdm230.limits.model_copy(update={"max_registers": 125})
    assert min_requests(sdm230.points, sdm230.limits) == 3
    assert min_requests(sdm230.points, wide) == 2
    dzg = load_profile("dzg_dvh4013")  # max_gap 0: the two energy counters stay apart
    assert min_requests(dzg.points, dzg.limits) == 3


class ImageBus:
    """A unit that answers from a register image and refuses any read touching a register
    it does not hold (exception 2), as a strict meter does."""

    def __init__(self, image: dict[tuple[RegisterType, int], int]) -> None:
        self.image = image

    async def read(self, rtype: RegisterType, start: int, count: int, unit: int) -> list[int]:
        try:
            return [self.image[(rtype, a)] for a in range(start, start + count)]
        except KeyError:
            raise DeviceExceptionReply("illegal data address", 2) from None


def image_of(profile: Profile, model_code: float | None = None) -> dict:
    """The registers a meter of ``profile`` holds: the simulator's values for its map, and
    its identify registers (``model_code`` overrides the model code)."""
    meter = SimulatedMeter(1, profile, seed=3, clock=lambda: 12 * 3600.0)
    values = meter.values_at(12 * 3600.0)
    image: dict[tuple[RegisterType, int], int] = {}
    expected = {q: lo for q, lo, _ in profile.signature}
    points = [(p, values[p.quantity]) for p in profile.points]
    for p in profile.identify:
        override = p.quantity == "model_code" and model_code is not None
        points.append((p, model_code if override else expected[p.quantity]))
    for p, value in points:
        words = encode(value, p.data_type, p.word_order, p.byte_order, p.scale, p.offset)
        for i, w in enumerate(words):
            image[(p.register_type, p.address + i)] = w
    return image


async def names(image: dict) -> list[str]:
    found = await scanning.scan(ImageBus(image), range(1, 2), progress=False)  # type: ignore[arg-type]
    return found[0].profiles if found else []


# Profiles that the registers on the wire cannot tell apart, as their files say.
TWINS = {
    "eastron_sdm630": {"eastron_sdm72"},
    "eastron_sdm72": {"eastron_sdm630"},
    "eastron_sdm220": {"eastron_sdm230"},
    "eastron_sdm230": {"eastron_sdm220"},
}


@pytest.mark.parametrize("name", [n for n in PROFILES if n != "senseair_s8"])
async def test_scan_names_a_meter_of_each_profile(name: str):
    """A meter holding exactly its profile's registers is named by that profile, alone or
    with the profiles its file says it cannot be told from."""
    got = await names(image_of(load_profile(name)))
    assert name in got
    assert set(got) - {name} <= TWINS.get(name, set()), got


async def test_a_model_code_outranks_ranges():
    sdm120 = load_profile("eastron_sdm120")
    assert await names(image_of(sdm120)) == ["eastron_sdm120"]
    # an SDM120-shaped meter with another code is not an SDM120: its input registers fit the
    # SDM220, which documents no code
    assert await names(image_of(sdm120, model_code=0x0030)) == ["eastron_sdm220"]
    assert scanning.specificity({"model_code": 32}) > scanning.specificity(
        {f"q{i}": 1.0 for i in range(20)}
    )


async def test_abb_a_and_b_series_are_told_apart_by_the_type_designation():
    b = load_profile("abb_b23_b24")
    assert await names(image_of(b)) == ["abb_b23_b24"]
    assert await names(image_of(b, model_code=0x41343420)) == ["abb_a43_a44"]  # "A44 "
    assert await names(image_of(b, model_code=0x42323120)) == []  # "B21 ": single phase


def write_profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


BASE = """\
model: X
source: a test
defaults: {register_type: input, data_type: f32}
registers:
  voltage_v: 0x0000
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("signature: {model_code: [1, 1]}\n", "not in registers or identify"),
        ("identify: {model_code: {address: 0xFC02}}\n", "give its range in signature"),
        (
            "identify: {voltage_v: 0x0010}\nsignature: {voltage_v: [1, 2]}\n",
            "also in registers",
        ),
        ("signature: {voltage_v: [500, 50]}\n", "is empty"),
        (
            "identify: {model_code: {address: 0xFFFF}}\nsignature: {model_code: [1, 1]}\n",
            "past address 0xFFFF",
        ),
    ],
)
def test_identify_mistakes_are_located(tmp_path: Path, extra: str, message: str):
    path = write_profile(tmp_path, BASE + extra)
    with pytest.raises(ConfigError) as exc:
        profile_from_document(load_yaml_file(path), "p")
    assert message in str(exc.value)
    assert "p.yaml" in str(exc.value)


def test_identify_registers_are_never_polled(tmp_path: Path):
    path = write_profile(
        tmp_path,
        BASE + "identify: {model_code: {address: 0xFC02, register_type: holding,"
        " data_type: u16}}\nsignature: {model_code: [32, 32]}\n",
    )
    profile = profile_from_document(load_yaml_file(path), "p")
    assert [p.quantity for p in profile.points] == ["voltage_v"]
    assert [(p.quantity, p.address) for p in profile.signature_points] == [("model_code", 0xFC02)]


def test_overlapping_registers_are_a_located_error(tmp_path: Path):
    path = write_profile(tmp_path, BASE + "  current_a: 0x0001\n  frequency_hz: 0x0004\n")
    with pytest.raises(ConfigError) as exc:
        profile_from_document(load_yaml_file(path), "p")
    assert [str(p) for p in exc.value.problems] == [
        f"{path}:6: registers.current_a: registers 1..2 overlap 'voltage_v' (f32 at 0..1): "
        "check the address or the data type"
    ]


def test_the_same_address_in_two_register_types_is_no_overlap(tmp_path: Path):
    holding = "  current_a: {address: 0x0000, register_type: holding}\n"
    path = write_profile(tmp_path, BASE + holding)
    assert len(profile_from_document(load_yaml_file(path), "p").points) == 2

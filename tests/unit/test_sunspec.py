"""The SunSpec driver without a network: point tables, sentinels, scale factors, the chain
walk (good and broken chains) and the driver's discovery cache, on in-memory register maps
(the simulator's own image, so the bytes are the ones a server would send)."""

from __future__ import annotations

import math
import struct

import pytest

from vatio.common.vocabulary import QUANTITIES
from vatio.drivers.modbus.profile import RegisterType
from vatio.drivers.reading import DeviceExceptionReply, DeviceTimeout
from vatio.drivers.sunspec.chain import NotSunSpec, discover
from vatio.drivers.sunspec.device import BAD_MODEL, CHANGED, SunSpecDevice, SunSpecOptions
from vatio.drivers.sunspec.models import MODELS, SF_OFFSETS, PointType, SunSpecPoint
from vatio.drivers.sunspec.values import (
    BAD_SCALE_FACTOR,
    NOT_IMPLEMENTED,
    decode_point,
    decode_string,
    raw_value,
    scale_factor,
)
from vatio.simulators.sunspec_server import BASE, SunSpecUnit

T = 1_764_612_000.0  # 2025-12-01 18:00 UTC = 12:00 in central Mexico: the sun is up


# --- tables -----------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_every_point_fits_its_model_and_links_a_scale_factor(model_id):
    model = MODELS[model_id]
    length = model.repeat.fixed + 3 * model.repeat.block if model.repeat else max(model.lengths)
    points, _ = model.expand(length)
    taken: dict[int, str] = {}
    for p in points:
        assert p.quantity in QUANTITIES, p.quantity
        assert p.offset >= 2 and p.end <= 2 + length, (p.quantity, p.offset, length)
        for r in range(p.offset, p.end):
            assert r not in taken, f"{p.quantity} overlaps {taken[r]}"
            taken[r] = p.quantity
        if p.type is PointType.F32:
            assert p.sf is None  # float models carry no scale factors
        elif p.sf is not None:
            assert p.sf in SF_OFFSETS[model_id], (p.quantity, p.sf)
    assert len({p.quantity for p in points}) == len(points)


def test_mppt_model_unrolls_its_blocks_and_says_how_many_have_no_names():
    model = MODELS[160]
    points, left_out = model.expand(8 + 20 * 2)
    assert left_out == 0
    assert [p.quantity for p in points][-4:] == [
        "dc_current_mppt2_a", "dc_voltage_mppt2_v", "dc_power_mppt2_w", "dc_energy_mppt2_kwh",
    ]  # fmt: skip
    assert points[4].offset == 10 + 20 + 9  # second module's DCA
    assert model.expand(8 + 20 * 10)[1] == 2
    assert model.length_ok(48) and not model.length_ok(47) and not model.length_ok(7)


# --- sentinels and scale factors (table-driven) -----------------------------------------


def f32(x: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", x)))


@pytest.mark.parametrize(
    ("words", "type_", "expected"),
    [
        ([0x8000], PointType.I16, None),
        ([0x7FFF], PointType.I16, 32767.0),
        ([0xFFF6], PointType.I16, -10.0),
        ([0xFFFF], PointType.U16, None),
        ([0xFFFE], PointType.U16, 65534.0),
        ([0x8000], PointType.U16, 32768.0),  # only int16 reads 0x8000 as "none"
        ([0xFFFF], PointType.ENUM16, None),
        ([4], PointType.ENUM16, 4.0),
        ([0xFFFF, 0xFFFF], PointType.ACC32, None),
        ([0x0001, 0x0000], PointType.ACC32, 65536.0),
        ([0, 0], PointType.ACC32, 0.0),  # a new counter reads 0: a value, not "none"
        ([0xFFFF, 0xFFFF], PointType.U32, None),
        ([0x8000, 0x0000], PointType.I32, None),
        ([0xFFFF, 0xFFFE], PointType.I32, -2.0),
        (f32(float("nan")), PointType.F32, None),
        ([0x7FC0, 0x0000], PointType.F32, None),
        ([0xFFFF, 0xFFFF], PointType.F32, None),  # a NaN too
        (f32(float("inf")), PointType.F32, None),
        (f32(230.5), PointType.F32, 230.5),
    ],
)
def test_sentinels(words, type_, expected):
    assert raw_value(words, type_) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [(0x8000, (None, NOT_IMPLEMENTED)), (0xFFFE, (-2, None)), (3, (3, None)),
     (10, (10, None)), (0xFFF6, (-10, None)), (11, (None, BAD_SCALE_FACTOR)),
     (0xFFF5, (None, BAD_SCALE_FACTOR))],
)  # fmt: skip
def test_scale_factor_register(word, expected):
    assert scale_factor(word) == expected


@pytest.mark.parametrize(
    ("type_", "value_words", "sf_word", "exp", "expected"),
    [
        (PointType.U16, [2301], 0xFFFF, 0, 230.1),  # volts, V_SF −1
        (PointType.I16, [0xFE0C], 0, 0, -500.0),  # −500 W, W_SF 0
        (PointType.I16, [123], 2, 0, 12300.0),  # W_SF +2
        (PointType.ACC32, [0x00BC, 0x614E], 0, -3, 12345.678),  # Wh → kWh
        (PointType.ACC32, [0x0001, 0xE240], 1, -3, 1234.56),  # WH_SF +1
        (PointType.I16, [953], 0xFFFF, -2, 0.953),  # PF in Pct, PF_SF −1
        (PointType.U16, [1234], 0xFFFE, 0, 12.34),  # amps, A_SF −2
        (PointType.U16, [1234], 0x8000, 0, None),  # SF not implemented
        (PointType.U16, [0xFFFF], 0xFFFE, 0, None),  # value not implemented
        (PointType.U16, [1234], 12, 0, None),  # SF out of −10…10
    ],
)
def test_scale_factor_application(type_, value_words, sf_word, exp, expected):
    p = SunSpecPoint("x", 2, type_, sf=10, exp=exp)
    words = {2 + i: w for i, w in enumerate(value_words)} | {10: sf_word}
    value, reason = decode_point(words, p)
    assert value == expected
    assert (reason is None) == (expected is not None)


def test_float_points_convert_units_without_scale_factors():
    p = SunSpecPoint("energy_generated_kwh", 2, PointType.F32, exp=-3)
    value, reason = decode_point(dict(enumerate(f32(5_000_000.0), 2)), p)
    assert (value, reason) == (5000.0, None)
    assert decode_point({2: 0x7FC0, 3: 0}, p) == (None, NOT_IMPLEMENTED)


def test_strings_stop_at_nul_and_trim():
    words = [0x534D, 0x4100, 0x0000]  # "SMA\0"
    assert decode_string(words) == "SMA"
    assert decode_string([0x2020, 0x2020]) == ""


# --- the chain walk -----------------------------------------------------------------------


class Registers:
    """A unit's holding registers: reads outside them are refused (exception 2)."""

    def __init__(self, image: dict[int, int], silent: bool = False) -> None:
        self.image = image
        self.silent = silent
        self.reads: list[tuple[int, int]] = []

    async def read(self, start: int, count: int) -> list[int]:
        self.reads.append((start, count))
        if self.silent:
            raise DeviceTimeout("no answer within 0.2 s")
        if any(a not in self.image for a in range(start, start + count)):
            raise DeviceExceptionReply(
                f"Modbus exception 2 (illegal data address) reading holding registers "
                f"{start}..{start + count - 1}", 2,
            )  # fmt: skip
        return [self.image[a] for a in range(start, start + count)]


def image_of(unit: SunSpecUnit) -> dict[int, int]:
    return {BASE + i: w for i, w in enumerate(unit.image)}


def sim(kind: str, unit: int = 7) -> SunSpecUnit:
    return SunSpecUnit(unit, kind, clock=lambda: T)


async def test_walk_finds_the_models_and_the_common_strings():
    regs = Registers(image_of(sim("inverter")))
    chain = await discover(regs.read, "unit 7")
    assert chain.base == 40000 and chain.complete and not chain.problems
    assert [(m.id, m.address, m.length) for m in chain.models] == [
        (1, 40002, 66), (103, 40070, 50), (160, 40122, 48)
    ]
    assert chain.info["manufacturer"] == "Vatio" and chain.info["model"] == "SimPV 5000-3P"
    assert chain.summary() == "1 common (Vatio, SimPV 5000-3P), 103 inverter, 160 MPPT"


@pytest.mark.parametrize("base", [0, 50000])
async def test_marker_at_the_other_bases(base):
    image = {a - BASE + base: w for a, w in image_of(sim("meter")).items()}
    chain = await discover(Registers(image).read, "unit 7")
    assert chain.base == base
    assert [m.id for m in chain.models] == [1, 203]


async def test_no_marker_is_a_located_error_with_a_hint():
    regs = Registers({a: 0 for a in range(0, 100)})
    with pytest.raises(NotSunSpec) as err:
        await discover(regs.read, "unit 7 on 'pv'")
    assert "unit 7 on 'pv'" in str(err.value) and "0: 0x0000 0x0000" in str(err.value)
    assert "40000: exception 2" in str(err.value) and "driver: modbus" in err.value.hint


async def test_a_silent_unit_is_a_timeout_not_a_verdict():
    with pytest.raises(DeviceTimeout):
        await discover(Registers({}, silent=True).read, "unit 7")


async def test_chain_that_ends_early_keeps_the_models_before_it():
    chain = await discover(Registers(image_of(sim("bad-end"))).read, "unit 7")
    assert not chain.complete
    assert [m.id for m in chain.usable] == [1, 103, 160]
    (problem,) = chain.problems
    assert "unit 7, register 40172" in problem and "after model 160" in problem
    assert "no end marker" in problem


async def test_chain_that_runs_past_the_register_space():
    image = {0: 0x5375, 1: 0x6E53, 2: 999, 3: 0xFFFC}  # an unknown model 65532 long
    chain = await discover(Registers(image).read, "unit 7", base=0)
    assert chain.models[0].id == 999
    assert "runs past register 65535 after model 999 at register 2" in chain.problems[0]


async def test_a_repeated_model_is_ignored_and_named():
    chain = await discover(Registers(image_of(sim("bad-repeat"))).read, "unit 7")
    assert chain.complete
    assert [(m.id, m.address) for m in chain.usable] == [(1, 40002), (103, 40070), (160, 40174)]
    assert [(m.id, m.address) for m in chain.skipped] == [(103, 40122)]
    assert "unit 7, register 40122, model 103" in chain.problems[0]
    assert "first at register 40070" in chain.problems[0]


async def test_a_model_whose_length_disagrees_is_skipped_and_the_walk_goes_on():
    chain = await discover(Registers(image_of(sim("bad-length"))).read, "unit 7")
    assert chain.complete
    assert [m.id for m in chain.usable] == [1, 160]
    assert "unit 7, register 40070, model 103" in chain.problems[0]
    assert "length 48 disagrees with the model's 50" in chain.problems[0]


# --- the driver: planning, decoding, discovery cache ----------------------------------------


class FakeTransport:
    """The parts of ModbusTransport the driver uses, over :class:`Registers`."""

    name = "pv"
    timeout = 0.2

    def __init__(self, regs: Registers) -> None:
        self.regs = regs
        self.down = False

    async def read(self, register_type, start, count, unit, min_gap=0.0, timeout=None):
        assert register_type is RegisterType.HOLDING
        if self.down:
            raise DeviceTimeout("no answer within 0.2 s")
        return await self.regs.read(start, count)


def device(unit: SunSpecUnit, **options) -> tuple[SunSpecDevice, FakeTransport]:
    transport = FakeTransport(Registers(image_of(unit)))
    opts = SunSpecOptions(unit=unit.unit, **options)
    return SunSpecDevice("pv", unit.unit, transport, opts), transport  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["inverter", "inverter-float", "meter", "meter-float"])
async def test_poll_decodes_what_the_simulator_served(kind):
    unit = sim(kind)
    dev, _ = device(unit)
    result = await dev.poll()
    assert result.degraded is None
    assert set(result.values) == {q for q in unit.served}
    image = image_of(unit)
    where = {p.quantity: (block, p) for block, p in dev._planned.points}  # type: ignore[union-attr]
    for q, served in unit.served.items():
        got = result.values[q]
        if served is None:
            assert got is None and result.quality[q] == NOT_IMPLEMENTED, q
            continue
        block, p = where[q]
        if p.sf is None:  # float32 (or an enum): only float32's own rounding
            assert got == pytest.approx(served, rel=1e-6), q
        else:  # rounded to the step its scale factor gives, no coarser
            sf, _ = scale_factor(image[block.address + p.sf])
            step = 10.0 ** (sf + p.exp)
            assert abs(got - served) <= step / 2 + 1e-9, (q, got, served, step)
    assert kind.startswith("meter") or result.quality["heatsink_temperature_c"] == NOT_IMPLEMENTED


async def test_each_poll_reads_values_with_their_scale_factors_in_at_most_125():
    dev, transport = device(sim("inverter"), max_registers=60)
    await dev.poll()
    transport.regs.reads.clear()
    await dev.poll()
    reads = transport.regs.reads
    assert reads and all(count <= 60 for _, count in reads)
    read = {a for start, count in reads for a in range(start, start + count)}
    for block, p in dev._planned.points:  # type: ignore[union-attr]
        assert block.address in read  # the ID, checked every poll
        assert block.address + p.offset in read
        if p.sf is not None:
            assert block.address + p.sf in read


async def test_discovery_is_cached_and_redone_after_the_device_comes_back():
    dev, transport = device(sim("inverter"))
    await dev.poll()
    await dev.poll()
    assert dev.discoveries == 1
    transport.down = True
    with pytest.raises(DeviceTimeout):
        await dev.poll()
    transport.down = False
    result = await dev.poll()
    assert dev.discoveries == 2 and result.values["ac_power_w"] == 5000.0


async def test_a_model_that_moved_is_flagged_and_the_chain_walked_again():
    inverter = sim("inverter")
    dev, transport = device(inverter)
    await dev.poll()
    # the device now has a float inverter where model 103 was (a firmware update)
    transport.regs.image = image_of(sim("inverter-float"))
    result = await dev.poll()
    assert result.values["ac_power_w"] is None and result.quality["ac_power_w"] == CHANGED
    assert result.values["dc_power_mppt1_w"] is None  # model 160 moved too
    result = await dev.poll()
    assert dev.discoveries == 2
    assert result.values["ac_power_w"] == pytest.approx(5000.0)
    assert dev.chain is not None and [m.id for m in dev.chain.usable] == [1, 113, 160]


async def test_bad_chains_give_located_degraded_polls_and_keep_what_is_readable():
    dev, _ = device(sim("bad-length"))
    result = await dev.poll()
    assert result.degraded and "unit 7 on 'pv', register 40070, model 103" in result.degraded
    assert result.values["ac_power_w"] is None and result.quality["ac_power_w"] == BAD_MODEL
    assert result.values["dc_power_mppt1_w"] == pytest.approx(3218.0)
    dev, _ = device(sim("bad-end"))
    result = await dev.poll()
    assert "register 40172" in (result.degraded or "")
    assert result.values["ac_power_w"] == 5000.0


async def test_a_device_without_marker_fails_the_poll_with_its_own_code():
    transport = FakeTransport(Registers({a: 0 for a in range(40000, 40010)}))
    dev = SunSpecDevice("pv", 3, transport, SunSpecOptions(unit=3))  # type: ignore[arg-type]
    with pytest.raises(NotSunSpec) as err:
        await dev.poll()
    assert err.value.code == "not_sunspec" and "unit 3 on 'pv'" in str(err.value)
    assert dev.quantities == []


def test_simulated_pv_day_is_a_bell_with_export_at_noon():
    unit = sim("inverter")
    night = unit.values_at(T - 9 * 3600)  # 03:00 local
    assert night["ac_power_w"] == 0.0 and night["operating_state"] == 2.0
    meter = SunSpecUnit(8, "meter", site=unit.site, clock=lambda: T)
    assert meter.values_at(T)["active_power_w"] < 0  # exports at noon
    assert meter.values_at(T + 8 * 3600)["active_power_w"] > 0  # imports at night
    morning = unit.values_at(T - 4 * 3600)["dc_power_w"]  # 08:00
    assert 0 < morning < unit.values_at(T)["dc_power_w"]
    assert not math.isnan(unit.values_at(T)["ac_power_w"])


async def test_the_device_status_message_carries_what_the_device_says_it_is(tmp_path):
    import json

    from vatio.agent.messages import MessageBuilder
    from vatio.agent.runtime import _Pipeline
    from vatio.agent.seqstore import SeqStore

    class Sink:
        def __init__(self) -> None:
            self.messages: list = []

        def submit(self, msg) -> None:
            self.messages.append(msg)

    dev, _ = device(sim("inverter"))
    pipeline = _Pipeline(MessageBuilder("s", "gw", SeqStore(tmp_path / "seq.sqlite")))
    out = Sink()
    pipeline.outputs = [out]  # type: ignore[list-item]
    pipeline.drivers = {"pv": dev}  # type: ignore[dict-item]
    def last_status() -> dict:
        return json.loads([m for m in out.messages if m.topic.endswith("/status")][-1].payload)

    pipeline.device_state("pv", "degraded", "no answer")  # before discovery: nothing to say
    assert last_status()["state"] == "degraded" and "info" not in last_status()
    await dev.poll()
    pipeline.device_state("pv", "online", "answering")
    info = last_status()["info"]
    assert info["manufacturer"] == "Vatio" and info["serial"] == "VS00700000"
    assert info["sunspec_models"].endswith("103 inverter, 160 MPPT")


async def test_a_read_refused_as_illegal_address_makes_the_next_poll_walk_again():
    # a firmware update leaves model 160 out: its registers now answer exception 2
    image = {a: w for a, w in image_of(sim("inverter")).items() if a < 40122}
    image[40122], image[40123] = 0xFFFF, 0
    dev, transport = device(sim("inverter"), max_registers=45)  # 103 and 160 read apart
    await dev.poll()
    assert [(r.start, r.count) for r in dev._planned.requests] == [(40070, 39), (40122, 44)]  # type: ignore[union-attr]
    transport.regs.image = image
    result = await dev.poll()
    assert result.values["ac_power_w"] == 5000.0
    assert result.values["dc_power_mppt1_w"] is None
    assert result.quality["dc_power_mppt1_w"] == "exception 2"
    result = await dev.poll()
    assert dev.discoveries == 2 and "dc_power_mppt1_w" not in result.values
    assert result.values["ac_power_w"] == 5000.0 and result.degraded is None
    # read in one request, the whole poll is refused: a failed poll, then a new walk
    dev, transport = device(sim("inverter"))
    await dev.poll()
    transport.regs.image = image
    with pytest.raises(DeviceExceptionReply, match="every SunSpec read was refused"):
        await dev.poll()
    result = await dev.poll()
    assert dev.discoveries == 2 and result.values["ac_power_w"] == 5000.0

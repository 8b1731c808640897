"""Register codecs against the manufacturers' worked frames and a round-trip property."""

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vatio.drivers.modbus.register_codec import (
    DataType,
    NotANumber,
    decode,
    decode_array,
    encode,
    swap_bytes,
)


def test_eastron_voltage_example():
    # SDM630 v1.8 §3.8: reply 43 66 33 34 is 230.2 V (exactly 230.20001, domain.md §5.5)
    assert decode([0x4366, 0x3334], DataType.F32) == pytest.approx(230.2, abs=1e-4)


def test_eastron_float_doc_example():
    assert decode([0x4370, 0x8000], DataType.F32) == 240.5


def test_em24_int32_low_word_first_scaled():
    # Carlo Gavazzi EM24: INT32, least significant word first, ×0.1 V (domain.md §5.5)
    raw = 2305  # 230.5 V
    assert decode([raw & 0xFFFF, raw >> 16], DataType.I32, word_order="little", scale=0.1) == 230.5


def test_negative_int32_little_word():
    regs = encode(-1234.5, DataType.I32, word_order="little", scale=0.1)
    assert decode(regs, DataType.I32, word_order="little", scale=0.1) == -1234.5


def test_byte_order_little_swaps_bytes_of_each_register():
    assert swap_bytes([0x1234, 0xABCD]) == [0x3412, 0xCDAB]
    # DCBA: word- and byte-swapped float32 of 230.5
    abcd = encode(230.5, DataType.F32)
    dcba = [((r & 0xFF) << 8) | (r >> 8) for r in reversed(abcd)]
    assert decode(dcba, DataType.F32, word_order="little", byte_order="little") == 230.5


def test_signed_16_bit():
    assert decode([0xFFFF], DataType.I16) == -1
    assert decode([0xFFFF], DataType.U16) == 65535


def test_offset_applies_after_scale():
    assert decode([100], DataType.U16, scale=0.5, offset=-40) == 10


def test_nan_is_refused():
    with pytest.raises(NotANumber):
        decode([0x7FC0, 0x0000], DataType.F32)


int_types = {
    DataType.U16: (0, 2**16 - 1),
    DataType.I16: (-(2**15), 2**15 - 1),
    DataType.U32: (0, 2**32 - 1),
    DataType.I32: (-(2**31), 2**31 - 1),
    DataType.U64: (0, 2**53),
    DataType.I64: (-(2**53), 2**53),
}
orders = st.sampled_from(["big", "little"])


@given(st.sampled_from(list(int_types)), st.data(), orders, orders)
def test_integer_round_trip(data_type, data, word_order, byte_order):
    low, high = int_types[data_type]
    value = data.draw(st.integers(low, high))
    regs = encode(value, data_type, word_order, byte_order)
    assert len(regs) == data_type.width
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert decode(regs, data_type, word_order, byte_order) == value


@given(st.floats(allow_nan=False, allow_infinity=False, width=32), orders, orders)
def test_float32_round_trip(value, word_order, byte_order):
    regs = encode(value, DataType.F32, word_order, byte_order)
    assert decode(regs, DataType.F32, word_order, byte_order) == value


@given(st.floats(allow_nan=False, allow_infinity=False), orders)
def test_float64_round_trip(value, word_order):
    regs = encode(value, DataType.F64, word_order)
    out = decode(regs, DataType.F64, word_order)
    assert out == value or (math.isclose(out, value) and value == 0)


def test_decode_array_reads_a_run_of_values_in_one_call():
    regs = encode(230.5, DataType.F32) + encode(-49.25, DataType.F32)
    assert decode_array(regs, DataType.F32) == [230.5, -49.25]
    assert decode_array(regs[:2], DataType.F32) == [230.5]  # one value: still a list
    little = swap_bytes(encode(7, DataType.U32, "little"))
    assert decode_array(little, DataType.U32, "little", "little") == [7]


@pytest.mark.parametrize("data_type", list(DataType))
@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("byte_order", ["big", "little"])
def test_the_struct_decoder_gives_pymodbus_numbers_for_every_type_and_order(
    data_type, word_order, byte_order
):
    """run_decoder replaced pymodbus's convert_from_registers on the read path (issue 18):
    it must read every register pattern the same, NaN and infinity bit patterns included."""
    from pymodbus.client.mixin import ModbusClientMixin

    rng = random.Random(f"{data_type}{word_order}{byte_order}")
    for count in (1, 2, 5):
        for _ in range(50):
            regs = [rng.randrange(0x10000) for _ in range(count * data_type.width)]
            if data_type in (DataType.F32, DataType.F64) and rng.random() < 0.2:
                regs[0] = 0x7FF0 if data_type is DataType.F64 else 0x7F80  # inf/NaN exponent
            swapped = swap_bytes(regs) if byte_order == "little" else regs
            want = ModbusClientMixin.convert_from_registers(swapped, data_type.pymodbus, word_order)
            want = want if isinstance(want, list) else [want]
            got = decode_array(regs, data_type, word_order, byte_order)
            assert len(got) == count
            for g, w in zip(got, want, strict=True):
                assert (math.isnan(g) and math.isnan(w)) or g == float(w), (regs, g, w)


def test_a_run_of_registers_that_holds_no_whole_value_is_refused():
    with pytest.raises(ValueError, match="whole f32 values"):
        decode_array([1, 2, 3], DataType.F32)

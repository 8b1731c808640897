"""Modbus serial timing (domain.md §5.6): t3.5 and a read's time on the wire."""

import pytest

from vatio.drivers.modbus.transport import read_wire_time, t35


def test_t35_follows_the_baud_rate_up_to_19200_then_is_fixed():
    assert t35(9600) == pytest.approx(0.00401, abs=1e-5)  # 3.5 × 11 bits / 9600
    assert t35(19200) == pytest.approx(0.002005, abs=1e-6)
    assert t35(38400) == 0.00175 and t35(115200) == 0.00175  # Modbus serial guide V1.02


def test_wire_time_of_a_two_register_read_at_9600():
    # 8-byte request + 9-byte reply at 10 bits (8N1) plus two t3.5: ~25 ms (stack-notes §2.3)
    assert read_wire_time(2, 9600, bits_per_char=10) == pytest.approx(0.0257, abs=2e-4)
    assert read_wire_time(100, 9600, bits_per_char=10) == pytest.approx(0.230, abs=2e-3)

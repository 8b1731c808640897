"""Golden register cases: tests/golden/<case>/case.yaml, decoded through the real planner and
device code (see tests/golden/README.md). A new case is a new folder, no code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vatio.drivers.modbus.device import ModbusDevice
from vatio.drivers.modbus.profile import RegisterType, load_profile

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CASES = sorted(p.parent for p in GOLDEN.glob("*/case.yaml"))


class BlockTransport:
    """Serves reads from a register block, as the device would (unset registers read 0)."""

    name = "golden"

    def __init__(self, blocks: dict[RegisterType, dict[int, int]]) -> None:
        self.blocks = blocks
        self.requests: list[tuple[RegisterType, int, int]] = []

    async def read(self, register_type, start, count, unit, min_gap=0.0):
        self.requests.append((register_type, start, count))
        block = self.blocks.get(register_type, {})
        return [block.get(a, 0) for a in range(start, start + count)]


def load_case(folder: Path):
    case = yaml.safe_load((folder / "case.yaml").read_text())
    blocks: dict[RegisterType, dict[int, int]] = {}
    for kind, runs in case["registers"].items():
        regs = blocks.setdefault(RegisterType(kind), {})
        for start, words in runs.items():
            for i, w in enumerate(words):
                regs[int(start) + i] = int(w)
    return case, blocks


def test_there_are_golden_cases():
    assert len(CASES) >= 5


@pytest.mark.parametrize("folder", CASES, ids=[c.name for c in CASES])
async def test_golden_case(folder: Path):
    case, blocks = load_case(folder)
    assert case.get("source"), "every case says where its words come from"
    profile = load_profile(case["profile"], folder)
    transport = BlockTransport(blocks)
    device = ModbusDevice("golden", 1, profile, transport)  # type: ignore[arg-type]
    result = await device.poll()
    assert result.quality == {}
    for quantity, value in case["expected"].items():
        assert result.values[quantity] == pytest.approx(value, rel=1e-6, abs=1e-9), quantity
    assert len(transport.requests) == len(device.plan)

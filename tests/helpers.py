"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

from drivers.modbus.register_codec import DataType


async def wait_until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``condition`` while letting the event loop run (simulators live in it)."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")
        await asyncio.sleep(0.1)


def expected_on_wire(profile, served: dict[str, float]) -> dict[str, float]:
    """What the registers can hold, computed independently of the agent's codec."""
    out = {}
    for p in profile.points:
        v = served[p.quantity]
        if p.data_type is DataType.F32:
            out[p.quantity] = struct.unpack(">f", struct.pack(">f", v))[0]
        elif p.data_type is DataType.F64:
            out[p.quantity] = v
        else:
            out[p.quantity] = round((v - p.offset) / p.scale) * p.scale + p.offset
    return out

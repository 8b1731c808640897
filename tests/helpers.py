"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vatio.drivers.modbus.register_codec import DataType


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


def run_cli(
    *args: str, lang: str = "C.UTF-8", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``vatio ARGS`` in a child process, in the language ``lang`` (English by default, so a
    developer's Spanish locale cannot change what the tests read)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    return subprocess.run(
        [sys.executable, "-m", "vatio.agent.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**env, "LANG": lang},
        timeout=60,
    )


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


async def run_cli_async(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``vatio ARGS`` in a child process without blocking the event loop that serves the
    simulators of the same test."""
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vatio.agent.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())

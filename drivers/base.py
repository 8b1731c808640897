"""The contract between the agent and any driver: something that can be polled.

The scheduler knows devices only through :class:`Driver`; it never sees Modbus or serial
details. A driver returns a :class:`~vatio.drivers.reading.PollResult` for every poll. A poll that
fails entirely raises a :class:`~vatio.drivers.reading.DeviceError` (the scheduler turns it into a
result with null values and a quality reason); a partial failure is reported per quantity.
"""

from __future__ import annotations

from typing import Protocol

from vatio.drivers.reading import PollResult


class Driver(Protocol):
    name: str  # the device name from the config

    @property
    def quantities(self) -> list[str]:
        """Every quantity a poll reports (a failed poll reports these as null)."""
        ...

    async def poll(self) -> PollResult:
        """Read the device once. Raise DeviceError when nothing could be read."""
        ...

    def describe(self) -> str:
        """One line for `vatio check`: model, address, requests per poll."""
        ...

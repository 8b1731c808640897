"""Simulated SunSpec devices: a PV inverter and a grid meter as pymodbus units.

Each :class:`SunSpecUnit` serves a SunSpec register image in holding registers from 40000:
the "SunS" marker, the common model (1), its models, and the end marker (0xFFFF, 0). The
image is built from the driver's own point tables (:mod:`vatio.drivers.sunspec.models`,
whose offsets are checked against the SunSpec model definitions), encoded as a device
does: integer models with their scale factors, float models as float32, and a few points
"not implemented" the SunSpec way (the inverter's heat-sink temperature 0x8000; the
integer meter's VAR_SF 0x8000; the float meter's reactive power NaN), so the driver's
sentinel handling is exercised on real bytes.

Kinds (``KINDS``): ``inverter`` (1, 103, 160 with 2 MPPTs), ``inverter-float`` (1, 113,
160), ``meter`` (1, 203), ``meter-float`` (1, 213), and broken chains for tests:
``bad-end`` (the inverter's chain with no end marker: reads past it fail), ``bad-repeat``
(model 103 twice) and ``bad-length`` (model 103 with L = 48 instead of 50).

Values come from :mod:`vatio.simulators.pv_day`: the inverter's AC power is its DC power
times its efficiency; the meter sees the house's load minus the PV, so it exports at noon.
An inverter and a meter made with the same ``site`` share one :class:`SiteState`. The clock
is ``vatio.common.clock.now`` unless given: ``VATIO_SIMULATED_TIME`` (a fast clock) makes a
day pass in minutes, and tests pass a fixed clock. ``served`` holds the values of the last
refresh, in the vocabulary's names and units.

A unit duck-types :class:`~vatio.simulators.modbus_server.SimulatedMeter` (``unit``,
``sim_device``, the fault hooks' counters), so a :class:`ModbusTcpSimulator` serves SunSpec
units and profile meters side by side.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from pymodbus.simulator import DataType, SimData, SimDevice

from vatio.common import clock as simulated_or_wall
from vatio.drivers.sunspec.models import (
    COMMON_STRINGS,
    END_ID,
    MARKER,
    MODELS,
    PointType,
    SunSpecPoint,
)
from vatio.simulators.load_curve import electrical
from vatio.simulators.pv_day import PvPlant, SiteState, house_w

BASE = 40000

KINDS: dict[str, tuple[tuple[int, int], ...]] = {
    "inverter": ((1, 66), (103, 50), (160, 48)),
    "inverter-float": ((1, 66), (113, 60), (160, 48)),
    "meter": ((1, 66), (203, 105)),
    "meter-float": ((1, 66), (213, 124)),
    "bad-end": ((1, 66), (103, 50), (160, 48)),
    "bad-repeat": ((1, 66), (103, 50), (103, 50), (160, 48)),
    "bad-length": ((1, 66), (103, 48), (160, 48)),
}

# the scale factors this simulated device uses, by the offset of the SF register
_SF_INVERTER = {6: -2, 13: -1, 15: 0, 17: -2, 19: 0, 21: 0, 23: -1, 26: 0, 28: -2, 30: -1,
                32: 0, 37: -1}  # fmt: skip
_SF_METER = {6: -2, 15: -1, 17: -2, 22: 0, 27: 0, 32: 0x8000, 37: -1, 54: 0}
_SF_MPPT = {2: -2, 3: -1, 4: 0, 5: 0}
_NOT_IMPLEMENTED = {"heatsink_temperature_c"}  # every kind: the sentinel of its type


def _scale_factors(model_id: int) -> dict[int, int]:
    if model_id in (101, 102, 103):
        return _SF_INVERTER
    if model_id in (201, 202, 203, 204):
        return _SF_METER
    return _SF_MPPT if model_id == 160 else {}


def _word16(value: int) -> int:
    return value & 0xFFFF


def encode_point(p: SunSpecPoint, value: float | None, sf: int | None) -> list[int]:
    """Registers for ``value`` (vocabulary units) as a SunSpec device stores ``p``; None or
    a scale factor that is itself "not implemented" gives the type's sentinel."""
    if p.type is PointType.F32:
        number = float("nan") if value is None else value / 10.0**p.exp
        hi, lo = struct.unpack(">HH", struct.pack(">f", number))
        return [hi, lo]
    sentinel = {PointType.I16: [0x8000], PointType.U16: [0xFFFF], PointType.ENUM16: [0xFFFF],
                PointType.ACC32: [0xFFFF, 0xFFFF], PointType.U32: [0xFFFF, 0xFFFF],
                PointType.I32: [0x8000, 0]}[p.type]  # fmt: skip
    if value is None or sf == 0x8000:
        return sentinel
    raw = round(value / 10.0 ** (p.exp + (sf or 0)))
    if p.type is PointType.I16:
        return [_word16(max(-32767, min(32767, raw)))]
    if p.type in (PointType.U16, PointType.ENUM16):
        return [max(0, min(0xFFFE, raw))]
    raw = max(0, min(0xFFFFFFFE, raw))
    return [raw >> 16, raw & 0xFFFF]


def _string(text: str, registers: int) -> list[int]:
    data = text.encode("ascii")[: 2 * registers].ljust(2 * registers, b"\0")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


class SunSpecUnit:
    """One simulated SunSpec unit id (an inverter or a meter) of a site."""

    def __init__(
        self,
        unit: int,
        kind: str = "inverter",
        site: SiteState | None = None,
        seed: int = 0,
        clock: Callable[[], float] = simulated_or_wall.now,
        refresh: float = 0.2,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown SunSpec kind '{kind}' (one of {', '.join(KINDS)})")
        self.unit = unit
        self.kind = kind
        self.clock = clock
        self.refresh = refresh
        self.site = site or SiteState(PvPlant(seed), clock())
        self.is_meter = kind.startswith("meter")
        # the fault hook of ModbusTcpSimulator reads and writes these
        self.requests = 0
        self.exception_replies = 0
        self.pending_fault: str | None = None
        self.served: dict[str, float | None] = {}
        self.blocks: list[tuple[int, int, int]] = []  # (model id, address, L)
        address = BASE + 2
        for model_id, length in KINDS[kind]:
            self.blocks.append((model_id, address, length))
            address += 2 + length
        self.end = address  # where the end marker is (none for bad-end)
        self.size = self.end - BASE + (0 if kind == "bad-end" else 2)
        self._refreshed_at = -1.0
        self.image = self._image(self.clock())

    # --- values ------------------------------------------------------------------------

    def values_at(self, t: float) -> dict[str, float | None]:
        self.site.advance(t)
        plant, seed = self.site.plant, self.site.plant.seed
        if self.is_meter:
            grid = house_w(t, seed) - plant.ac_w(t)
            v: dict[str, float | None] = dict(electrical(abs(grid), 0.97, t, seed))
            sign = 1.0 if grid >= 0 else -1.0
            v["active_power_w"] = grid
            for n in (1, 2, 3):
                v[f"active_power_l{n}_w"] = sign * (v[f"active_power_l{n}_w"] or 0.0)
            v["energy_import_kwh"] = self.site.import_kwh
            v["energy_export_kwh"] = self.site.export_kwh
            if self.kind == "meter-float":
                v["reactive_power_var"] = None  # NaN on the wire
            return v
        ac = plant.ac_w(t)
        v = dict(electrical(ac, 1.0, t, seed))
        inputs = plant.mppt(t)
        dc = sum(w for _, _, w in inputs)
        v.update(
            ac_power_w=ac,
            energy_generated_kwh=self.site.generated_kwh,
            dc_power_w=dc,
            dc_current_a=sum(a for _, a, _ in inputs),
            dc_voltage_v=max(volts for volts, _, _ in inputs),
            cabinet_temperature_c=25.0 + 20.0 * ac / plant.rated_ac_w,
            operating_state=4.0 if ac > 0 else 2.0,
        )
        for n, (volts, amps, watts) in enumerate(inputs, 1):
            v[f"dc_voltage_mppt{n}_v"] = volts
            v[f"dc_current_mppt{n}_a"] = amps
            v[f"dc_power_mppt{n}_w"] = watts
            v[f"dc_energy_mppt{n}_kwh"] = self.site.mppt_kwh[n - 1]
        return v

    def _image(self, t: float) -> list[int]:
        """The registers from 40000, with values at ``t``."""
        values = self.values_at(t)
        image = [0] * self.size
        image[0:2] = MARKER
        served: dict[str, float | None] = {}
        for model_id, address, length in self.blocks:
            at = address - BASE
            image[at : at + 2] = [model_id, length]
            if model_id == 1:
                text = {
                    "manufacturer": "Vatio",
                    "version": "1.4.2",
                    "model": "SimMeter 3P" if self.is_meter else "SimPV 5000-3P",
                    "serial": f"VS{self.unit:03d}{self.site.plant.seed % 100000:05d}",
                }
                for key, (offset, n) in COMMON_STRINGS.items():
                    image[at + offset : at + offset + n] = _string(text[key], n)
                image[at + 66] = self.unit if length >= 65 else 0  # DA
                continue
            model = MODELS[model_id]
            sfs = _scale_factors(model_id)
            for offset, sf in sfs.items():
                image[at + offset] = _word16(sf)
            if model_id == 160:
                image[at + 2 + model.repeat.count_offset] = model.blocks(length)  # type: ignore[union-attr]
            points, _ = model.expand(length)
            for p in points:
                if p.end > length + 2:
                    continue  # a bad-length model: the device's block is shorter
                value = None if p.quantity in _NOT_IMPLEMENTED else values.get(p.quantity)
                sf = sfs.get(p.sf) if p.sf is not None else None
                words = encode_point(p, value, sf)
                image[at + p.offset : at + p.offset + len(words)] = words
                served.setdefault(p.quantity, None if sf == 0x8000 else value)
        if self.kind != "bad-end":
            image[self.end - BASE : self.end - BASE + 2] = [END_ID, 0]
        self.served = served
        return image

    # --- pymodbus ----------------------------------------------------------------------

    def sim_device(self) -> SimDevice:
        blocks = (
            [SimData(0, count=1, values=False, datatype=DataType.BITS)],
            [SimData(0, count=1, values=False, datatype=DataType.BITS)],
            [SimData(BASE, count=self.size, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
        )
        return SimDevice(self.unit, simdata=blocks, action=self._on_access)

    async def _on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: Any,
    ) -> None:
        if function_code != 3 or set_values is not None:
            return None
        now = self.clock()
        if self._refreshed_at < 0 or now - self._refreshed_at >= self.refresh:
            self.image = self._image(now)
            self._refreshed_at = now
        offset = BASE - start_address
        registers[offset : offset + self.size] = self.image
        return None

"""The SunSpec models Vatio reads, as compact point tables: only what it publishes, plus the
scale factors those points need.

Source of every offset, type, unit and scale-factor link: the SunSpec Alliance's model
definitions, https://github.com/sunspec/models (``json/model_<id>.json``, commit 7abdf89,
2024), which are the machine-readable form of the *SunSpec Information Model Specification*
(v1.0) and its model reference. Offsets here count registers from the model's ``ID``
register (``ID`` at 0, ``L`` at 1, the first point at 2), as the JSON files list them.
Lengths (``L``, registers after the two-register header) from the same files:

====================  =====  ======================================================
model                 L      note
====================  =====  ======================================================
1 common              66     65 on devices built to the first edition (no ``Pad``)
101/102/103           50     inverter, integer + scale factors
111/112/113           60     inverter, float32
160 MPPT              8+20N  N repeating ``module`` blocks of 20 registers
201/202/203/204       105    meter, integer + scale factors
211/212/213/214       124    meter, float32
====================  =====  ======================================================

``tests/unit/test_sunspec.py`` checks that every point lies inside its model, that every
scale-factor link points at a scale-factor register of the same model, and that no two
points overlap.

Which models devices in the field expose: e.g. SMA's Data Manager M reads 1, 101–103, 160,
201–204 and 211–214 from SunSpec devices (SMA, "EDMM-20 SunSpec Modbus profile",
manuals.sma.de/EDMM-20/en-US/14259660939.html), the set mapped here.

Unit conversions to the vocabulary's names: energy in Wh → kWh (10⁻³); power factor in
``Pct`` (models 1xx and 20x) → −1…1 (10⁻²); models 21x give the power factor as a plain
factor (unit ``PF`` in model_21x.json) and are taken as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vatio.common.vocabulary import MAX_MPPTS

MARKER = (0x5375, 0x6E53)  # "SunS"
BASES = (40000, 0, 50000)  # where the marker may sit (holding registers), in search order
END_ID = 0xFFFF  # the model id that ends the chain


class PointType(StrEnum):
    U16 = "uint16"
    I16 = "int16"
    ENUM16 = "enum16"
    ACC32 = "acc32"
    U32 = "uint32"
    I32 = "int32"
    F32 = "float32"

    @property
    def width(self) -> int:
        return 1 if self in (PointType.U16, PointType.I16, PointType.ENUM16) else 2


U16, I16, ENUM16, ACC32, F32 = (
    PointType.U16, PointType.I16, PointType.ENUM16, PointType.ACC32, PointType.F32,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SunSpecPoint:
    """One published point: ``offset`` from the model's ID register; ``sf`` the offset of
    its scale factor (integer models), ``exp`` the conversion to the vocabulary's unit."""

    quantity: str
    offset: int
    type: PointType
    sf: int | None = None
    exp: int = 0  # power of ten to the vocabulary's unit: -3 for Wh → kWh, -2 for Pct → PF

    @property
    def end(self) -> int:
        return self.offset + self.type.width


@dataclass(frozen=True, slots=True)
class Repeating:
    """Model 160's repeating blocks: ``fixed`` registers after the header, then N blocks of
    ``block`` registers; ``points`` use block-relative offsets and ``{n}`` (1-based) in their
    quantity, their ``sf`` stays model-relative (the scale factors sit in the fixed part)."""

    fixed: int
    block: int
    count_offset: int  # the N register
    points: tuple[SunSpecPoint, ...]


@dataclass(frozen=True, slots=True)
class ModelDef:
    id: int
    label: str  # what `vatio scan` prints after the id
    lengths: tuple[int, ...]  # accepted L values (empty: repeating, see ``repeat``)
    points: tuple[SunSpecPoint, ...] = ()
    repeat: Repeating | None = None

    def length_ok(self, length: int) -> bool:
        if self.repeat is not None:
            rest = length - self.repeat.fixed
            return rest >= 0 and rest % self.repeat.block == 0
        return length in self.lengths

    def expected_length(self) -> str:
        if self.repeat is not None:
            return f"{self.repeat.fixed} + {self.repeat.block} × N"
        return " or ".join(str(n) for n in self.lengths)

    def blocks(self, length: int) -> int:
        """Repeating blocks in a model of ``length`` (0 for fixed models)."""
        if self.repeat is None:
            return 0
        return (length - self.repeat.fixed) // self.repeat.block

    def expand(self, length: int) -> tuple[list[SunSpecPoint], int]:
        """The model's points at ``length`` (repeating blocks unrolled, up to the vocabulary's
        MAX_MPPTS) and how many blocks were left out for want of names."""
        points = list(self.points)
        rep = self.repeat
        if rep is None:
            return points, 0
        n = self.blocks(length)
        for k in range(min(n, MAX_MPPTS)):
            base = 2 + rep.fixed + k * rep.block
            points += [
                SunSpecPoint(p.quantity.format(n=k + 1), base + p.offset, p.type, p.sf, p.exp)
                for p in rep.points
            ]
        return points, max(0, n - MAX_MPPTS)


def P(quantity: str, offset: int, type_: PointType, sf: int | None = None,
      exp: int = 0) -> SunSpecPoint:  # fmt: skip
    return SunSpecPoint(quantity, offset, type_, sf, exp)


# --- Inverters, integer + scale factors (model_101/102/103.json): the same layout --------
# A 2, AphA..C 3-5, A_SF 6, PPVphAB..CA 7-9, PhVphA..C 10-12, V_SF 13, W 14, W_SF 15, Hz 16,
# Hz_SF 17, VA 18/19, VAr 20/21, PF 22/23, WH 24 (acc32), WH_SF 26, DCA 27/28, DCV 29/30,
# DCW 31/32, TmpCab 33, TmpSnk 34, Tmp_SF 37, St 38
_INV_INT_COMMON = (
    P("ac_power_w", 14, I16, 15),
    P("frequency_hz", 16, U16, 17),
    P("apparent_power_va", 18, I16, 19),
    P("reactive_power_var", 20, I16, 21),
    P("power_factor", 22, I16, 23, -2),
    P("energy_generated_kwh", 24, ACC32, 26, -3),
    P("dc_current_a", 27, U16, 28),
    P("dc_voltage_v", 29, U16, 30),
    P("dc_power_w", 31, I16, 32),
    P("cabinet_temperature_c", 33, I16, 37),
    P("heatsink_temperature_c", 34, I16, 37),
    P("operating_state", 38, ENUM16),
)
_INV_INT_PHASES = {
    101: (P("current_a", 2, U16, 6), P("voltage_v", 10, U16, 13)),
    102: (
        P("current_l1_a", 3, U16, 6), P("current_l2_a", 4, U16, 6),
        P("voltage_l1_v", 10, U16, 13), P("voltage_l2_v", 11, U16, 13),
        P("voltage_l1_l2_v", 7, U16, 13),
    ),
    103: (
        P("current_l1_a", 3, U16, 6), P("current_l2_a", 4, U16, 6), P("current_l3_a", 5, U16, 6),
        P("voltage_l1_v", 10, U16, 13), P("voltage_l2_v", 11, U16, 13),
        P("voltage_l3_v", 12, U16, 13), P("voltage_l1_l2_v", 7, U16, 13),
        P("voltage_l2_l3_v", 8, U16, 13), P("voltage_l3_l1_v", 9, U16, 13),
    ),
}  # fmt: skip

# --- Inverters, float32 (model_111/112/113.json) ---------------------------------------
# A 2, AphA..C 4/6/8, PPVphAB..CA 10/12/14, PhVphA..C 16/18/20, W 22, Hz 24, VA 26, VAr 28,
# PF 30, WH 32, DCA 34, DCV 36, DCW 38, TmpCab 40, TmpSnk 42, St 48 (enum16)
_INV_FLOAT_COMMON = (
    P("ac_power_w", 22, F32),
    P("frequency_hz", 24, F32),
    P("apparent_power_va", 26, F32),
    P("reactive_power_var", 28, F32),
    P("power_factor", 30, F32, None, -2),
    P("energy_generated_kwh", 32, F32, None, -3),
    P("dc_current_a", 34, F32),
    P("dc_voltage_v", 36, F32),
    P("dc_power_w", 38, F32),
    P("cabinet_temperature_c", 40, F32),
    P("heatsink_temperature_c", 42, F32),
    P("operating_state", 48, ENUM16),
)
_INV_FLOAT_PHASES = {
    111: (P("current_a", 2, F32), P("voltage_v", 16, F32)),
    112: (
        P("current_l1_a", 4, F32), P("current_l2_a", 6, F32),
        P("voltage_l1_v", 16, F32), P("voltage_l2_v", 18, F32), P("voltage_l1_l2_v", 10, F32),
    ),
    113: (
        P("current_l1_a", 4, F32), P("current_l2_a", 6, F32), P("current_l3_a", 8, F32),
        P("voltage_l1_v", 16, F32), P("voltage_l2_v", 18, F32), P("voltage_l3_v", 20, F32),
        P("voltage_l1_l2_v", 10, F32), P("voltage_l2_l3_v", 12, F32),
        P("voltage_l3_l1_v", 14, F32),
    ),
}  # fmt: skip

# --- Meters, integer + scale factors (model_201..204.json): the same layout -------------
# A 2, AphA..C 3-5, A_SF 6, PhV 7, PhVphA..C 8-10, PPV 11, PhVphAB..CA 12-14, V_SF 15, Hz 16,
# Hz_SF 17, W 18, WphA..C 19-21, W_SF 22, VA 23, VA_SF 27, VAR 28, VAR_SF 32, PF 33, PF_SF 37,
# TotWhExp 38 (acc32), TotWhImp 46 (acc32), TotWh_SF 54. W is taken as positive = import
# (the reading of SunSpec meter models that Vatio's active_power_w shares); not every vendor
# agrees, so check the sign once on site while the inverter produces.
_MTR_INT_COMMON = (
    P("frequency_hz", 16, I16, 17),
    P("active_power_w", 18, I16, 22),
    P("apparent_power_va", 23, I16, 27),
    P("reactive_power_var", 28, I16, 32),
    P("power_factor", 33, I16, 37, -2),
    P("energy_export_kwh", 38, ACC32, 54, -3),
    P("energy_import_kwh", 46, ACC32, 54, -3),
)
_L1, _L2, _L3 = (0,), (0, 1), (0, 1, 2)


def _int_meter_phases(phases: tuple[int, ...], line_to_neutral: bool) -> tuple[SunSpecPoint, ...]:
    if len(phases) == 1:
        return (P("current_a", 2, I16, 6), P("voltage_v", 8, I16, 15))
    pts = [P(f"current_l{k + 1}_a", 3 + k, I16, 6) for k in phases]
    pts += [P(f"active_power_l{k + 1}_w", 19 + k, I16, 22) for k in phases]
    if line_to_neutral:
        pts += [P(f"voltage_l{k + 1}_v", 8 + k, I16, 15) for k in phases]
    pts.append(P("voltage_l1_l2_v", 12, I16, 15))
    if len(phases) == 3:
        pts += [P("voltage_l2_l3_v", 13, I16, 15), P("voltage_l3_l1_v", 14, I16, 15)]
    return tuple(pts)


# --- Meters, float32 (model_211..214.json) -----------------------------------------------
# A 2, AphA..C 4/6/8, PhV 10, PhVphA..C 12/14/16, PPV 18, PPVphAB..CA 20/22/24, Hz 26, W 28,
# WphA..C 30/32/34, VA 36, VAR 44, PF 52, TotWhExp 60, TotWhImp 68
_MTR_FLOAT_COMMON = (
    P("frequency_hz", 26, F32),
    P("active_power_w", 28, F32),
    P("apparent_power_va", 36, F32),
    P("reactive_power_var", 44, F32),
    P("power_factor", 52, F32),
    P("energy_export_kwh", 60, F32, None, -3),
    P("energy_import_kwh", 68, F32, None, -3),
)


def _float_meter_phases(phases: tuple[int, ...], line_to_neutral: bool) -> tuple[SunSpecPoint, ...]:
    if len(phases) == 1:
        return (P("current_a", 2, F32), P("voltage_v", 12, F32))
    pts = [P(f"current_l{k + 1}_a", 4 + 2 * k, F32) for k in phases]
    pts += [P(f"active_power_l{k + 1}_w", 30 + 2 * k, F32) for k in phases]
    if line_to_neutral:
        pts += [P(f"voltage_l{k + 1}_v", 12 + 2 * k, F32) for k in phases]
    pts.append(P("voltage_l1_l2_v", 20, F32))
    if len(phases) == 3:
        pts += [P("voltage_l2_l3_v", 22, F32), P("voltage_l3_l1_v", 24, F32)]
    return tuple(pts)


# --- MPPT extension (model_160.json) ---------------------------------------------------
# DCA_SF 2, DCV_SF 3, DCW_SF 4, DCWH_SF 5, Evt 6 (bitfield32), N 8, TmsPer 9; then per
# module (20 registers from offset 10): ID 0, IDStr 1 (8), DCA 9, DCV 10, DCW 11,
# DCWH 12 (acc32), Tms 14, Tmp 16, DCSt 17, DCEvt 18
_MPPT = Repeating(
    fixed=8,
    block=20,
    count_offset=8,
    points=(
        P("dc_current_mppt{n}_a", 9, U16, 2),
        P("dc_voltage_mppt{n}_v", 10, U16, 3),
        P("dc_power_mppt{n}_w", 11, U16, 4),
        P("dc_energy_mppt{n}_kwh", 12, ACC32, 5, -3),
    ),
)

# --- Common model (model_1.json): read once per discovery, never polled -------------------
# Mn 2 (string, 16 registers), Md 18 (16), Opt 34 (8), Vr 42 (8), SN 50 (16), DA 66
COMMON_STRINGS = {"manufacturer": (2, 16), "model": (18, 16), "version": (42, 8),
                  "serial": (50, 16)}  # fmt: skip

_names = {1: "single phase", 2: "split phase", 3: "three phase"}
MODELS: dict[int, ModelDef] = {
    1: ModelDef(1, "common", (65, 66)),
    160: ModelDef(160, "MPPT", (), repeat=_MPPT),
}
for _k, _phases in ((1, _L1), (2, _L2), (3, _L3)):
    MODELS[100 + _k] = ModelDef(
        100 + _k, f"inverter, {_names[_k]}", (50,), _INV_INT_COMMON + _INV_INT_PHASES[100 + _k]
    )
    MODELS[110 + _k] = ModelDef(
        110 + _k, f"inverter, {_names[_k]}, float", (60,),
        _INV_FLOAT_COMMON + _INV_FLOAT_PHASES[110 + _k],
    )  # fmt: skip
for _id, _label, _phases, _ln in (
    (1, "single phase", _L1, True),
    (2, "split phase", _L2, True),
    (3, "three phase wye", _L3, True),
    (4, "three phase delta", _L3, False),
):
    MODELS[200 + _id] = ModelDef(
        200 + _id, f"meter, {_label}", (105,), _MTR_INT_COMMON + _int_meter_phases(_phases, _ln)
    )
    MODELS[210 + _id] = ModelDef(
        210 + _id, f"meter, {_label}, float", (124,),
        _MTR_FLOAT_COMMON + _float_meter_phases(_phases, _ln),
    )  # fmt: skip


def short_label(model_id: int) -> str:
    """'inverter', 'meter', 'MPPT', 'common' (for one scan line), or 'model' if unknown."""
    m = MODELS.get(model_id)
    return m.label.split(",")[0] if m else "model"


# Scale factor registers of each integer model (their offsets): a link must point at one.
SF_OFFSETS: dict[int, frozenset[int]] = {
    **{m: frozenset({6, 13, 15, 17, 19, 21, 23, 26, 28, 30, 32, 37}) for m in (101, 102, 103)},
    **{m: frozenset({6, 15, 17, 22, 27, 32, 37, 54, 71, 104}) for m in (201, 202, 203, 204)},
    160: frozenset({2, 3, 4, 5}),
}

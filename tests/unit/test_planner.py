"""The read planner: tricky maps, and optimality against a brute-force search."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vatio.drivers.modbus.planner import plan_reads
from vatio.drivers.modbus.profile import Limits, Point, RegisterType, load_profile
from vatio.drivers.modbus.register_codec import DataType

WIDTH_TYPE = {1: DataType.U16, 2: DataType.F32, 4: DataType.F64}


def pt(name, address, width=2, register_type=RegisterType.INPUT):
    return Point(
        quantity=name,
        address=address,
        register_type=register_type,
        data_type=WIDTH_TYPE[width],
        word_order="big",
        byte_order="big",
    )


def assert_valid(plan, points, limits):
    covered = [p for r in plan for p in r.points]
    assert sorted(p.quantity for p in covered) == sorted(p.quantity for p in points)
    for r in plan:
        assert 1 <= r.count <= limits.max_registers
        if limits.even_start:
            assert r.start % 2 == 0
        if limits.even_count:
            assert r.count % 2 == 0
        for p in r.points:
            assert r.start <= p.address and p.end <= r.end  # never split a value
            assert p.register_type is r.register_type


def test_docstring_example():
    points = [
        pt("a", 0),
        pt("b", 2, 1),
        pt("c", 3, 4),
        pt("d", 7),
        pt("e", 12),
        pt("f", 14),
        pt("g", 24),
    ]
    limits = Limits(max_registers=10)
    plan = plan_reads(points, limits)
    assert [(r.start, r.count) for r in plan] == [(0, 9), (12, 4), (24, 2)]
    points[-1] = pt("g", 20)
    assert [(r.start, r.count) for r in plan_reads(points, limits)] == [(0, 9), (12, 10)]


def test_contiguous_registers_coalesce_into_one_request():
    points = [pt(f"p{i}", 2 * i) for i in range(10)]
    plan = plan_reads(points, Limits())
    assert [(r.start, r.count) for r in plan] == [(0, 20)]


def test_limit_splits_and_never_splits_a_value():
    points = [pt(f"p{i}", 2 * i) for i in range(41)]  # 82 registers
    limits = Limits(max_registers=80, even_start=True, even_count=True)
    plan = plan_reads(points, limits)
    assert len(plan) == 2
    assert_valid(plan, points, limits)


def test_odd_limit_with_two_register_values():
    points = [pt(f"p{i}", 2 * i) for i in range(5)]  # registers 0..9
    limits = Limits(max_registers=5)
    plan = plan_reads(points, limits)
    assert len(plan) == 3  # 2 values (4 registers) per request at most
    assert_valid(plan, points, limits)


def test_small_gap_is_filled_when_it_saves_a_request():
    points = [pt("a", 0), pt("b", 10)]
    assert len(plan_reads(points, Limits())) == 1


def test_gap_over_max_gap_is_not_read_through():
    points = [pt("a", 0), pt("b", 10)]
    assert len(plan_reads(points, Limits(max_gap=7))) == 2
    assert len(plan_reads(points, Limits(max_gap=8))) == 1


def test_max_gap_zero_reads_only_mapped_registers():
    points = [pt("a", 0), pt("b", 2), pt("c", 5, 1)]
    plan = plan_reads(points, Limits(max_gap=0))
    assert [(r.start, r.count) for r in plan] == [(0, 4), (5, 1)]


def test_even_start_rounds_down_and_even_count_rounds_up():
    points = [pt("a", 3, 1), pt("b", 4, 1)]
    plan = plan_reads(points, Limits(even_start=True, even_count=True))
    assert [(r.start, r.count) for r in plan] == [(2, 4)]


def test_mixed_widths_and_overlapping_aliases():
    points = [pt("u", 0, 1), pt("f", 1, 2), pt("d", 3, 4), pt("alias", 3, 2)]
    plan = plan_reads(points, Limits(max_registers=7))
    assert [(r.start, r.count) for r in plan] == [(0, 7)]


def test_input_and_holding_never_share_a_request():
    points = [pt("a", 0), pt("b", 2, register_type=RegisterType.HOLDING)]
    plan = plan_reads(points, Limits())
    assert {r.register_type for r in plan} == {RegisterType.INPUT, RegisterType.HOLDING}
    assert len(plan) == 2


def test_fewest_registers_among_fewest_requests():
    # three requests are needed either way; reading 0..41 and 52..87 costs fewer registers
    # than a greedy 0..79 + 80..87 split would (SDM630's first block)
    plan = plan_reads(
        load_profile("eastron_sdm630").points,
        Limits(max_registers=80, even_start=True, even_count=True),
    )
    assert [(r.start, r.count) for r in plan][:2] == [(0, 42), (52, 36)]


@pytest.mark.parametrize("name,requests", [("eastron_sdm630", 4), ("eastron_sdm120", 3)])
def test_builtin_profiles(name, requests):
    profile = load_profile(name)
    plan = plan_reads(profile.points, profile.limits)
    assert len(plan) == requests
    assert_valid(plan, profile.points, profile.limits)


# ---- brute force -------------------------------------------------------------------------


def brute_force_min_requests(points, limits):
    """Fewest windows covering every point, by exhaustive search over tight windows."""
    starts = {p.address - (p.address % 2 if limits.even_start else 0) for p in points}
    ends = {p.end for p in points}
    mapped = {a for p in points for a in range(p.address, p.end)}
    windows = []
    for s, e in itertools.product(starts, ends):
        count = e - s
        if count <= 0:
            continue
        if limits.even_count and count % 2:
            count += 1
        if count > limits.max_registers:
            continue
        inside = [p for p in points if s <= p.address and p.end <= s + count]
        if not inside:
            continue
        if limits.max_gap is not None:
            lo = min(p.address for p in inside)
            hi = max(p.end for p in inside)
            run = longest = 0
            for a in range(lo, hi):
                run = 0 if a in mapped else run + 1
                longest = max(longest, run)
            if longest > limits.max_gap:
                continue
        windows.append(frozenset(p.quantity for p in inside))
    everything = frozenset(p.quantity for p in points)
    for k in range(1, len(points) + 1):
        for combo in itertools.combinations(set(windows), k):
            if frozenset().union(*combo) == everything:
                return k
    raise AssertionError("no cover")


@st.composite
def random_map(draw):
    n = draw(st.integers(1, 6))
    even_start = draw(st.booleans())
    address = draw(st.integers(0, 5))
    points = []
    for i in range(n):
        width = draw(st.sampled_from([1, 2, 4]))
        if even_start:
            address += address % 2  # as the profile loader demands
        points.append(pt(f"q{i}", address, width))
        address += width + draw(st.integers(0, 6))
    limits = Limits(
        max_registers=draw(st.integers(4, 14)),
        even_start=even_start,
        even_count=draw(st.booleans()),
        max_gap=draw(st.one_of(st.none(), st.integers(0, 4))),
    )
    return points, limits


@settings(max_examples=300, deadline=None)
@given(random_map())
def test_planner_matches_brute_force(case):
    points, limits = case
    plan = plan_reads(points, limits)
    assert_valid(plan, points, limits)
    assert len(plan) == brute_force_min_requests(points, limits)

"""Re-planning after a refusal: splitting requests at their gaps, and the plan a device learns.

The device side is played by an oracle with the rule of a strict server (libmodbus with a
sparse map, some firmwares): a request that touches any register no value occupies is
refused with exception 2. The end-to-end tests (tests/integration/test_replan.py) play it
with a real Modbus server.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_planner import pt
from vatio.drivers.modbus.planner import (
    ReadRequest,
    gap_free_pieces,
    is_gap_free,
    plan_reads,
    request_fits,
    split_request,
)
from vatio.drivers.modbus.profile import Limits, Point, Profile, RegisterType, load_profile
from vatio.drivers.modbus.replan import ReadPlan, profile_key
from vatio.drivers.statefile import StateFile


@st.composite
def refusing_map(draw):
    """Values with random widths and gaps (sometimes overlapping aliases), both register
    types, and random limits the values fit."""
    even_start = draw(st.booleans())
    points = []
    for rtype in (RegisterType.INPUT, RegisterType.HOLDING):
        address = draw(st.integers(0, 9))
        for i in range(draw(st.integers(0 if rtype is RegisterType.HOLDING else 1, 14))):
            width = draw(st.sampled_from([1, 2, 4]))
            if even_start:
                address += address % 2  # as the profile loader demands
            points.append(pt(f"{rtype.value}{i}", address, width, rtype))
            address += max(width + draw(st.integers(-1, 9)), 0)
    limits = Limits(
        max_registers=draw(st.integers(4, 40)),
        even_start=even_start,
        even_count=draw(st.booleans()),
        max_gap=draw(st.one_of(st.none(), st.integers(0, 6))),
    )
    return points, limits


def strict_refuses(req: ReadRequest, points: list[Point]) -> bool:
    mapped = {(p.register_type, a) for p in points for a in range(p.address, p.end)}
    return any((req.register_type, a) not in mapped for a in range(req.start, req.end))


def covered_once(plan: list[ReadRequest], points: list[Point]) -> None:
    names = sorted(p.quantity for r in plan for p in r.points)
    assert names == sorted(p.quantity for p in points)


@settings(max_examples=300, deadline=None)
@given(refusing_map())
def test_splitting_covers_every_value_once_within_limits_and_ends_gap_free(case):
    points, limits = case
    for req in plan_reads(points, limits):
        pieces = split_request(req, limits)
        if pieces is None:
            assert is_gap_free(req)
            continue
        assert len(pieces) == 2  # a bisection
        covered_once(pieces, list(req.points))
        for piece in pieces:
            assert request_fits(piece, limits)
            # only ever shrinks (an even count may round a piece's end one register further)
            assert req.start <= piece.start and piece.end <= req.end + limits.even_count
        leaves = gap_free_pieces(req, limits)  # recursion terminates (no hypothesis timeout)
        covered_once(leaves, list(req.points))
        assert all(is_gap_free(leaf) and request_fits(leaf, limits) for leaf in leaves)
        # the leaves are the gap-free plan of these values: one per run of back-to-back
        # values, none of them reading a register between two values
        assert len(leaves) == len(plan_reads(req.points, limits.model_copy(update={"max_gap": 0})))
        assert len(leaves) <= len(req.points)


@settings(max_examples=200, deadline=None)
@given(refusing_map())
def test_splitting_for_a_refused_count_ends_at_single_values(case):
    points, limits = case
    for req in plan_reads(points, limits):
        leaves, todo = [], [req]
        while todo:
            piece = todo.pop()
            assert request_fits(piece, limits)
            halves = split_request(piece, limits, at_values=True)
            if halves is None:
                leaves.append(piece)
            else:
                assert len(halves) == 2
                todo += halves
        covered_once(leaves, list(req.points))
        for leaf in leaves:  # one value, or values that overlap (aliases) in a chain
            chain = sorted(leaf.points, key=lambda p: (p.address, p.end))
            end = chain[0].end
            for p in chain[1:]:
                assert p.address < end
                end = max(end, p.end)


def profile_of(points: list[Point], limits: Limits) -> Profile:
    return Profile(
        name="t", model="T", manufacturer="Test", source="test", limits=limits,
        points=tuple(points),
    )  # fmt: skip


def poll(plan: ReadPlan, refuse, budget: int = 1000) -> tuple[set[str], int]:
    """One poll as ModbusDevice.poll runs it: (values read, requests sent)."""
    read: set[str] = set()
    sent = index = 0
    while index < len(plan.requests):
        req = plan.requests[index]
        sent += 1
        code = refuse(req)
        if code:
            n = plan.refused(index, 2 if code is True else code)
            if n and sent < budget:
                continue
            index += max(n, 1)
            continue
        if plan.untried or plan.final:
            plan.accepted(req)
        read.update(p.quantity for p in req.points)
        index += 1
    plan.settle()
    return read, sent


@settings(max_examples=200, deadline=None)
@given(refusing_map(), st.integers(1, 6))
def test_a_strict_device_teaches_the_plan_in_bounded_polls(case, budget):
    points, limits = case
    plan = ReadPlan("dev", profile_of(points, limits), 1)
    refuse = lambda r: strict_refuses(r, points)  # noqa: E731
    polls = 0
    while True:
        polls += 1
        read, _ = poll(plan, refuse, budget)
        if not plan.learning:
            break
        assert polls < 4 * len(points) + 4, "learning does not end"
    covered_once(plan.requests, points)
    assert all(request_fits(r, limits) for r in plan.requests)
    # every value that a request of its own could read without touching a hole is read
    for p in points:
        alone = plan_reads([p], limits.model_copy(update={"max_gap": 0}))[0]
        mine = next(r for r in plan.requests if p in r.points)
        if not strict_refuses(alone, points) and is_gap_free(mine):
            assert p.quantity in read or strict_refuses(mine, points)
    # refused requests are exactly the ones that stay null, and the reason names them
    refused = [p.quantity for r in plan.requests if strict_refuses(r, points) for p in r.points]
    assert sorted(set(p.quantity for p in points) - read) == sorted(refused)
    assert (plan.degraded is None) == (not refused)
    # once learned, a poll sends exactly one request per planned request: nothing is split
    before = list(plan.requests)
    _, sent = poll(plan, refuse)
    assert plan.requests == before and sent == len(before)


def test_sdm630_on_a_strict_device_learns_the_gap_free_plan_in_one_poll(tmp_path):
    profile = load_profile("eastron_sdm630")
    points = list(profile.points)
    plan = ReadPlan("main", profile, 1)
    read, sent = poll(plan, lambda r: strict_refuses(r, points))
    assert read == {p.quantity for p in points}  # 38 of 38 values in the first poll
    # 2 of the 4 planned requests refused; bisection: 5 splits, 5 refusals, 14 requests sent
    assert len(plan.requests) == 9 and plan.replans == 5 and plan.refusals == 5
    assert sent == 14 and plan.degraded is None
    lines = plan.lines()
    assert "9 request(s) per poll (the profile's plan has 4)" in lines[0]
    assert any("input 52..87 split into 52..53, 56..57, 60..63, 70..79, 84..87" in x for x in lines)


def test_the_learned_plan_is_stored_atomically_and_reused_until_the_profile_changes(tmp_path):
    profile = load_profile("eastron_sdm120")
    points = list(profile.points)
    store = StateFile(tmp_path / "drivers" / "m.json")
    plan = ReadPlan("m", profile, 2)
    plan.use_store(store)
    poll(plan, lambda r: strict_refuses(r, points))
    data = json.loads(store.path.read_text())
    assert data["key"] == profile_key(profile, 2) and len(data["plan"]) == 10
    assert [p.name for p in store.path.parent.iterdir()] == ["m.json"]  # no temp file left

    again = ReadPlan("m", profile, 2)
    again.use_store(store)
    assert again.requests == plan.requests
    read, sent = poll(again, lambda r: strict_refuses(r, points))
    assert sent == 10 and len(read) == 16 and again.refusals == 0

    other_unit = ReadPlan("m", profile, 3)
    other_unit.use_store(store)
    assert other_unit.requests == other_unit.profile_plan
    changed = profile.model_copy(
        update={"limits": profile.limits.model_copy(update={"max_registers": 60})}
    )
    fresh = ReadPlan("m", changed, 2)
    fresh.use_store(store)
    assert fresh.requests == fresh.profile_plan


def test_a_value_the_device_lacks_stays_null_and_degrades_it():
    profile = load_profile("eastron_sdm630")
    points = [p for p in profile.points if p.quantity != "current_n_a"]
    plan = ReadPlan("main", profile, 1)
    read, _ = poll(plan, lambda r: strict_refuses(r, points))
    assert len(read) == 37 and "current_n_a" not in read
    assert plan.degraded == (
        "1 of 38 values refused by the device (exception 2 (illegal data address)): current_n_a"
    )
    assert any("224..225 refused with exception 2" in x for x in plan.lines())


def test_a_value_missing_from_a_block_with_no_gap_costs_that_value_only():
    """A meter variant without one register in the middle of a back-to-back run (exception
    2 for the whole run): the run is cut between values until only that one is refused;
    before, the whole run — energy included — stayed null for good."""
    profile = load_profile("eastron_sdm630")
    points = [p for p in profile.points if p.quantity != "voltage_l2_v"]  # 0x0002, mid-run
    plan = ReadPlan("main", profile, 1)
    for _ in range(12):
        read, _ = poll(plan, lambda r: strict_refuses(r, points), budget=3)
        if not plan.learning:
            break
    assert not plan.learning
    read, sent = poll(plan, lambda r: strict_refuses(r, points))
    assert read == {p.quantity for p in points}
    assert plan.degraded is not None and plan.degraded.endswith(": voltage_l2_v")
    assert sent == len(plan.requests)  # learned: one request per planned request


@settings(max_examples=100, deadline=None)
@given(refusing_map(), st.integers(10, 40))
def test_a_device_that_refuses_long_reads_with_exception_3_gets_short_ones(case, longest):
    points, limits = case
    plan = ReadPlan("dev", profile_of(points, limits), 1)
    refuse = lambda r: 3 if r.count > longest else 0  # noqa: E731
    for _ in range(len(points) + 2):
        read, _ = poll(plan, refuse, budget=3)
        if not plan.learning:
            break
    assert not plan.learning
    read, sent = poll(plan, refuse)
    assert read == {p.quantity for p in points} and plan.degraded is None
    assert all(r.count <= longest for r in plan.requests) and sent == len(plan.requests)


def test_a_device_that_refuses_everything_keeps_the_profiles_plan():
    profile = load_profile("eastron_sdm630")
    plan = ReadPlan("main", profile, 1)
    for _ in range(3):
        read, _ = poll(plan, lambda r: True)
    assert not read and plan.requests == plan.profile_plan  # not 9 refused requests per poll
    assert plan.degraded is not None and plan.degraded.startswith("38 of 38 values refused")


def test_an_unwritable_state_dir_keeps_the_plan_in_memory(tmp_path, caplog):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        profile = load_profile("eastron_sdm120")
        points = list(profile.points)
        plan = ReadPlan("m", profile, 1)
        plan.use_store(StateFile(ro / "drivers" / "m.json"))
        if plan.store is not None and plan.store.save({}):  # running as root: no refusal
            plan.store.path.unlink()
            plan.store.path.parent.rmdir()
            ro.chmod(0o500)
            (tmp_path / "file").write_text("")
            plan.store = StateFile(tmp_path / "file" / "m.json")  # a file as folder: ENOTDIR
        poll(plan, lambda r: strict_refuses(r, points))
        poll(plan, lambda r: strict_refuses(r, [p for p in points if p.quantity != "demand_w"]))
        read, _ = poll(plan, lambda r: strict_refuses(r, points))
        assert len(read) == 16
        assert sum("cannot write" in r.message for r in caplog.records) == 1
    finally:
        ro.chmod(0o700)


def test_a_busy_reply_while_learning_says_nothing_about_the_plan():
    profile = load_profile("eastron_sdm120")
    points = list(profile.points)
    plan = ReadPlan("m", profile, 1)
    busy = {"left": 1}

    def refuse(r):
        if len(r.points) == 1 and r.start == 6 and busy["left"]:  # a piece, once: busy
            busy["left"] -= 1
            return 6
        return strict_refuses(r, points)

    read, _ = poll(plan, refuse)
    assert "current_a" not in read and plan.learning  # the busy piece is tried again
    read, _ = poll(plan, refuse)
    assert len(read) == 16 and not plan.learning and plan.degraded is None

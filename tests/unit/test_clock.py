"""The simulated clock: parsing VATIO_SIMULATED_TIME, and time running at its speed."""

import datetime as dt

import pytest

from vatio.common import clock
from vatio.common.clock import SimulatedClock


def test_a_simulated_clock_runs_at_its_speed_from_its_anchor(monkeypatch):
    monkeypatch.setattr(clock.time, "time", lambda: 1000.0 + 2.0)
    c = SimulatedClock.parse("2026-11-03T00:00:00-06:00,x60,1000")
    start = dt.datetime(2026, 11, 3, 6, tzinfo=dt.UTC).timestamp()
    assert c.now() == start + 120.0


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("2026-11-03T00:00:00,10", "UTC offset"),
        ("yesterday,10", "not an ISO 8601 time"),
        ("2026-11-03T00:00:00Z,fast", "must be numbers"),
        ("2026-11-03T00:00:00Z,0", "above 0"),
        ("2026-11-03T00:00:00Z", "START,SPEED"),
    ],
)
def test_a_malformed_spec_says_what_is_wrong(spec, says):
    with pytest.raises(ValueError, match=says):
        SimulatedClock.parse(spec)


async def test_the_process_clock_follows_the_environment(monkeypatch):
    monkeypatch.setenv(clock.ENV, "2030-01-01T00:00:00+00:00,1000")
    try:
        assert clock.use_environment() is not None
        assert abs(clock.now() - dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp()) < 100
        assert clock.speed() == 1000.0
    finally:
        clock.use(None)
    assert clock.speed() == 1.0


def test_the_cli_refuses_a_malformed_spec(monkeypatch, capsys):
    from vatio.agent.cli import main

    monkeypatch.setenv(clock.ENV, "soon,2")
    assert main(["history", "-c", "/nonexistent.yaml"]) == 2
    assert "VATIO_SIMULATED_TIME" in capsys.readouterr().err

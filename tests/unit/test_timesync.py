"""The clock's sync state: the real kernel's answer (adjtimex, read only), the test override,
the simulated clock, and the agent's trust policy with its grace and log lines."""

from __future__ import annotations

import logging
import time

import pytest

from vatio.agent.config import TimeConfig
from vatio.agent.timetrust import ClockTrust
from vatio.common import clock, timesync


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv(timesync.ENV, raising=False)
    timesync.forget()
    yield
    timesync.forget()


def test_the_real_kernel_answers_without_privileges():
    st = timesync.read_kernel()
    # this machine may or may not be synchronised; either way it is a valid answer
    if st.source == "kernel":
        assert isinstance(st.synchronised, bool)
        assert st.max_error_s is not None and 0 <= st.max_error_s <= 16.0
        assert st.est_error_s is not None and st.est_error_s >= 0
        assert st.kernel_status is not None
        # the rule timedatectl uses: synchronised iff the max error is below 16 s
        assert st.synchronised == (st.max_error_s < 16.0)
    else:  # a sandbox that filters adjtimex: said, not raised
        assert st.source in ("timesyncd", "unavailable") and st.detail
    assert st.describe()


def test_the_answer_is_cached_for_a_few_seconds(monkeypatch):
    calls = []
    real = timesync.read_kernel

    def counting() -> timesync.SyncState:
        calls.append(1)
        return real()

    monkeypatch.setattr(timesync, "read_kernel", counting)
    for _ in range(1000):
        timesync.state()
    assert len(calls) == 1


def test_the_simulated_clock_counts_as_synchronised():
    clock.use(clock.SimulatedClock(0.0, 10.0, time.time()))
    try:
        assert timesync.refresh() == timesync.SyncState(True, "simulated")
    finally:
        clock.use(None)


def test_the_override_file_is_reread_and_can_make_the_clock_read_off(monkeypatch, tmp_path):
    f = tmp_path / "sync"
    f.write_text("no offset=-259200\n")
    monkeypatch.setenv(timesync.ENV, str(f))
    st = timesync.refresh()
    assert (st.synchronised, st.source) == (False, "override")
    assert clock.now() == pytest.approx(time.time() - 259200, abs=5)
    f.write_text("yes")
    assert timesync.refresh().synchronised is True
    assert clock.now() == pytest.approx(time.time(), abs=5)
    monkeypatch.setenv(timesync.ENV, "no")
    assert timesync.refresh().synchronised is False


@pytest.mark.parametrize("text", ["maybe", "", "no later=5", "yes offset=soon"])
def test_a_malformed_override_says_what_is_wrong(text):
    with pytest.raises(ValueError, match=timesync.ENV):
        timesync.parse_override(text)


def test_trust_policy_grace_and_one_log_line_each_way(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="vatio.agent.timetrust")
    changes = []
    trust = ClockTrust(TimeConfig(unsynced_grace=0.2), on_change=lambda: changes.append(1))
    monkeypatch.setenv(timesync.ENV, "no")
    timesync.forget()
    for _ in range(50):
        assert trust.check() is False
    assert trust.problem() is None  # within the grace: normal at boot
    time.sleep(0.25)
    for _ in range(50):
        trust.check()
    assert trust.problem() is not None and "not synchronised" in trust.problem()
    assert trust.status()["trusted"] is False and "unsynchronised_for_s" in trust.status()
    monkeypatch.setenv(timesync.ENV, "yes")
    timesync.forget()
    for _ in range(50):
        assert trust.check() is True
    assert trust.problem() is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines  # found unsynchronised, grace over (warning), back
    assert [r.levelname for r in caplog.records] == ["INFO", "WARNING", "INFO"]
    assert changes == [1, 1]  # the status is republished when it became and stopped being a problem


def test_require_sync_false_trusts_the_clock_and_unknown_follows_the_policy(monkeypatch):
    monkeypatch.setenv(timesync.ENV, "no")
    assert ClockTrust(TimeConfig(require_sync=False)).check() is True
    unknown = timesync.SyncState(None, "unavailable", detail="adjtimex: Operation not permitted")
    monkeypatch.setattr(timesync, "state", lambda: unknown)
    assert ClockTrust(TimeConfig(require_sync="auto")).check() is True
    assert ClockTrust(TimeConfig(require_sync=True)).check() is False

"""A flood of half-open HTTP connections against a real ``vatio run`` with a small open-files
limit: the agent keeps polling on schedule, stays quiet in the log, and answers /healthz
(issue 12, item 6: 1,500 such connections exhausted the agent's fds and wrote 2,812 lines)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import select
import socket
import time
import urllib.error
import urllib.request
from datetime import datetime

import pytest

from simulators.brokers import free_port
from tests.helpers import wait_until
from tests.integration.test_delivery import DEVICES, start_meters
from tests.integration.test_status_http import config

pytestmark = pytest.mark.integration

CONNECTIONS = 1500
SLOW = 150  # of them send a partial request head, then one byte a second (slow-loris)
BURST_S = 6.0
FD_LIMIT = 256  # the agent's RLIMIT_NOFILE: today's accept loop would take every one
INTERVAL = 0.2  # DEVICES poll every 200 ms, all on the same phase (one stagger slot)


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:  # refused, reset, timed out: no answer
        return 0, str(exc)


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def established(socks: list[socket.socket]) -> int:
    """How many of the non-blocking connects completed (writable, no error)."""
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLOUT)
    ready = {fd for fd, ev in poller.poll(0) if ev & select.POLLOUT}
    return sum(
        1
        for s in socks
        if s.fileno() in ready and not s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    )


def missed_ticks(metrics: str) -> int:
    return sum(
        int(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("vatio_missed_ticks_total")
    )


async def test_a_flood_of_half_open_connections_costs_no_poll(
    tmp_path, mosquitto, capture_factory, agent_factory
):
    sim, port = await start_meters()
    http_port = free_port()
    base = f"http://127.0.0.1:{http_port}"
    socks: list[socket.socket] = []
    try:
        cap = capture_factory(mosquitto.port)
        agent = agent_factory(config(tmp_path, port, mosquitto.url, http_port))
        # before the interpreter has opened much: the agent sizes its HTTP share from this
        resource.prlimit(agent.proc.pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
        await wait_until(lambda: "status on http" in agent.output(), 20, "the endpoint")
        await wait_until(lambda: len(cap.on("/m5/telemetry")) >= 5, 20, "telemetry")
        assert (await asyncio.to_thread(get, base + "/healthz"))[0] == 200
        fds_before = open_fds(agent.proc.pid)
        missed_before = missed_ticks((await asyncio.to_thread(get, base + "/metrics"))[1])
        lines_before = len(agent.output().splitlines())

        # The window counted is whole ticks: from half a tick before one to half a tick
        # after the last, so a reading stamped a few ms after its tick is in no doubt.
        start = (math.floor(time.time() / INTERVAL) + 1.5) * INTERVAL
        await asyncio.sleep(start - time.time())
        for i in range(CONNECTIONS):
            s = socket.socket()
            socks.append(s)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", http_port))
            if i % (CONNECTIONS // SLOW) == 0:
                with contextlib.suppress(OSError):
                    s.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        max_fds = 0
        got_during: list[int] = []
        deadline = start + BURST_S
        while time.time() < deadline:
            for s in socks[:: CONNECTIONS // SLOW]:
                with contextlib.suppress(OSError):
                    s.send(b"a")  # one byte a second
            max_fds = max(max_fds, open_fds(agent.proc.pid))
            if not got_during:  # a real client, in the middle of the flood
                got_during.append((await asyncio.to_thread(get, base + "/healthz"))[0])
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.time())))
        connected = established(socks)
        for s in socks:
            s.close()
        socks.clear()

        closed = time.time()
        healthz_after = None  # seconds from the end of the burst to a 200 from /healthz
        while healthz_after is None and time.time() < closed + 10:
            if (await asyncio.to_thread(get, base + "/healthz", 2))[0] == 200:
                healthz_after = time.time() - closed
        end = (math.floor(time.time() / INTERVAL) + 0.5) * INTERVAL
        await asyncio.sleep(1.0)  # the window's last messages reach the broker
        expected = round((end - start) / INTERVAL)
        polls = {}
        for name, *_ in DEVICES:
            polls[name] = sum(
                1 for b in cap.on(f"/{name}/telemetry") if start <= epoch(b["ts"]) < end
            )
        gaps = {
            name: len(seqs) - (max(seqs) - min(seqs) + 1)
            for name, *_ in DEVICES
            if (seqs := {b["seq"] for b in cap.on(f"/{name}/telemetry")})
        }
        status, metrics = await asyncio.to_thread(get, base + "/metrics")
        missed = missed_ticks(metrics) - missed_before
        lines = agent.output().splitlines()[lines_before:]
        code = agent.stop()
        out = agent.output()
        print(
            f"\nconnections tried {CONNECTIONS} ({SLOW} slow-loris), established "
            f"{connected} at the end; agent fds {fds_before} before, at most {max_fds} during "
            f"(limit {FD_LIMIT}); polls expected {expected} per device, got {polls}; "
            f"missed ticks {missed}; seq gaps {gaps}; log lines from the burst on "
            f"{len(lines)}; GET during the burst {got_during}, /healthz "
            f"{healthz_after and round(healthz_after, 3)} s after it; burst {closed - start:.1f} s",
            *lines[:20],
            sep="\n",
        )
        assert code == 0
        assert polls == {name: expected for name, *_ in DEVICES}, "polls were lost"
        assert got_during == [200]
        assert max_fds <= fds_before + 32 + 2, "HTTP took more fds than its share"
        assert status == 200 and 'vatio_http_rejected_total{reason="evicted"}' in metrics
        assert healthz_after is not None
        assert missed == 0 and set(gaps.values()) == {0}
        assert "Traceback" not in out and "out of system resource" not in out
        assert len(lines) <= 3, lines
    finally:
        for s in socks:
            s.close()
        await sim.stop()

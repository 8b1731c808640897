"""The status server's bounds (issue 12, item 6): a slow-loris is cut by the total header
timeout, an oversized head gets 431, the connection limit holds (measured in the process's
own sockets), a real GET is answered during a flood, a client that never reads is cut, and
running out of file descriptors is one warning, not a traceback per second."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil

from vatio.agent.httpstatus import StatusServer


async def ok() -> tuple[int, str, str]:
    return 200, "text/plain", "fine\n"


async def metrics() -> tuple[int, str, str]:
    return 200, "text/plain; version=0.0.4", "# TYPE up gauge\nup 1\n"


async def exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def server_side_sockets(port: int) -> int:
    """Connections this process holds on the server's side of ``port`` (accepted fds)."""
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.raddr
    )


@contextlib.asynccontextmanager
async def serving(**limits):
    server = StatusServer("127.0.0.1", 0, {"/ok": ok, "/metrics": metrics}, **limits)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def idle_sockets(port: int, n: int) -> list[socket.socket]:
    """``n`` connections that send nothing (non-blocking connects, as a flood would)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


async def test_a_slow_loris_is_cut_by_the_total_header_timeout():
    async with serving(header_timeout=1.0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        started = time.monotonic()
        writer.write(b"GET /ok HTTP/1.1\r\n")
        closed_after = None
        try:
            for _ in range(40):  # a byte every 0.1 s: a per-read timeout would never fire
                await asyncio.sleep(0.1)
                writer.write(b"a")
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(1), 0.001) == b"":
                        closed_after = time.monotonic() - started
                        break
        except ConnectionError:
            closed_after = time.monotonic() - started
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        assert closed_after is not None and 0.9 < closed_after < 3.0, closed_after
        assert server.rejected["header_timeout"] == 1
        assert (await exchange(server.port, b"GET /ok HTTP/1.1\r\n\r\n")).endswith(b"fine\n")


async def test_an_oversized_head_gets_431_and_one_just_under_is_served():
    async with serving(max_head_bytes=4096) as server:
        big = b"GET /ok HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
        assert (await exchange(server.port, big)).startswith(b"HTTP/1.1 431 ")
        fits = b"GET /ok HTTP/1.1\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n"
        assert (await exchange(server.port, fits)).startswith(b"HTTP/1.1 200 ")
        assert server.rejected["too_large"] == 1


async def test_the_connection_limit_holds_and_a_real_get_is_served_during_a_flood():
    async with serving(max_connections=8, header_timeout=10.0) as server:
        flood = idle_sockets(server.port, 300)
        try:
            most = 0
            deadline = time.monotonic() + 1.0
            got = None
            while time.monotonic() < deadline:
                most = max(most, server_side_sockets(server.port))
                if got is None:  # a real client in the middle of the flood
                    started = time.monotonic()
                    got = await exchange(server.port, b"GET /ok HTTP/1.1\r\n\r\n", 2.0)
                    took = time.monotonic() - started
                await asyncio.sleep(0.05)
            assert most <= 8, f"{most} accepted sockets held at once"
            assert got is not None and got.startswith(b"HTTP/1.1 200 "), got
            # not behind the idle ones: they would hold every slot for the header timeout
            assert took < 2.0, f"the GET waited {took:.2f} s behind idle connections"
            assert server.connections <= 8
            assert server.rejected["evicted"] >= 300 - 8
        finally:
            for s in flood:
                s.close()


async def test_busy_slots_refuse_a_new_connection_at_once():
    release = asyncio.Event()

    async def slow() -> tuple[int, str, str]:
        await release.wait()
        return 200, "text/plain", "late\n"

    server = StatusServer("127.0.0.1", 0, {"/slow": slow}, max_connections=2)
    await server.start()
    try:
        busy = [
            asyncio.create_task(exchange(server.port, b"GET /slow HTTP/1.1\r\n\r\n"))
            for _ in range(2)
        ]
        while server.connections < 2 or any(c.waiting for c in server._conns.values()):
            await asyncio.sleep(0.01)
        assert await exchange(server.port, b"GET /slow HTTP/1.1\r\n\r\n", 2.0) == b""
        assert server.rejected["limit"] == 1
        release.set()
        assert all(r.endswith(b"late\n") for r in await asyncio.gather(*busy))
    finally:
        await server.close()


async def test_malformed_requests_get_an_answer_not_silence():
    async with serving() as server:
        assert (await exchange(server.port, b"GARBAGE\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        assert (await exchange(server.port, b"GET /ok\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        huge = await exchange(server.port, b"GET /" + b"p" * 15_000 + b" HTTP/1.1\r\n\r\n")
        assert huge.startswith(b"HTTP/1.1 404 ") and len(huge) < 600
        odd = await exchange(server.port, b"GET /\xff\xfe\x00 HTTP/1.1\r\n\r\n")
        assert odd.startswith(b"HTTP/1.1 404 ") and b"nosniff" in odd
        assert server.rejected["bad_request"] == 2
        # a bare LF ends a line too (netcat), and an empty line before the request is ignored
        assert (await exchange(server.port, b"\r\nGET /ok HTTP/1.0\n\n")).endswith(b"fine\n")
        text = (await exchange(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")).decode()
        assert "\nup 1\n" in text
        assert 'vatio_http_rejected_total{reason="bad_request"} 2\n' in text
        assert "vatio_http_requests_total 3\n" in text  # 404, 404, 200; this one counts after


async def test_a_client_that_never_reads_is_cut_by_the_write_timeout():
    async def big() -> tuple[int, str, str]:
        return 200, "text/plain", "x" * 8_000_000

    server = StatusServer("127.0.0.1", 0, {"/big": big}, write_timeout=0.5)
    await server.start()
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", server.port))
        s.send(b"GET /big HTTP/1.1\r\n\r\n")
        started = time.monotonic()
        while server.rejected["write_timeout"] == 0 and time.monotonic() - started < 3:
            await asyncio.sleep(0.05)
        assert 0.4 < time.monotonic() - started < 3.0
        assert server.connections == 0 and server.requests == 0
    finally:
        s.close()
        await server.close()


CHILD = textwrap.dedent(
    """
    import asyncio, logging, os, signal
    from vatio.agent.httpstatus import StatusServer

    async def ok():
        return 200, "text/plain", "fine\\n"

    async def main():
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        server = StatusServer("127.0.0.1", 0, {"/ok": ok})
        await server.start()
        free, stop = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, free.set)
        loop.add_signal_handler(signal.SIGUSR2, stop.set)
        hog = []  # the rest of the process took every fd (a leak, a flood elsewhere)
        try:
            while True:
                hog.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        print(server.port, flush=True)
        await free.wait()
        for fd in hog:
            os.close(fd)
        print("freed", flush=True)
        await stop.wait()
        print(server.rejected["out_of_fds"], flush=True)
        await server.close()

    asyncio.run(main())
    """
)


async def test_out_of_file_descriptors_is_one_warning_and_serving_resumes():
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    flood: list[socket.socket] = []
    try:
        assert child.stdout is not None
        port = int(await asyncio.to_thread(child.stdout.readline))
        flood = idle_sockets(port, 200)
        await asyncio.sleep(3.0)  # accept fails with EMFILE for 3 s: 6 retries
        child.send_signal(signal.SIGUSR1)
        assert (await asyncio.to_thread(child.stdout.readline)).strip() == "freed"
        got = await exchange(port, b"GET /ok HTTP/1.1\r\n\r\n", 5.0)
        child.send_signal(signal.SIGUSR2)
        refused = int(await asyncio.to_thread(child.stdout.readline))
        _, err = await asyncio.to_thread(child.communicate, timeout=10)
    finally:
        for s in flood:
            s.close()
        if child.poll() is None:
            child.kill()
            child.communicate()
    lines = err.splitlines()
    print(f"\n200 connections, {refused} accepts refused by EMFILE, log: {lines}")
    assert got.endswith(b"fine\n")
    assert refused >= 3
    assert "Traceback" not in err and "out of system resource" not in err
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert len(warnings) == 1 and "out of file descriptors" in warnings[0], lines
    assert len(lines) == 2, lines  # "status on ..." and that warning
    assert child.returncode == 0

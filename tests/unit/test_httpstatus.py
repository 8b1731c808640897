"""The small HTTP server behind the status page: routes, errors, nothing but GET."""

from __future__ import annotations

import asyncio

from vatio.agent.httpstatus import StatusServer


async def fetch(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


async def test_routes_errors_and_methods():
    async def ok() -> tuple[int, str, str]:
        return 200, "text/plain", "fine\n"

    async def broken() -> tuple[int, str, str]:
        raise RuntimeError("a bug behind one page")

    server = StatusServer("127.0.0.1", 0, {"/ok": ok, "/broken": broken})
    await server.start()
    try:
        got = await fetch(server.port, b"GET /ok?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\nfine\n")
        got = await fetch(server.port, b"GET /broken HTTP/1.1\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        got = await fetch(server.port, b"GET /ok HTTP/1.1\r\n\r\n")  # still serving
        assert got.startswith(b"HTTP/1.1 200")
        assert (await fetch(server.port, b"POST /ok HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
        assert (await fetch(server.port, b"GET /nope HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
    finally:
        await server.close()

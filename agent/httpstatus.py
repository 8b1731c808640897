"""The agent's local HTTP endpoint (``http: {listen: 127.0.0.1:8089}``): ``/healthz`` for a
supervisor and ``/metrics`` in Prometheus' text format for a scraper.

A few GET routes on a listening socket of our own, not a web framework: aiohttp alone would
add ~34 MiB to an agent that must stay under 40 MiB on a Pi (stack-notes §5). Read-only; it
never shows a secret (no config values, only counters and device names).

It shares a process with the polling, so it is bounded, and a flood of connections costs the
agent a few file descriptors, never the one a Modbus reconnect, a serial port or the SQLite
spool needs:

* **Own accept loop.** ``asyncio.start_server`` accepts as fast as connections arrive, with
  no limit; on EMFILE it logs ``socket.accept() out of system resource`` with a traceback
  through the loop's exception handler and retries a second later, again and again (one
  burst of 1,500 half-open connections wrote 2,812 log lines, issue 12), and
  ``asyncio.Server`` has no pause in Python 3.11. So the server owns the listening socket
  and accepts with ``loop.sock_accept``, one at a time.
* **At most** ``max_connections`` **at once** (32, and never more than an eighth of
  ``RLIMIT_NOFILE``). When all are taken, the oldest connection that has not yet sent its
  request is closed to make room: a real client sends its request as soon as it connects,
  so it is served during a burst of idle connections instead of waiting behind them. With
  none to spare (all are being answered) the new one is closed at once. Refusing to accept
  instead would keep the fds bounded too, but it queues a real client behind every idle
  one in the kernel's backlog, each holding a slot until its header timeout.
* **Header timeout** (10 s for the whole request head, not per read: a client that
  dribbles one byte a second is cut), **head size limit** (16 KiB for the request line and
  headers: 431) and **write timeout** (10 s to take the answer: a client that never reads).
  A request line that is not ``METHOD TARGET HTTP/x`` gets 400.
* **Out of file descriptors** (EMFILE/ENFILE, from elsewhere in the process): one warning
  a minute with a count, never a traceback; connections still waiting for their request
  are closed to give the fds back, and accepting resumes half a second later.

What it refused is counted and shown on ``/metrics``: ``vatio_http_rejected_total{reason}``,
with ``vatio_http_requests_total`` and ``vatio_http_connections``. It is not logged: browsers
open connections they never use (preconnect), so a cut idle connection is ordinary.

It listens on every address ``host`` resolves to (``localhost``: ``::1`` and ``127.0.0.1``),
as ``asyncio.start_server`` did. One request per connection (``Connection: close``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import resource
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vatio.common.i18n import tr

log = logging.getLogger(__name__)

Route = Callable[[], Awaitable[tuple[int, str, str]]]  # → status, content type, body

# A technician's browser (the page reads /api/status every 5 s), a scraper and systemd
# need a handful of connections at once; 32 leaves room and costs at most 32 fds.
MAX_CONNECTIONS = 32
# ... and never more than this share of RLIMIT_NOFILE (systemd's default soft limit is 1024;
# a test or a container may give far less): the rest is for buses, serial ports, SQLite, MQTT.
FD_SHARE = 8
# The whole request head, from accept; generous for an ssh tunnel over a mobile link.
HEADER_TIMEOUT = 10.0
# Request line + headers. Browsers send ~1 KiB; cookies other local apps set for 127.0.0.1
# come along through `ssh -L`, hence well above that (Node.js uses the same 16 KiB).
MAX_HEAD_BYTES = 16 * 1024
# For a client to take the answer (the status page is 11 KiB, /api/status a few KiB).
WRITE_TIMEOUT = 10.0
# After an error answer, how long unread input is drained before closing: closing with
# unread data sends a reset, which can destroy the answer before the client reads it.
LINGER_S = 1.0
LINGER_BYTES = 64 * 1024
# Accept errors that mean "no resources now": retry after a pause, as asyncio does.
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
ACCEPT_RETRY_S = 0.5
WARN_EVERY_S = 60.0
# The kernel's queue of connections not yet accepted: a flood waits there (no fd of ours).
# When it is full a real client's SYN is dropped and retried a second later: keep it large.
BACKLOG = 512

REJECT_REASONS = (
    "limit",  # all connections busy being answered: a new one was closed at once
    "evicted",  # closed before it sent its request, to make room for a new one
    "header_timeout",  # no complete request head within HEADER_TIMEOUT
    "too_large",  # request head over MAX_HEAD_BYTES: 431
    "bad_request",  # not an HTTP request line: 400
    "write_timeout",  # did not take the answer within WRITE_TIMEOUT
    "out_of_fds",  # accept failed: the process is out of file descriptors
)

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class PortTaken(Exception):
    """The configured address is in use or not ours; the message says what to change."""


class _TooLarge(Exception):
    pass


@dataclass
class _Connection:
    task: asyncio.Task[None] | None = None
    waiting: bool = True  # still reading its request head (or lingering): may be evicted


def fd_budget(wanted: int = MAX_CONNECTIONS) -> int:
    """Connections the server may hold at once: ``wanted``, capped at 1/FD_SHARE of the
    process's soft RLIMIT_NOFILE."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft // FD_SHARE))


class StatusServer:
    """GET routes on ``host:port``. A ``/metrics`` route gets the server's own counters
    appended, so the agent and the ingest bridge both show them without code of their own."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: dict[str, Route],
        *,
        max_connections: int = MAX_CONNECTIONS,
        header_timeout: float = HEADER_TIMEOUT,
        max_head_bytes: int = MAX_HEAD_BYTES,
        write_timeout: float = WRITE_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.routes = dict(routes)
        if "/metrics" in self.routes:
            self.routes["/metrics"] = self._with_own_metrics(self.routes["/metrics"])
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.max_head_bytes = max_head_bytes
        self.write_timeout = write_timeout
        self.rejected = dict.fromkeys(REJECT_REASONS, 0)
        self.requests = 0
        self._socks: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._conns: dict[socket.socket, _Connection] = {}  # in accept order: oldest first
        self._fd_errors_unsaid = 0
        self._last_fd_warning = self._last_accept_warning = -WARN_EVERY_S

    @property
    def connections(self) -> int:
        return len(self._conns)

    async def start(self) -> None:
        socks: list[socket.socket] = []
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            # every address the name has, as asyncio.start_server does ("localhost" is ::1
            # and 127.0.0.1), each with its own accept loop and one shared connection limit
            for family, *_, address in dict.fromkeys((i[0], i[4]) for i in infos):
                socks.append(socket.create_server(address, family=family, backlog=BACKLOG))
        except OSError as exc:
            for sock in socks:
                sock.close()
            raise PortTaken(
                tr(
                    "http.listen {host}:{port}: {reason}: another program uses this port; "
                    "choose another one (e.g. 127.0.0.1:8090) or remove the http block",
                    host=self.host,
                    port=self.port,
                    reason=exc.strerror or exc,
                )
            ) from None
        for sock in socks:
            sock.setblocking(False)
        self._socks = socks
        self.port = socks[0].getsockname()[1]
        wanted = self.max_connections
        self.max_connections = fd_budget(wanted)
        if self.max_connections < wanted:
            log.info(
                "http: at most %d connections at once (1/%d of the open-files limit, %d)",
                self.max_connections,
                FD_SHARE,
                resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            )
        self._accepting = [
            asyncio.create_task(self._accept_loop(sock), name="http-accept") for sock in socks
        ]
        log.info(
            "status on http://%s:%d/ (page; /healthz, /metrics, /api/status)", self.host, self.port
        )

    async def close(self) -> None:
        # the accept tasks first: a pending sock_accept must unregister its fd before the
        # socket is closed, or a new socket could inherit the number mid-wait
        for task in self._accepting:
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        self._accepting = []
        tasks = [c.task for c in self._conns.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sock in self._socks:
            sock.close()
        self._socks = []

    # -- accepting -------------------------------------------------------------------------

    async def _accept_loop(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(listening)
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._out_of_fds(exc)
                    await asyncio.sleep(ACCEPT_RETRY_S)
                elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    # unexpected, but a status page is not worth a dead agent, a busy loop
                    # or a log full of it
                    if time.monotonic() - self._last_accept_warning >= WARN_EVERY_S:
                        self._last_accept_warning = time.monotonic()
                        log.warning("http: accept failed: %s (said at most once a minute)", exc)
                    await asyncio.sleep(ACCEPT_RETRY_S)
                continue  # a client that gave up before we accepted: nothing to do
            conn.setblocking(False)
            if len(self._conns) >= self.max_connections:
                victim = next((c for c in self._conns.values() if c.waiting), None)
                if victim is None:
                    self.rejected["limit"] += 1
                    conn.close()
                    continue
                self.rejected["evicted"] += 1
                self._evict(victim)
            record = _Connection()
            self._conns[conn] = record
            record.task = asyncio.create_task(self._serve(conn, record), name="http-conn")
            # One round of the loop per accept: an evicted connection's task closes its socket
            # before the next accept (sock_accept returns at once while the backlog is full),
            # so at most max_connections + 1 fds are ever ours.
            await asyncio.sleep(0)

    def _evict(self, victim: _Connection) -> None:
        victim.waiting = False  # not chosen twice while its cancellation is pending
        if victim.task is not None:
            victim.task.cancel()
        for sock, record in list(self._conns.items()):
            if record is victim:
                del self._conns[sock]  # its slot is free now; the task closes the socket

    def _out_of_fds(self, exc: OSError) -> None:
        self.rejected["out_of_fds"] += 1
        self._fd_errors_unsaid += 1
        # give the process its fds back: the idle connections are the cheapest to lose
        for record in [c for c in self._conns.values() if c.waiting]:
            self.rejected["evicted"] += 1
            self._evict(record)
        now = time.monotonic()
        if now - self._last_fd_warning >= WARN_EVERY_S:
            repeated = self._fd_errors_unsaid - 1
            log.warning(
                "http: the process is out of file descriptors (%s; open-files limit %d): "
                "new connections wait, idle ones were closed%s (said at most once a minute)",
                exc.strerror or exc,
                resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                f"; {repeated} more time(s) since the last warning" if repeated else "",
            )
            self._fd_errors_unsaid = 0
            self._last_fd_warning = now

    # -- one connection --------------------------------------------------------------------

    async def _serve(self, conn: socket.socket, record: _Connection) -> None:
        try:
            try:
                async with asyncio.timeout(self.header_timeout):
                    head = await self._read_head(conn)
            except TimeoutError:
                self.rejected["header_timeout"] += 1
                return
            except _TooLarge:
                self.rejected["too_large"] += 1
                await self._answer(conn, 431, "text/plain", "request head too large\n")
                await self._linger(conn, record)
                return
            if head is None:
                return  # the client closed before sending a request: nothing to answer
            record.waiting = False
            parts = head.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1").split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/") or not parts[1]:
                self.rejected["bad_request"] += 1
                await self._answer(conn, 400, "text/plain", "not an HTTP request\n")
                await self._linger(conn, record)
                return
            method, target, _ = parts
            path = target.split("?", 1)[0]
            status, ctype, body = await self._route(method, path)
            if await self._answer(conn, status, ctype, body):
                self.requests += 1
        except OSError:
            pass  # the client reset the connection: nobody left to answer
        except Exception:  # a bug here must cost one connection, not the server
            log.exception("http: serving a connection failed")
        finally:
            if self._conns.get(conn) is record:
                del self._conns[conn]
            conn.close()

    async def _read_head(self, conn: socket.socket) -> bytes | None:
        """The request line and headers, without the blank line; None if the client closed.
        A bare LF ends a line too (RFC 9112 §2.2: netcat, hand-typed requests)."""
        loop = asyncio.get_running_loop()
        buf = bytearray()
        while True:
            chunk = await loop.sock_recv(conn, 4096)
            if not chunk:
                return None
            start = max(0, len(buf) - 3)
            buf += chunk
            ends = [i for i in (buf.find(b"\n\r\n", start), buf.find(b"\n\n", start)) if i >= 0]
            if ends:
                if min(ends) > self.max_head_bytes:
                    raise _TooLarge
                return bytes(buf[: min(ends)]).lstrip(b"\r\n")  # empty lines before: ignored
            if len(buf) > self.max_head_bytes:
                raise _TooLarge

    async def _route(self, method: str, path: str) -> tuple[int, str, str]:
        route = self.routes.get(path)
        if method != "GET":
            return 405, "text/plain", "only GET\n"
        if route is None:
            shown = path if len(path) <= 100 else path[:100] + "…"
            hint = "try / (the status page), /healthz or /metrics"
            return 404, "text/plain", f"no {shown} here: {hint}\n"
        try:
            return await route()
        except Exception:  # a bug behind one page must not look like a dead agent
            log.exception("GET %s failed", path)
            return 500, "text/plain", "internal error: see the log\n"

    async def _answer(self, conn: socket.socket, status: int, ctype: str, body: str) -> bool:
        """Send one response; False if the client did not take it in time (counted)."""
        data = body.encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
            f"Content-Type: {ctype}; charset=utf-8\r\nContent-Length: {len(data)}\r\n"
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
            "Connection: close\r\n\r\n"
        )
        try:
            async with asyncio.timeout(self.write_timeout):
                await asyncio.get_running_loop().sock_sendall(conn, head.encode() + data)
        except TimeoutError:
            self.rejected["write_timeout"] += 1
            return False
        return True

    async def _linger(self, conn: socket.socket, record: _Connection) -> None:
        """After an error answer: stop sending, read what the client still sends (bounded),
        then close, so the answer is not lost to a reset."""
        record.waiting = True  # a lingering connection may make room for a new one
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError, TimeoutError):
            conn.shutdown(socket.SHUT_WR)
            drained = 0
            async with asyncio.timeout(LINGER_S):
                while drained < LINGER_BYTES:
                    chunk = await loop.sock_recv(conn, 4096)
                    if not chunk:
                        break
                    drained += len(chunk)

    # -- counters --------------------------------------------------------------------------

    def samples(self) -> list[tuple[str, str, str, dict[str, str], float]]:
        rows: list[tuple[str, str, str, dict[str, str], float]] = [
            ("vatio_http_requests_total", "counter", "HTTP requests answered.", {},
             self.requests),
            ("vatio_http_connections", "gauge", "HTTP connections open now.", {},
             len(self._conns)),
        ]  # fmt: skip
        rows += [
            ("vatio_http_rejected_total", "counter",
             "HTTP connections refused or cut, by reason.", {"reason": reason}, n)
            for reason, n in self.rejected.items()
        ]  # fmt: skip
        return rows

    def _with_own_metrics(self, route: Route) -> Route:
        async def metrics() -> tuple[int, str, str]:
            status, ctype, body = await route()
            if status != 200:
                return status, ctype, body
            return status, ctype, body + prometheus(self.samples())

        return metrics


def json_body(data: object) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(samples: list[tuple[str, str, str, dict[str, str], float]]) -> str:
    """Prometheus text format from (name, type, help, labels, value) rows."""
    groups: dict[str, tuple[str, str, list[str]]] = {}
    for name, kind, text, labels, value in samples:
        lines = groups.setdefault(name, (kind, text, []))[2]
        label_text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        lines.append(
            f"{name}{{{label_text}}} {_number(value)}" if label_text else f"{name} {_number(value)}"
        )
    out: list[str] = []
    for name, (kind, text, lines) in groups.items():
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *lines]
    return "\n".join(out) + "\n"

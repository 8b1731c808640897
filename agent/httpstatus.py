"""The agent's local HTTP endpoint (``http: {listen: 127.0.0.1:8089}``): ``/healthz`` for a
supervisor and ``/metrics`` in Prometheus' text format for a scraper.

A few GET routes on ``asyncio.start_server``, not a web framework: aiohttp alone would add
~34 MiB to an agent that must stay under 40 MiB on a Pi (stack-notes §5). Read-only; it
never shows a secret (no config values, only counters and device names).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from drivers.i18n import tr

log = logging.getLogger(__name__)

Route = Callable[[], Awaitable[tuple[int, str, str]]]  # → status, content type, body

_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class PortTaken(Exception):
    """The configured address is in use or not ours; the message says what to change."""


class StatusServer:
    def __init__(self, host: str, port: int, routes: dict[str, Route]) -> None:
        self.host = host
        self.port = port
        self.routes = routes
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            raise PortTaken(
                tr(
                    "http.listen {host}:{port}: {reason}: another program uses this port; "
                    "choose another one (e.g. 127.0.0.1:8090) or remove the http block",
                    host=self.host,
                    port=self.port,
                    reason=exc.strerror or exc,
                )
            ) from None
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info(
            "status on http://%s:%d/ (page; /healthz, /metrics, /api/status)", self.host, self.port
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, target, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path = target.split("?", 1)[0]
            route = self.routes.get(path)
            if method != "GET":
                status, ctype, body = 405, "text/plain", "only GET\n"
            elif route is None:
                status, ctype, body = (
                    404,
                    "text/plain",
                    f"no {path} here: try / (the status page), /healthz or /metrics\n",
                )
            else:
                try:
                    status, ctype, body = await route()
                except Exception:  # a bug behind one page must not look like a dead agent
                    log.exception("GET %s failed", path)
                    status, ctype, body = 500, "text/plain", "internal error: see the log\n"
            data = body.encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
                f"Content-Type: {ctype}; charset=utf-8\r\nContent-Length: {len(data)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + data)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a client that sent no complete request gets nothing
        except ConnectionError:
            pass
        finally:
            writer.close()


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

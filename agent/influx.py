"""Writing line-protocol batches to InfluxDB: the v1 ``/write`` API and the v2 write API.

Both writers are blocking (run them in a worker thread) and take pre-built line-protocol
strings: influxdb-client writes those ~5× faster than ``Point`` objects (stack-notes §4.2).
Failures come back as two kinds of :class:`WriteError`:

- :class:`Unavailable`: nothing was written for a reason that is not in the data (server down,
  timeout, wrong credentials, missing database): the caller keeps the batch and retries;
- :class:`Rejected`: the server refused the data itself (HTTP 400, 413): retrying the same
  lines cannot help. :func:`write_isolating` splits such a batch until it finds the lines at
  fault, so one bad point never holds back the others.
"""

from __future__ import annotations

import base64
import logging
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol

from vatio.agent.config import InfluxConfig

log = logging.getLogger(__name__)


class WriteError(Exception):
    """A batch was not written; the text names the server and what to check."""

    status: int | None = None  # the HTTP status, when the server answered


class Unavailable(WriteError):
    """Not written, for a reason outside the data: retry later."""


class Rejected(WriteError):
    """The server refused these lines (the data): do not retry them as they are."""


class Writer(Protocol):
    def write(self, lines: list[str]) -> None: ...

    def close(self) -> None: ...


def _hint(cfg: InfluxConfig, status: int, body: str) -> str:
    if status in (401, 403):
        what = "username and password" if cfg.api == "v1" else "token"
        return f"not authorised: check the {what}, and that it may write to {cfg.where}"
    if status == 404 and cfg.api == "v1":
        return f"database {cfg.database!r} not found: create it (CREATE DATABASE {cfg.database})"
    if status == 404:
        return (
            "no /api/v2/write here, or no such bucket: for InfluxDB 1.x set influxdb.api: v1; "
            f"otherwise create bucket {cfg.bucket!r}"
        )
    return body.strip()[:300] or f"HTTP {status}"


def _classify(cfg: InfluxConfig, status: int, body: str) -> WriteError:
    text = f"{cfg.where}: HTTP {status}: {_hint(cfg, status, body)}"
    exc = Rejected(text) if status in (400, 413, 422) else Unavailable(text)
    exc.status = status
    return exc


def _ssl_context(cfg: InfluxConfig) -> ssl.SSLContext | None:
    if not cfg.url.startswith("https"):
        return None
    ctx = ssl.create_default_context(cafile=cfg.ca_file)
    if not cfg.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class V1Writer:
    """``POST /write?db=…&precision=ms`` (InfluxDB 1.x), with the standard library only."""

    def __init__(self, cfg: InfluxConfig) -> None:
        self.cfg = cfg
        query = {"db": cfg.database, "precision": "ms"}
        if cfg.retention_policy:
            query["rp"] = cfg.retention_policy
        self._url = f"{cfg.url}/write?{urllib.parse.urlencode(query)}"
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if cfg.username is not None:
            password = cfg.password.get_secret_value() if cfg.password else ""
            token = base64.b64encode(f"{cfg.username}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._ssl = _ssl_context(cfg)
        self._created = False

    def _post(self, url: str, data: bytes, headers: dict[str, str]) -> None:
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.cfg.timeout, context=self._ssl):
                pass
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            exc.close()
            raise _classify(self.cfg, exc.code, body) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unavailable(f"{self.cfg.where}: cannot write: {reason}") from None

    def write(self, lines: list[str]) -> None:
        data = "\n".join(lines).encode()
        try:
            self._post(self._url, data, self._headers)
        except Unavailable as exc:
            if exc.status != 404 or self._created:  # 404 on /write: no such database
                raise
            self._created = True  # once: if creating fails, the 404's message stands
            self.create_database()
            self._post(self._url, data, self._headers)

    def create_database(self) -> None:
        """``CREATE DATABASE`` (a no-op when it exists); needs admin rights with auth on."""
        query = urllib.parse.urlencode({"q": f'CREATE DATABASE "{self.cfg.database}"'})
        headers = {**self._headers, "Content-Type": "application/x-www-form-urlencoded"}
        log.info("creating InfluxDB database %r at %s", self.cfg.database, self.cfg.url)
        self._post(f"{self.cfg.url}/query", query.encode(), headers)

    def close(self) -> None:
        pass


class V2Writer:
    """The v2 write API through influxdb-client (InfluxDB 2.x/3.x/Cloud/1.8+, VictoriaMetrics).

    influxdb-client is an optional dependency (``pip install vatio[influx]``), imported here
    only: it weighs ~550 modules, which an agent that only speaks MQTT should not carry."""

    def __init__(self, cfg: InfluxConfig) -> None:
        try:
            from influxdb_client.client.influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS
        except ImportError:
            raise WriteError(
                "influxdb.api v2 needs influxdb-client: pip install 'vatio[influx]' "
                "(or use api: v1 for InfluxDB 1.x)"
            ) from None
        self.cfg = cfg
        auth: dict[str, Any] = {"token": cfg.token.get_secret_value()} if cfg.token else {}
        self._client = InfluxDBClient(
            url=cfg.url,
            org=cfg.org,
            timeout=int(cfg.timeout * 1000),
            verify_ssl=cfg.verify_tls,
            ssl_ca_cert=cfg.ca_file,
            retries=False,  # the caller retries, with backoff and a log line
            **auth,
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[str]) -> None:
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            self._api.write(
                bucket=self.cfg.bucket,
                org=self.cfg.org,
                record="\n".join(lines),
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            raise _classify(self.cfg, int(exc.status or 0), str(exc.body or exc.reason)) from None
        except (HTTPError, OSError) as exc:
            raise Unavailable(f"{self.cfg.where}: cannot write: {exc}") from None

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


def make_writer(cfg: InfluxConfig) -> Writer:
    return V1Writer(cfg) if cfg.api == "v1" else V2Writer(cfg)


def write_isolating(
    write: Callable[[list[str]], None], lines: list[str], first: int = 0
) -> list[tuple[int, str]]:
    """Write ``lines``; when the server rejects the batch, halve it until the rejected lines
    are found. Returns their indexes with the server's reason; :class:`Unavailable`
    propagates. Writing a half again is harmless: a point written twice is the same point."""
    if not lines:
        return []
    try:
        write(lines)
        return []
    except Rejected as exc:
        if len(lines) == 1:
            return [(first, str(exc))]
    middle = len(lines) // 2
    return write_isolating(write, lines[:middle], first) + write_isolating(
        write, lines[middle:], first + middle
    )

"""Private InfluxDB 1.6 and VictoriaMetrics servers for tests and benchmarks: Debian's
``influxd`` and ``victoria-metrics`` on free 127.0.0.1 ports, data in a temp dir.

Both can be stopped and started again on the same port and data (a database outage under the
bridge), and both answer "how many points landed": :meth:`count` is the number of distinct
points of a field, so a point written twice counts once, as it is stored once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from vatio.simulators.brokers import PortTaken, free_port, wait_for_port, wait_until_serving


class _ServerProcess:
    binary_name = ""
    install_hint = ""

    def __init__(self) -> None:
        self.port = free_port()
        self._may_move = True  # until the first start: see MosquittoProcess
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def binary(cls) -> str | None:
        return shutil.which(cls.binary_name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix=f"vatio-{self.binary_name}-")
        return Path(self._dir.name)

    def command(self, binary: str) -> list[str]:
        raise NotImplementedError

    def start(self) -> _ServerProcess:
        binary = self.binary()
        if binary is None:
            raise FileNotFoundError(f"{self.binary_name} is not installed ({self.install_hint})")
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - the process owns it
        self.proc = subprocess.Popen(self.command(binary), stdout=log, stderr=log)
        log.close()
        try:
            wait_until_serving(self.proc, self.port, self.binary_name)
            wait_for_port("127.0.0.1", self.port, 20)
            self._wait_ready()
        except PortTaken:
            self.pause()
            if self._may_move:
                self._may_move = False
                self.stop()  # a new data dir and config for the new port
                self.port = free_port()
                return self.start()
            self.stop()
            raise
        except TimeoutError:
            self.stop()
            raise
        self._may_move = False
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.binary_name} did not become ready") from None
                time.sleep(0.1)

    ready_path = "/"

    def pause(self) -> None:
        """Stop the server (SIGTERM), keeping its data and port for :meth:`start`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        self.pause()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InfluxdProcess(_ServerProcess):
    """InfluxDB 1.x (v1 API only): ``/write?db=`` and ``/query``."""

    binary_name = "influxd"
    install_hint = "apt-get install influxdb"
    ready_path = "/ping"

    def command(self, binary: str) -> list[str]:
        d = self.data_dir
        conf = d / "influxdb.conf"
        if not conf.exists():
            rpc = free_port()
            while rpc == self.port:
                rpc = free_port()
            conf.write_text(
                "reporting-disabled = true\n"
                f'bind-address = "127.0.0.1:{rpc}"\n'
                f'[meta]\n  dir = "{d}/meta"\n'
                f'[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n'
                "  query-log-enabled = false\n"
                "[monitor]\n  store-enabled = false\n"
                "[subscriber]\n  enabled = false\n"
                "[http]\n  enabled = true\n"
                f'  bind-address = "127.0.0.1:{self.port}"\n'
                "  auth-enabled = false\n  log-enabled = false\n  pprof-enabled = false\n"
                '[logging]\n  level = "warn"\n  suppress-logo = true\n'
            )
        return [binary, "run", "-config", str(conf)]

    def query(self, database: str, q: str) -> dict[str, Any]:
        url = f"{self.url}/query?{urllib.parse.urlencode({'db': database, 'q': q})}"
        with urllib.request.urlopen(url, timeout=30) as r:
            result: dict[str, Any] = json.load(r)
        return result

    def count(self, database: str, measurement: str, field: str, where: str = "") -> int:
        cond = f" WHERE {where}" if where else ""
        result = self.query(database, f'SELECT count("{field}") FROM "{measurement}"{cond}')
        series = result["results"][0].get("series")
        return int(series[0]["values"][0][1]) if series else 0


class VictoriaMetricsProcess(_ServerProcess):
    """VictoriaMetrics: InfluxDB's ``/api/v2/write`` in, PromQL and ``/api/v1/export`` out.

    Started with ``-dedup.minScrapeInterval=1ms`` so a point written twice (a redelivered
    message) is stored once, as InfluxDB does by construction, and with
    ``-search.latencyOffset=0s`` so fresh points are visible to queries at once."""

    binary_name = "victoria-metrics"
    install_hint = "apt-get install victoria-metrics"
    ready_path = "/health"

    def command(self, binary: str) -> list[str]:
        return [
            binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.data_dir}/data",
            "-retentionPeriod=100y",
            "-loggerLevel=ERROR",
            "-search.latencyOffset=0s",
            "-dedup.minScrapeInterval=1ms",
        ]

    def flush(self) -> None:
        """Make everything written so far searchable (VM buffers new rows for ~1 s)."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=30):
            pass

    def export(self, match: str) -> list[dict[str, Any]]:
        self.flush()
        url = f"{self.url}/api/v1/export?{urllib.parse.urlencode({'match[]': match})}"
        with urllib.request.urlopen(url, timeout=60) as r:
            return [json.loads(line) for line in r if line.strip()]

    def count(self, metric: str) -> int:
        """Distinct samples of ``metric`` (a series selector), summed over its series."""
        return sum(len(set(s["timestamps"])) for s in self.export(metric))

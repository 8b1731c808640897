"""The agent's configuration: YAML → validated pydantic models, or located, actionable errors.

Example (see configs/ for complete files)::

    site: planta-norte
    agent_id: gw-01
    buses:
      tablero:
        type: modbus-tcp
        host: 127.0.0.1
        port: 5020
      rs485:
        type: modbus-rtu
        port: /dev/ttyUSB0
        baudrate: 9600
    devices:
      general:
        bus: tablero
        unit: 1
        profile: eastron_sdm630
        interval: 1s
    outputs:
      mqtt:
        url: mqtt://127.0.0.1:1883
        username: ${MQTT_USER}
        password: ${MQTT_PASSWORD}

``${VAR}`` (or ``${VAR:-default}``) in any string is replaced from the environment, so secrets
stay out of the file. Every error names the file, line and YAML path, and says what to do.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from vatio.common.i18n import tr
from vatio.common.yamlconf import (
    ConfigError,
    PathPart,
    Problem,
    YamlDocument,
    load_yaml_file,
    load_yaml_text,
    validation_problems,
)
from vatio.drivers.modbus.plugin import ModbusDriver
from vatio.drivers.modbus.profile import Profile
from vatio.drivers.plugin import DriverPlugin, PluginError, load_plugin_for

__all__ = ["AgentConfig", "ConfigError", "LoadedConfig", "load_config", "parse_config_text"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # safe inside an MQTT topic level
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """``1.5``, ``"500ms"``, ``"2s"``, ``"15m"``, ``"1h"`` → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 1s, 500ms or 5m")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    raise ValueError(
        tr("'{value}' is not a duration: write it like 1s, 500ms, 5m, 1h or 7d", value=value)
    )


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TcpBusConfig(_Strict):
    """A Modbus/TCP endpoint: a meter with Ethernet, or an RS-485 gateway."""

    type: Literal["modbus-tcp"]
    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)
    timeout: Duration | None = None  # default: derived from the poll intervals (runtime.py)
    retries: int | None = Field(None, ge=0, le=5)
    max_connections: int = Field(1, ge=1, le=16)  # parallel TCP connections to this endpoint


Baudrate = Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]


class _SerialPort(_Strict):
    """Settings of a serial port (RS-485 adapter or UART)."""

    port: str = Field(min_length=1, description="serial device, e.g. /dev/ttyUSB0")
    baudrate: Baudrate = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class RtuBusConfig(_SerialPort):
    """An RS-485 line on a serial port, one transaction at a time."""

    type: Literal["modbus-rtu"]
    timeout: Duration | None = None
    retries: int | None = Field(None, ge=0, le=5)


class RtuTcpBusConfig(_Strict):
    """Modbus RTU frames over TCP: what cheap RS-485/Ethernet gateways speak (no MBAP header)."""

    type: Literal["modbus-rtu-tcp"]
    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)
    # the RS-485 side's baud rate, if known: lets timeouts cover the wire time behind it
    baudrate: Baudrate | None = None
    timeout: Duration | None = None
    retries: int | None = Field(None, ge=0, le=5)


class SerialBusConfig(_SerialPort):
    """A plain UART (air-quality sensors): one device per port, its driver speaks its protocol."""

    type: Literal["serial"]


_I2C_DEVICE = re.compile(r"^/dev/i2c-\d{1,3}$")


class I2cBusConfig(_Strict):
    """An I2C adapter (a Pi's GPIO header is /dev/i2c-1): sensors, each at its address."""

    type: Literal["i2c"]
    device: str = "/dev/i2c-1"

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _I2C_DEVICE.match(value):
            raise ValueError(
                tr(
                    "'{value}' is not an I2C adapter: write /dev/i2c-N (/dev/i2c-1 on a "
                    "Raspberry Pi's header; ls /dev/i2c-* lists them once I2C is enabled)",
                    value=value,
                )
            )
        return value


BusConfig = Annotated[
    TcpBusConfig | RtuBusConfig | RtuTcpBusConfig | SerialBusConfig | I2cBusConfig,
    Field(discriminator="type"),
]


GenerationCounter = Literal["energy_export_kwh", "energy_import_kwh", "energy_total_kwh"]


class DeviceMetricsConfig(_Strict):
    """Per-device metric settings."""

    enabled: bool = True
    # demand_projected_high while a block is projected above it, demand_high once it closed
    demand_limit_kw: float | None = Field(None, gt=0)
    max_power_kw: float | None = Field(None, gt=0)  # tells counter resets from replacements
    # where energy comes from: the meter's counter, or integrated power ("auto": the counter
    # when the device reads one)
    energy_source: Literal["auto", "counter", "power"] = "auto"
    # PM2.5 corrected for humidity (agent/metrics/pm_humidity.py): the device that measures
    # the relative humidity next to this PM sensor, how old its reading may be, and which
    # PM2.5 is the CF=1 input ("auto": pm2_5_cf1_ugm3 if the driver reads it, else
    # pm2_5_ugm3 flagged input_not_cf1; "pm2_5_ugm3": the driver already reports CF=1)
    humidity_from: Name | None = None
    humidity_max_age: Duration = 300.0
    humidity_input: Literal["auto", "pm2_5_cf1_ugm3", "pm2_5_ugm3"] = "auto"
    # role: generation only: the counter that counts what the generator produced (the site
    # balance, agent/metrics/site.py). Default energy_export_kwh: a meter on an inverter's
    # output sees production leave towards the plant as export, and an inverter's own
    # lifetime-energy register is mapped as export. energy_import_kwh for a meter wired the
    # other way round; energy_total_kwh for a profile that maps only a total.
    generation_counter: GenerationCounter = "energy_export_kwh"


# Labels become InfluxDB tags (one series per combination: keep them few) and travel in the
# retained status. Keys are lower-case identifiers that cannot clash with the bridge's own
# tags; values are topic- and tag-safe names (NAME_PATTERN).
LABEL_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
MAX_LABELS = 8
RESERVED_LABELS = frozenset({"site", "device", "agent", "stream", "state", "bridge", "time"})


class LocationConfig(_Strict):
    """Where a device or an agent is: WGS 84 degrees, and optionally a name or address."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and re.search(r'[\x00-\x1f\x7f-\x9f"\\]', value):
            raise ValueError("a location name cannot hold control characters, quotes or '\\'")
        return value

    def as_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lat": self.latitude, "lon": self.longitude}
        if self.name:
            out["name"] = self.name
        return out


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_LABELS:
        raise ValueError(
            f"{len(value)} labels; at most {MAX_LABELS} (each one is an InfluxDB tag: every "
            "combination is a series), keep the ones dashboards group by"
        )
    for key, text in value.items():
        if not re.fullmatch(LABEL_KEY_PATTERN, key):
            raise ValueError(
                f"label name {key!r}: use lower-case letters, digits and '_', starting with a "
                "letter, at most 32 characters (e.g. zone, building)"
            )
        if key in RESERVED_LABELS:
            raise ValueError(f"label name {key!r} is reserved (a tag the bridge writes): rename it")
        if not isinstance(text, str) or not re.fullmatch(NAME_PATTERN, text):
            raise ValueError(
                f"label {key}: value {text!r} must be 1–64 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit (it becomes a tag and may appear in topics)"
            )
    return value


Labels = Annotated[dict[str, str], AfterValidator(_check_labels)]


class DeviceConfig(BaseModel):
    """A device: where it is, which driver, how often. Every other key is a driver option
    (for the ``modbus`` driver: ``unit`` and ``profile``), validated by that driver."""

    model_config = ConfigDict(extra="allow")

    bus: str
    driver: str = "modbus"
    interval: Duration = 5.0
    enabled: bool = True
    metrics: DeviceMetricsConfig = DeviceMetricsConfig()
    # where the device sits in the site's balance (agent/metrics/site.py): the utility meter
    # (import and export), a PV inverter or its meter, or a sub-meter
    role: Literal["grid", "generation", "load"] = "load"
    location: LocationConfig | None = None  # default: the agent's
    labels: Labels = {}  # merged over the agent's labels (agent/fleetinfo.py)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TlsConfig(_Strict):
    """TLS for MQTT: the broker's certificate is verified against ``ca_file`` (default: the
    system's CAs); ``cert_file``/``key_file`` authenticate this client."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True  # false only for a lab broker with a self-signed certificate

    @model_validator(mode="after")
    def _files(self) -> TlsConfig:
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise ValueError(f"{name} '{value}' is not a readable file")
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file (the client certificate) too")
        return self


class MqttConnectionConfig(_Strict):
    """How to reach a broker (shared by the agent's output and the ingest bridge)."""

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = None  # default: vatio-<agent_id>
    keepalive: int = Field(30, ge=5, le=3600)
    protocol: Literal["5", "3.1.1"] = "5"
    tls: TlsConfig | None = None  # TLS is on for mqtts:// URLs or when this block is present
    # keep the session (subscriptions, unacknowledged messages) on the broker across
    # reconnects; MQTT 5 keeps it this long after a disconnect
    persistent_session: bool = False
    session_expiry: Duration = 86400.0
    receive_maximum: int | None = Field(None, ge=1, le=65535)  # MQTT 5: unacked to us at once

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(
                tr(
                    "'{value}' is not an MQTT URL: write mqtt://HOST:PORT (or mqtts:// for TLS)",
                    value=value,
                )
            )
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if self.uses_tls else 1883)

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts" or self.tls is not None

    @property
    def where(self) -> str:
        return f"{'mqtts' if self.uses_tls else 'mqtt'}://{self.host}:{self.port}"


class MqttOutputConfig(MqttConnectionConfig):
    max_inflight: int = Field(100, ge=1, le=65535)  # published but not yet acknowledged
    homeassistant: bool = False  # MQTT discovery: devices appear in Home Assistant
    homeassistant_prefix: str = "homeassistant"
    drain_rate: float = Field(5000, gt=0)  # backlog messages per second after an outage


class InfluxConfig(_Strict):
    """Where points are written (the ingest bridge, or the agent's direct output).

    ``api: v2`` is ``/api/v2/write``: InfluxDB 2.x, 3.x, Cloud, 1.8+, VictoriaMetrics.
    ``api: v1`` is ``/write?db=``: InfluxDB 1.x, common on 32-bit Raspberry Pis."""

    url: str = "http://127.0.0.1:8086"
    api: Literal["v1", "v2"] = "v2"
    database: str = "vatio"  # v1
    retention_policy: str | None = None  # v1; default: the database's default policy
    username: str | None = None  # v1
    password: SecretStr | None = None  # v1
    org: str = "vatio"  # v2 (VictoriaMetrics ignores it, but the client wants one)
    bucket: str = "vatio"  # v2
    token: SecretStr | None = None  # v2
    ca_file: str | None = None  # https with a private CA
    verify_tls: bool = True
    batch_size: int = Field(5000, ge=1, le=100_000)  # points per write
    flush_interval: Duration = 1.0  # write a smaller batch after this long
    timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"'{value}' is not an HTTP URL: write http://HOST:8086")
        return value.rstrip("/")

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"ca_file '{value}' is not a readable file")
        return value

    @property
    def where(self) -> str:
        target = self.database if self.api == "v1" else self.bucket
        return f"{self.url} ({self.api}, {'database' if self.api == 'v1' else 'bucket'} {target})"


class HttpConfig(_Strict):
    """The local status endpoint: /healthz and /metrics (Prometheus)."""

    listen: str = "127.0.0.1:8089"  # HOST:PORT; keep it on 127.0.0.1 unless a scraper needs it

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"'{value}' is not HOST:PORT: write e.g. 127.0.0.1:8089")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class SpoolConfig(_Strict):
    """The disk spool (agent/spool): messages wait here until the broker acknowledged them."""

    path: Path | None = None  # default: <state_dir>/spool.sqlite
    max_mb: float = Field(100, gt=0)
    max_age: Duration = 7 * 86400.0
    commit_interval: Duration = 0.2  # one write burst per interval, not one per message
    durability: Literal["full", "normal"] = "full"  # full: fsync each commit (power cuts)


class OutputsConfig(_Strict):
    mqtt: MqttOutputConfig | None = None
    influxdb: InfluxConfig | None = None  # direct, for one plant without a broker


def _default_agent_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "vatio"
    return host[:64]


class EmissionFactorConfig(_Strict):
    year: int = Field(ge=1990, le=2100)
    kg_per_kwh: float = Field(gt=0, lt=5)
    source: str = "site configuration"


class MetricsConfig(_Strict):
    """On-device metrics (agent/metrics). Defaults suit a plant in central Mexico."""

    enabled: bool = True
    interval: Duration = 60.0  # a `metrics` message per device this often (and per 15-min block)
    timezone: str = "America/Mexico_City"
    region: Literal["SIN", "BC", "BCS"] = "SIN"  # CFE tariff calendar
    pf_threshold_pct: Literal[90, 95] = 90
    # UNCONFIRMED details of CFE's power-factor rule (domain.md §4.4): how many decimals the
    # surcharge/credit is rounded to (null: not rounded) and the surcharge cap (null: none)
    pf_decimals: int | None = Field(1, ge=0, le=6)
    pf_max_surcharge_pct: float | None = Field(120.0, gt=0)
    ias_stage: Literal["2019", "2024", "2026"] = "2026"
    ias_adjustment: float | None = Field(None, gt=0, le=1)  # NOM-172 "FA", UNCONFIRMED: off
    co2_limit_ppm: float = Field(1000, gt=0)
    # NowCast, AQI and IAS of PM2.5 from the humidity-corrected PM2.5 (devices with
    # humidity_from) instead of the sensor's own: off, see agent/metrics/pm_humidity.py
    pm2_5_indices_from_corrected: bool = False
    # custom grid factors replace Mexico's national ones (the latest applies until the next)
    emission_factors: list[EmissionFactorConfig] | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone '{value}': use an IANA name such as America/Mexico_City, "
                "America/Tijuana or America/Mazatlan"
            ) from None
        return value


class BillConfig(_Strict):
    """The site's CFE contract, for the running bill (agent/metrics/bill.py, site.py).

    Billing periods follow calendar months unless ``cut_off_day`` (the meter is read on that
    day of each month: a period runs from that day to the same day of the next month) or
    ``reading_dates`` (the dates CFE read the meter, as printed on past bills; each period at
    most 35 days; after the last date the cut-off day, or that date's day, goes on) say
    otherwise."""

    tariff: Literal["GDMTH"] = "GDMTH"
    division: str = Field(min_length=1)  # CFE tariff division, as the price table names it
    cut_off_day: int | None = Field(None, ge=1, le=28)
    reading_dates: list[dt.date] | None = None
    # medicion_neta: CRE's net metering (bill.py docstring); none: exports are not credited
    net_metering: Literal["none", "medicion_neta"] = "none"
    prices: Path | None = None  # a price table file; default: the shipped gdmth.yaml
    # UNCONFIRMED (domain.md §4.4): what the power-factor % applies to
    pf_base: Literal["supply", "energy_demand"] = "supply"

    @field_validator("reading_dates")
    @classmethod
    def _dates(cls, value: list[dt.date] | None) -> list[dt.date] | None:
        if value is None:
            return value
        for i, (a, b) in enumerate(itertools.pairwise(value)):
            days = (b - a).days
            if days <= 0:
                raise ValueError(f"reading_dates[{i + 1}] ({b}) must come after {a}")
            if days > 35:
                raise ValueError(
                    f"the billing period {a}…{b} (reading_dates[{i}]…[{i + 1}]) is {days} days:"
                    " GDMTH is billed monthly, 35 days at most; add the reading date between"
                )
        return value


class TimeConfig(_Strict):
    """Whether readings may be trusted to the wall clock (common/timesync.py).

    ``require_sync``: ``auto`` (default) trusts the kernel's answer, the one ``timedatectl``
    gives: a Pi has no real-time clock, so before NTP answers its clock is the last saved
    time, and only the kernel knows whether a time source has set it since; where the
    kernel cannot be asked (a sandbox filters adjtimex) the clock is trusted, with a warning.
    ``true``: the same, but an unknown state counts as unsynchronised. ``false``: trust the
    clock as it is (an RTC HAT on a gateway without any time source; readings are never
    flagged). ``unsynced_grace``: how long the clock may stay unsynchronised (normal at boot,
    until NTP answers) before the status, /healthz and the log say so.
    """

    require_sync: Literal["auto"] | bool = "auto"
    unsynced_grace: Duration = 600.0


# sections a pushed config may never change (agent/remote/policy.py): where undelivered data
# lives, who the agent is on the broker, and the rules of remote management themselves
REMOTE_NEVER = ("site", "agent_id", "state_dir", "remote", "spool.path")
RemoteSection = Literal["buses", "devices", "outputs", "spool", "metrics", "http", "time", "bill"]

_REMOTE_DEFAULT: tuple[RemoteSection, ...] = ("buses", "devices", "metrics", "bill", "time")


class RemoteConfig(_Strict):
    """Remote management over MQTT (agent/remote/): off unless ``enabled``. Only this local
    file decides it: a pushed config can never change this block."""

    enabled: bool = False
    # accept pushed configs at all, and which top-level sections they may change
    config_push: bool = False
    sections: list[RemoteSection] = Field(default_factory=lambda: list(_REMOTE_DEFAULT))
    # outputs.mqtt username, password, client_id and tls: only with this set (a wrong one
    # locks the agent out until the rollback brings the old one back)
    allow_broker_credentials: bool = False
    max_age: Duration = 300.0  # a command older than this (queued, retained) is refused
    rollback_after: Duration = 60.0  # the trial: broker reached and devices answering by then
    keep_configs: int = Field(5, ge=1, le=100)  # previous configs kept next to the local one
    read_timeout: Duration = 10.0


class AgentConfig(_Strict):
    site: Name
    agent_id: Name = Field(default_factory=_default_agent_id)
    state_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("STATE_DIRECTORY", "state"))
    )  # systemd's StateDirectory= sets STATE_DIRECTORY
    buses: dict[Name, BusConfig] = Field(min_length=1)
    devices: dict[Name, DeviceConfig] = Field(min_length=1)
    outputs: OutputsConfig = OutputsConfig()
    spool: SpoolConfig = SpoolConfig()
    metrics: MetricsConfig = MetricsConfig()
    http: HttpConfig | None = None  # off unless configured
    time: TimeConfig = TimeConfig()
    bill: BillConfig | None = None  # the running CFE bill; off unless configured
    remote: RemoteConfig = RemoteConfig()  # remote management over MQTT; off unless enabled
    location: LocationConfig | None = None  # where the gateway is (issue 15, fleets)
    labels: Labels = {}  # e.g. {zone: centro}: tags in InfluxDB, in the retained status


@dataclass(frozen=True)
class DeviceEntry:
    """One enabled device, resolved: its config, its driver plugin and validated options."""

    config: DeviceConfig
    plugin: type[DriverPlugin]
    options: Any  # an instance of plugin.Options


@dataclass
class LoadedConfig:
    """A validated config plus what it refers to (drivers, their options, profiles)."""

    config: AgentConfig
    entries: dict[str, DeviceEntry]
    source: str

    @property
    def devices(self) -> dict[str, DeviceConfig]:
        """The enabled devices."""
        return {n: e.config for n, e in self.entries.items()}

    @property
    def profiles(self) -> dict[str, Profile]:
        """The register map of every enabled Modbus device."""
        return {n: e.options.profile for n, e in self.entries.items() if e.plugin is ModbusDriver}

    @property
    def units(self) -> dict[str, int]:
        return {n: e.options.unit for n, e in self.entries.items() if e.plugin is ModbusDriver}


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(
    data: Any, doc: YamlDocument, problems: list[Problem], path: tuple[PathPart, ...] = ()
) -> Any:
    if isinstance(data, dict):
        return {k: substitute_env(v, doc, problems, (*path, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute_env(v, doc, problems, (*path, i)) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    def replace(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1), m.group(2))
        if value is None:
            problems.append(
                doc.problem(
                    path,
                    tr(
                        "environment variable {name} is not set: set it (for the service, in "
                        "/etc/vatio/vatio.env) or write ${{{name}:-default}}",
                        name=m.group(1),
                    ),
                )
            )
            return ""
        return value

    return _ENV.sub(replace, data)


def parse_config(doc: YamlDocument, base_dir: Path) -> LoadedConfig:
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "expected a mapping with site, buses and devices")])
    problems: list[Problem] = []
    data = substitute_env(doc.data, doc, problems)
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems + validation_problems(exc, doc, AgentConfig)) from None
    entries: dict[str, DeviceEntry] = {}
    for name, dev in config.devices.items():
        entry = _resolve_device(name, dev, config, doc, base_dir, problems)
        if entry is not None and dev.enabled:
            entries[name] = entry
    _check_i2c_addresses(config, entries, doc, problems)
    _check_humidity_sources(config, entries, doc, problems)
    _check_roles(config, entries, doc, problems)
    _check_merged_labels(config, doc, problems)
    if config.bill is not None:
        _check_bill(config.bill, doc, base_dir, problems)
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(config, entries, doc.file)


def _check_merged_labels(config: AgentConfig, doc: YamlDocument, problems: list[Problem]) -> None:
    """A device's labels add to the agent's: the sum is what becomes tags."""
    for name, dev in config.devices.items():
        n = len({**config.labels, **dev.labels})
        if n > MAX_LABELS:
            problems.append(doc.problem(("devices", name, "labels"), tr(
                "{n} labels with the agent's; at most {max} (each one is an InfluxDB tag): "
                "drop some here or under the top-level labels",
                n=n, max=MAX_LABELS,
            )))  # fmt: skip


def _check_i2c_addresses(
    config: AgentConfig, entries: dict[str, DeviceEntry], doc: YamlDocument, problems: list[Problem]
) -> None:
    """Two devices at one address on one I2C bus would answer together, and two buses on
    one adapter would be two owners of it: say which."""
    adapters: dict[str, str] = {}
    for bus_name, bus in config.buses.items():
        if isinstance(bus, I2cBusConfig):
            first = adapters.setdefault(bus.device, bus_name)
            if first != bus_name:
                explicit = ["device"] if "device" in bus.model_fields_set else []
                where: tuple[PathPart, ...] = ("buses", bus_name, *explicit)
                problems.append(doc.problem(where, tr(
                    "{device} is already bus '{first}': put every sensor of one I2C adapter "
                    "on one bus",
                    device=bus.device, first=first,
                )))  # fmt: skip
    taken: dict[tuple[str, int], str] = {}
    for name, entry in entries.items():
        address = getattr(entry.options, "address", None)
        if not isinstance(config.buses.get(entry.config.bus), I2cBusConfig) or address is None:
            continue
        other = taken.setdefault((entry.config.bus, address), name)
        if other != name:
            here: tuple[PathPart, ...] = ("devices", name)
            if "address" in entry.config.options:
                here = (*here, "address")
            problems.append(doc.problem(here, tr(
                "address 0x{address} on bus '{bus}' is taken by device '{other}': two sensors "
                "cannot share an address; set another with the sensor's address pin, or put "
                "one on another I2C bus",
                address=f"{address:02x}", bus=entry.config.bus, other=other,
            )))  # fmt: skip


def _check_humidity_sources(
    config: AgentConfig, entries: dict[str, DeviceEntry], doc: YamlDocument,
    problems: list[Problem],
) -> None:  # fmt: skip
    """``metrics.humidity_from`` must name an enabled device that reads humidity_pct."""
    from vatio.agent.metrics.sources import device_quantities

    known: dict[str, list[str] | None] = {}

    def quantities(device: str) -> list[str] | None:
        if device not in known:
            e = entries[device]
            known[device] = device_quantities(
                device, e.plugin, e.options, config.buses.get(e.config.bus)
            )
        return known[device]

    for name, dev in config.devices.items():
        source = dev.metrics.humidity_from
        if source is None or not dev.enabled or name not in entries:
            continue
        here: tuple[PathPart, ...] = ("devices", name, "metrics", "humidity_from")
        with_rh = [d for d in entries if "humidity_pct" in (quantities(d) or [])]
        hint = (
            tr("these do: {devices}", devices=", ".join(with_rh))
            if with_rh
            else tr("none of the configured devices does")
        )
        if source not in config.devices:
            problems.append(doc.problem(here, tr(
                "unknown device '{source}': name the device that measures relative humidity "
                "({hint})", source=source, hint=hint,
            )))  # fmt: skip
        elif source not in entries:  # disabled, or its own mistakes are reported above
            if not config.devices[source].enabled:
                problems.append(doc.problem(here, tr(
                    "device '{source}' is disabled: enable it or remove humidity_from",
                    source=source,
                )))  # fmt: skip
        elif (q := quantities(source)) is not None and "humidity_pct" not in q:
            problems.append(doc.problem(here, tr(
                "device '{source}' does not read humidity_pct: name a device that measures "
                "relative humidity ({hint})", source=source, hint=hint,
            )))  # fmt: skip


def published(entry: DeviceEntry) -> frozenset[str] | None:
    """The quantities a device publishes, when its driver says (a Modbus profile); else None."""
    if entry.plugin is ModbusDriver:
        return frozenset(p.quantity for p in entry.options.profile.points)
    return None


def _check_roles(
    config: AgentConfig, entries: dict[str, DeviceEntry], doc: YamlDocument, problems: list[Problem]
) -> None:
    """One grid meter at most (the balance and the bill have one point of supply); a grid
    meter must count imports; a generation device must publish its generation counter."""
    grids = [n for n, e in entries.items() if e.config.role == "grid"]
    for extra in grids[1:]:
        problems.append(doc.problem(("devices", extra, "role"), tr(
            "a site has one grid meter (the CFE supply point); '{first}' is already role: grid."
            " Make this one role: load, or split the site",
            first=grids[0],
        )))  # fmt: skip
    for name, entry in entries.items():
        quantities = published(entry)
        if quantities is None:
            continue
        role = entry.config.role
        if role == "grid" and "energy_import_kwh" not in quantities:
            problems.append(doc.problem(("devices", name, "role"), tr(
                "a grid meter must count imported energy (energy_import_kwh); its profile has"
                " no such register: choose a profile that maps it",
            )))  # fmt: skip
        counter = entry.config.metrics.generation_counter
        if role == "generation" and counter not in quantities:
            has = sorted(q for q in quantities if q.startswith("energy_"))
            problems.append(doc.problem(("devices", name, "role"), tr(
                "a generation device must publish its production counter {counter}, and its "
                "profile does not (it has: {has}); set metrics.generation_counter to one it has,"
                " or use a profile that maps it",
                counter=counter, has=", ".join(has) or tr("no energy counter"),
            )))  # fmt: skip
    if config.bill is not None and not grids:
        problems.append(doc.problem(("bill",), tr(
            "the bill needs the utility meter: give one device role: grid",
        )))  # fmt: skip


def _check_bill(
    bill: BillConfig, doc: YamlDocument, base_dir: Path, problems: list[Problem]
) -> None:
    """The price table loads, and names the configured division."""
    from vatio.agent.metrics.prices import load_prices  # the metrics package imports config

    path = None if bill.prices is None else base_dir / bill.prices
    bill.prices = path  # resolved once, against the config's folder
    try:
        table = load_prices(path)
    except ConfigError as exc:
        problems.append(doc.problem(("bill", "prices"), tr("the price table has errors:")))
        problems.extend(exc.problems)
        return
    if bill.division not in table.divisions:
        problems.append(doc.problem(("bill", "division"), tr(
            "division '{division}' has no prices in {file}; it has: {divisions}",
            division=bill.division, file=table.file, divisions=", ".join(table.divisions),
        )))  # fmt: skip


def _resolve_device(
    name: str,
    dev: DeviceConfig,
    config: AgentConfig,
    doc: YamlDocument,
    base_dir: Path,
    problems: list[Problem],
) -> DeviceEntry | None:
    """The device's driver and validated options; what is wrong goes to ``problems``."""
    here: tuple[PathPart, ...] = ("devices", name)
    bus = config.buses.get(dev.bus)
    try:
        plugin = load_plugin_for(dev.driver, bus.type if bus else None)
    except PluginError as exc:
        problems.append(doc.problem((*here, "driver"), str(exc)))
        return None
    if bus is None:
        problems.append(doc.problem((*here, "bus"), tr(
            "unknown bus '{bus}': define it under buses (defined: {defined})",
            bus=dev.bus, defined=", ".join(config.buses),
        )))  # fmt: skip
    elif bus.type not in plugin.bus_types:
        problems.append(doc.problem((*here, "bus"), tr(
            "driver '{driver}' talks over {types}, but bus '{bus}' is {type}: choose a bus of "
            "the right type",
            driver=dev.driver, types=" or ".join(plugin.bus_types), bus=dev.bus, type=bus.type,
        )))  # fmt: skip
        return None
    context = {
        "base_dir": base_dir,
        "bus_type": bus.type if bus else None,
        # a driver whose device has one fixed line speed checks it (the SPS30: 115200)
        "baudrate": getattr(bus, "baudrate", None),
        "bus": dev.bus,
    }
    try:
        options = plugin.Options.model_validate(dev.options, context=context)
    except ValidationError as exc:
        problems.extend(
            validation_problems(exc, doc, plugin.Options, here, tuple(DeviceConfig.model_fields))
        )
        return None
    except ConfigError as exc:  # a file the options point to (a profile) has mistakes
        problems.append(doc.problem((*here, "profile"), "the profile file has errors:"))
        problems.extend(exc.problems)
        return None
    return DeviceEntry(dev, plugin, options) if bus is not None else None


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate a config file; raises :class:`ConfigError` listing every problem."""
    path = Path(path)
    return parse_config(load_yaml_file(path), path.resolve().parent)


def parse_config_text(
    text: str, base_dir: Path | None = None, file: str = "<config>"
) -> LoadedConfig:
    return parse_config(load_yaml_text(text, file), base_dir or Path.cwd())

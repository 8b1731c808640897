"""Home Assistant MQTT discovery (``outputs.mqtt.homeassistant: true``): the agent, its devices,
their readings and their metrics appear in Home Assistant by themselves, as sensors reading
Vatio's own topics. Nothing new is published for the values themselves: the contract stays.

What is announced (one retained config per entity, ``<prefix>/<component>/<node>/<key>/config``,
``node`` = ``vatio_<site>_<device>`` with ``-`` and ``.`` made ``_``, as Home Assistant wants):

* **the gateway** (the agent itself, ``vatio_<site>_<agent_id>``): a connectivity sensor and
  the spool's backlog and drops, from the agent's status. Every device names it as
  ``via_device``, so Home Assistant shows the devices under their gateway. It is announced
  before any device: Home Assistant links a device to its parent only if the parent exists.
* **each device**: one sensor per quantity of its telemetry and per value of its metrics
  message (energy today, 15-minute demand, the month's power factor, NowCast, AQI, IAS …),
  announced when the device first publishes them (a SunSpec inverter's quantities are known
  only after its first poll), and a "problem" sensor from its status (on while degraded,
  with the reason). Manufacturer and model come from the profile or the driver, or from what
  the device says it is (SunSpec's common model) once it said it.
* **the site** (``_site``, when a device has a grid or generation role or a bill is
  configured): the balance and the running bill of ``agent/metrics/site.py``.

Names are short and human (:mod:`vatio.common.labels`), in Spanish when the agent's language
is Spanish. The roles of the site balance name what the Energy dashboard needs: the grid
meter's counters are "energy from / to grid", a generation device's production counter
"energy produced"; counters are ``device_class: energy`` with ``state_class:
total_increasing``, as the dashboard requires. Detail metrics (tariff-period splits, yesterday's
figures, each line of the bill) are announced disabled: a user turns on what they want.

Availability (``availability_mode: all``): the agent's status must be ``online``; a device's
entities also need the device to answer (its status ``online``, or ``degraded`` while it still
answers, ``answering: true``: a meter that refuses one register keeps the rest); and a reading
is unavailable while its own value is null (not read, the reason under ``quality``). So a
silent meter is ``unavailable``, not ``unknown``, and a partly read one shows what it read.

Removed devices disappear: the topics announced are kept in ``<state_dir>/homeassistant.json``,
and at start every config of a device no longer configured (or of all devices, when discovery
was turned off or the prefix changed) is cleared with an empty retained message, which is how
Home Assistant deletes an entity (and a device left without entities). A quantity a device
stops reading is cleared at its first good poll. Clears stay in the file until the broker
had them (:meth:`HomeAssistant.delivered`), so an agent stopped before it could connect
clears them at its next start.

Sources: Home Assistant's MQTT integration documentation, "MQTT Discovery" and "MQTT Sensor"
(home-assistant.io/integrations/mqtt, /integrations/sensor.mqtt), and the sensor device and
state classes of Home Assistant 2024.3 (homeassistant/components/sensor/const.py:
``DEVICE_CLASS_STATE_CLASSES``, ``DEVICE_CLASS_UNITS``), checked against a running
Home Assistant 2024.3.3 by ``bench/homeassistant_check.py``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vatio.agent.messages import Message, topic
from vatio.agent.metrics.site import SITE_DEVICE
from vatio.common.i18n import spanish
from vatio.common.labels import label
from vatio.common.vocabulary import QUANTITIES, Kind, Quantity
from vatio.drivers.statefile import StateFile

if TYPE_CHECKING:
    from vatio.agent.config import LoadedConfig
    from vatio.drivers.base import Driver

log = logging.getLogger(__name__)

STATE_FILE = "homeassistant.json"

# vocabulary unit → (Home Assistant unit, device class)
_UNITS: dict[str, tuple[str, str | None]] = {
    "w": ("W", "power"),
    "kw": ("kW", "power"),
    "va": ("VA", "apparent_power"),
    "var": ("var", "reactive_power"),
    "kwh": ("kWh", "energy"),
    "kvarh": ("kvarh", None),  # no reactive energy class in 2024.3
    "v": ("V", "voltage"),
    "a": ("A", "current"),
    "hz": ("Hz", "frequency"),
    "c": ("°C", "temperature"),
    "pct": ("%", None),
    "ppm": ("ppm", None),
    "ppb": ("ppb", None),  # Home Assistant's ozone/NO2/SO2 classes want µg/m³: no class
    "ugm3": ("µg/m³", None),
    "hpa": ("hPa", "atmospheric_pressure"),
    "per_cm3": ("#/cm³", None),
    "per_dl": ("#/dL", None),
    "um": ("µm", None),
    "kgco2e": ("kg", None),
    "deg": ("°", None),
    "mxn": ("MXN", "monetary"),
    "d": ("d", "duration"),
}
# digits shown (Home Assistant's suggested_display_precision), by vocabulary unit
_PRECISION = {"w": 0, "kw": 2, "va": 0, "var": 0, "kwh": 2, "kvarh": 2, "v": 1, "a": 2,
              "hz": 2, "c": 1, "pct": 1, "ppm": 3, "ppb": 0, "ugm3": 1, "hpa": 1,
              "per_cm3": 1, "per_dl": 0, "um": 2, "kgco2e": 2, "deg": 1, "mxn": 2,
              "d": 0, "": 0}  # fmt: skip
_BY_NAME: dict[str, str] = {  # device classes a unit alone does not tell
    "humidity_pct": "humidity",
    "co_ppm": "carbon_monoxide",
    "co2_ppm": "carbon_dioxide",
    "co2_avg_ppm": "carbon_dioxide",
    "aqi_us": "aqi",
    "power_factor_month_pct": "power_factor",
}
_PM_CLASS = (("pm2_5", "pm25"), ("pm10", "pm10"), ("pm1_0", "pm1"))
_ACCUMULATES = re.compile(r"(^|_)(today|month)(_|$)")  # grows from zero until midnight/month end
_DETAIL = re.compile(r"_(base|intermedia|punta)_|(^|_)yesterday(_|$)|^pf_(surcharge|bonus)")
_BILL_SHOWN = {"bill_total_mxn", "bill_projected_total_mxn", "bill_subtotal_mxn",
               "bill_energy_kwh", "bill_capacity_kw", "bill_period_days"}  # fmt: skip

Stream = Literal["telemetry", "metrics", "status"]
Role = Literal["grid", "generation", "load"]

# what the roles of the site balance call the counters the Energy dashboard takes
_ROLE_NAMES: dict[tuple[str, str], tuple[str, str]] = {
    ("grid", "energy_import_kwh"): ("Energy from grid", "Energía de la red"),
    ("grid", "energy_export_kwh"): ("Energy to grid", "Energía a la red"),
    ("generation", "*"): ("Energy produced", "Energía producida"),
}
_TEXT = {  # (English, Spanish)
    "site": ("Site {site}", "Sitio {site}"),
    "gateway": ("Vatio {agent} ({site})", "Vatio {agent} ({site})"),
    "connectivity": ("Broker connection", "Conexión al bróker"),
    "backlog": ("Spool backlog", "Mensajes en cola"),
    "dropped": ("Spool dropped", "Mensajes descartados"),
    "problem": ("Problem", "Problema"),
}


def node_id(site: str, device: str) -> str:
    """The id Home Assistant knows a device by (topic level, identifier, entity id prefix):
    only letters, digits and ``_`` are safe in all three."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"vatio_{site}_{device}")


@dataclass(frozen=True)
class DeviceFacts:
    """What Home Assistant shows about a device besides its values."""

    manufacturer: str = ""
    model: str = ""
    role: Role = "load"
    production: str | None = None  # role generation: the counter that counts production
    serial: str = ""
    version: str = ""


@dataclass
class _Announced:
    device: str
    stream: Stream
    key: str


@dataclass
class HomeAssistant:
    """Discovery for one agent. The pipeline tells it what devices publish; it hands retained
    config messages (or empty ones, to clear) to ``submit`` (the MQTT output)."""

    site: str
    agent_id: str
    submit: Callable[[Message], None]
    devices: dict[str, DeviceFacts]
    prefix: str = "homeassistant"
    version: str = "dev"
    es: bool = False
    state: StateFile | None = None
    enabled: bool = True  # False: only clear what an earlier run announced
    metrics_off: frozenset[str] = frozenset()  # devices whose metrics are turned off
    _announced: dict[str, _Announced] = field(default_factory=dict)
    _payloads: dict[str, dict[str, Any]] = field(default_factory=dict)  # topic → config
    _keys: dict[tuple[str, Stream], set[str]] = field(default_factory=dict)
    _to_check: dict[str, set[str]] = field(default_factory=dict)  # old telemetry topics
    _clear: set[str] = field(default_factory=set)  # cleared, not yet known to be delivered

    # -- start ------------------------------------------------------------------------------

    def start(self, quantities: Mapping[str, Iterable[str]]) -> None:
        """Announce the gateway and every device's known quantities; clear what an earlier
        run announced and this one will not (module docstring)."""
        old, pending = self._load()
        for t in pending:
            self._clear_topic(t)
        for t, a in old.items():
            gone = (
                not self.enabled
                or not t.startswith(f"{self.prefix}/")
                or (a.device not in self.devices and a.device not in (self.agent_id, SITE_DEVICE))
                or (a.stream == "metrics" and a.device in self.metrics_off)
            )
            if gone:
                self._clear_topic(t)
            else:
                self._announced[t] = a  # kept: re-announced below or when it shows up
                if a.stream == "telemetry":
                    self._to_check.setdefault(a.device, set()).add(t)
        if self.enabled:
            self._gateway()
            for device, names in quantities.items():
                self._device(device)
                self._values(device, "telemetry", list(names))
        self._save()

    # -- what the pipeline reports ----------------------------------------------------------

    def telemetry(self, device: str, values: Mapping[str, object], ok: bool) -> None:
        if not self.enabled:
            return
        known = self._keys.get((device, "telemetry"))
        if known is None or not known.issuperset(values):
            self._device(device)
            self._values(device, "telemetry", list(values))
            self._save()
        if ok and device in self._to_check:  # a good poll: what it lacks is no longer read
            stale = self._to_check.pop(device) - {
                self._topic(device, "telemetry", q) for q in values
            }
            for t in stale:
                self._clear_topic(t)
            if stale:
                self._save()

    def metrics(self, device: str, values: Mapping[str, object]) -> None:
        if not self.enabled:
            return
        known = self._keys.get((device, "metrics"))
        if known is None or not known.issuperset(values):
            if device != SITE_DEVICE:
                self._device(device)
            self._values(device, "metrics", list(values))
            self._save()

    def device_info(self, device: str, info: Mapping[str, str] | None) -> None:
        """What the device says it is (a driver's ``info()``): re-announce with it."""
        if not self.enabled or not info or device not in self.devices:
            return
        facts = self.devices[device]
        said = replace(
            facts,
            manufacturer=info.get("manufacturer") or facts.manufacturer,
            model=info.get("model") or facts.model,
            serial=info.get("serial") or facts.serial,
            version=info.get("version") or facts.version,
        )
        if said == facts:
            return
        self.devices[device] = said
        for t, a in list(self._announced.items()):
            if a.device == device and t in self._payloads:
                self._announce(t, {**self._payloads[t], "device": self._device_block(device)})

    def delivered(self) -> None:
        """The MQTT output has been connected: the clears reached the broker."""
        if self._clear:
            self._clear.clear()
            self._save()

    # -- configs ----------------------------------------------------------------------------

    def _gateway(self) -> None:
        node = node_id(self.site, self.agent_id)
        status = topic(self.site, self.agent_id, "status")
        device = {
            "identifiers": [node],
            "name": self._text("gateway"),
            "manufacturer": "Vatio",
            "model": "Vatio agent",
            "sw_version": self.version,
        }
        common = {"device": device, "origin": self._origin(), "entity_category": "diagnostic"}
        self._announce(
            f"{self.prefix}/binary_sensor/{node}/connectivity/config",
            {
                **common,
                "name": self._text("connectivity"),
                "unique_id": f"{node}_connectivity",
                "object_id": f"{node}_connectivity",
                "device_class": "connectivity",
                "state_topic": status,
                "value_template": "{{ 'ON' if value_json.state == 'online' else 'OFF' }}",
                # no availability: "disconnected" is what it has to say
            },
            _Announced(self.agent_id, "status", "connectivity"),
        )
        for key, field_, state_class in (
            ("backlog", "backlog", "measurement"),
            ("dropped", "spool_dropped", "total_increasing"),
        ):
            self._announce(
                f"{self.prefix}/sensor/{node}/{field_}/config",
                {
                    **common,
                    "name": self._text(key),
                    "unique_id": f"{node}_{field_}",
                    "object_id": f"{node}_{field_}",
                    "state_topic": status,
                    # '' keeps the last value: the offline status carries no figures
                    "value_template": f"{{{{ value_json.get('{field_}', '') }}}}",
                    "state_class": state_class,
                    "suggested_display_precision": 0,
                    **self._availability(None, None),
                },
                _Announced(self.agent_id, "status", field_),
            )

    def _device(self, device: str) -> None:
        """The device's problem sensor (from its status); once per device."""
        if (device, "status") in self._keys:
            return
        self._keys[(device, "status")] = {"problem"}
        node = node_id(self.site, device)
        self._announce(
            f"{self.prefix}/binary_sensor/{node}/problem/config",
            {
                "name": self._text("problem"),
                "unique_id": f"{node}_problem",
                "object_id": f"{node}_problem",
                "device_class": "problem",
                "entity_category": "diagnostic",
                "state_topic": topic(self.site, device, "status"),
                "value_template": "{{ 'ON' if value_json.state == 'degraded' else 'OFF' }}",
                "json_attributes_topic": topic(self.site, device, "status"),
                "json_attributes_template": "{{ {'reason': value_json.get('reason')} | tojson }}",
                "device": self._device_block(device),
                "origin": self._origin(),
                **self._availability(None, None),
            },
            _Announced(device, "status", "problem"),
        )

    def _values(self, device: str, stream: Stream, names: list[str]) -> None:
        keys = self._keys.setdefault((device, stream), set())
        for name in names:
            if name in keys:
                continue
            keys.add(name)
            q = QUANTITIES.get(name)
            if q is None:
                continue
            self._announce(
                self._topic(device, stream, name),
                self._sensor(device, stream, q),
                _Announced(device, stream, name),
            )

    def _topic(self, device: str, stream: Stream, name: str) -> str:
        return f"{self.prefix}/sensor/{node_id(self.site, device)}/{name}/config"

    def _sensor(self, device: str, stream: Stream, q: Quantity) -> dict[str, Any]:
        node = node_id(self.site, device)
        name = q.name
        unit, device_class = _UNITS.get(q.unit, ("", None))
        device_class = _BY_NAME.get(name, device_class)
        for stem, pm_class in _PM_CLASS:
            if name.startswith(stem) and q.unit == "ugm3":
                device_class = pm_class
        if name.startswith("power_factor") and not q.unit:
            device_class = "power_factor"
        value = f"value_json['values'].get('{name}')"
        reading = f"{{{{ 'offline' if {value} is none else 'online' }}}}"
        config: dict[str, Any] = {
            "name": self._name(device, name),
            "unique_id": f"{node}_{name}",
            "object_id": f"{node}_{name}",
            "state_topic": topic(self.site, device, stream),
            # '' (the name not in this message) keeps the last state; null is "unknown"
            "value_template": f"{{{{ value_json['values'].get('{name}', '') }}}}",
            "device": self._device_block(device),
            "origin": self._origin(),
            "suggested_display_precision": self._precision(q),
            **self._availability(device, reading if stream == "telemetry" else None),
        }
        if unit:
            config["unit_of_measurement"] = unit
        if device_class:
            config["device_class"] = device_class
        state_class = _state_class(q, device_class)
        if state_class:
            config["state_class"] = state_class
        if not _shown(name):
            config["enabled_by_default"] = False
        return config

    def _name(self, device: str, name: str) -> str:
        facts = self.devices.get(device)
        if facts is not None:
            key = "*" if facts.role == "generation" and name == facts.production else name
            pair = _ROLE_NAMES.get((facts.role, key))
            if pair is not None:
                return pair[1] if self.es else pair[0]
        return label(name, self.es)

    def _precision(self, q: Quantity) -> int:
        if q.name.startswith("co2"):
            return 0
        if q.name.startswith("power_factor") and not q.unit:
            return 2
        return _PRECISION.get(q.unit, 1)

    def _availability(self, device: str | None, reading: str | None) -> dict[str, Any]:
        """The agent online; the device answering; the value read (module docstring)."""
        checks: list[dict[str, str]] = [
            {
                "topic": topic(self.site, self.agent_id, "status"),
                "value_template": "{{ value_json.state }}",
            }
        ]
        if device is not None and device != SITE_DEVICE:
            checks.append(
                {
                    "topic": topic(self.site, device, "status"),
                    "value_template": "{{ 'online' if value_json.state == 'online'"
                    " or value_json.get('answering') else 'offline' }}",
                }
            )
        if device is not None and reading is not None:
            checks.append({"topic": topic(self.site, device, "telemetry"),
                           "value_template": reading})  # fmt: skip
        return {"availability": checks, "availability_mode": "all"}

    def _device_block(self, device: str) -> dict[str, Any]:
        if device == SITE_DEVICE:
            return {
                "identifiers": [node_id(self.site, SITE_DEVICE)],
                "name": self._text("site"),
                "manufacturer": "Vatio",
                "model": "Site balance",
                "via_device": node_id(self.site, self.agent_id),
            }
        facts = self.devices.get(device, DeviceFacts())
        block: dict[str, Any] = {
            "identifiers": [node_id(self.site, device)],
            "name": f"{device} ({self.site})",
            "via_device": node_id(self.site, self.agent_id),
        }
        if facts.manufacturer:
            block["manufacturer"] = facts.manufacturer
        if facts.model:
            block["model"] = facts.model
        if facts.serial:
            block["serial_number"] = facts.serial
        if facts.version:
            block["sw_version"] = facts.version
        return block

    def _origin(self) -> dict[str, str]:
        return {"name": "Vatio", "sw_version": self.version}

    def _text(self, key: str) -> str:
        en, es = _TEXT[key]
        return (es if self.es else en).format(site=self.site, agent=self.agent_id)

    # -- publishing and the record of what was announced ------------------------------------

    def _announce(self, t: str, config: dict[str, Any], what: _Announced | None = None) -> None:
        if what is not None:
            self._announced[t] = what
        self._payloads[t] = config
        self._clear.discard(t)
        self.submit(Message(t, json.dumps(config, ensure_ascii=False).encode(), True))

    def _clear_topic(self, t: str) -> None:
        self._announced.pop(t, None)
        self._payloads.pop(t, None)
        self._clear.add(t)
        self.submit(Message(t, b"", True))  # empty and retained: Home Assistant deletes it

    def _load(self) -> tuple[dict[str, _Announced], list[str]]:
        data = self.state.load() if self.state is not None else None
        if not data:
            return {}, []
        old: dict[str, _Announced] = {}
        try:
            for t, (device, stream, key) in data.get("announced", {}).items():
                old[str(t)] = _Announced(str(device), stream, str(key))
            pending = [str(t) for t in data.get("clear", [])]
        except (TypeError, ValueError, AttributeError):
            log.warning("%s is not what this agent writes: ignored", self.state.path)  # type: ignore[union-attr]
            return {}, []
        return old, pending

    def _save(self) -> None:
        if self.state is None:
            return
        self.state.save(
            {
                "announced": {t: [a.device, a.stream, a.key] for t, a in self._announced.items()},
                "clear": sorted(self._clear),
            }
        )


def _state_class(q: Quantity, device_class: str | None) -> str | None:
    """Counters only grow; day and month accumulators grow from zero (a reset, for Home
    Assistant); money and yesterday's figures take no class (the dashboard's classes would
    be wrong for them); what has a unit is a measurement."""
    if q.kind is Kind.COUNTER:
        return "total_increasing"
    if q.unit in ("kwh", "kgco2e"):
        return "total_increasing" if _ACCUMULATES.search(q.name) else None
    if device_class == "monetary":
        return None
    if q.unit or device_class in ("power_factor", "aqi") or q.name.startswith("ias_mx"):
        return "measurement"
    return None


def _shown(name: str) -> bool:
    """Enabled by default: the main figures; details are announced disabled."""
    if name.startswith("bill_"):
        return name in _BILL_SHOWN
    return not _DETAIL.search(name)


def facts_of(
    driver: object, profile: object | None, role: Role, production: str | None
) -> DeviceFacts:
    """Manufacturer and model from the device's profile, else from the driver's ``model``
    ("Plantower PMS5003": the first word is the maker, unless the driver says
    ``manufacturer``); what a device says about itself comes later (``device_info``)."""
    manufacturer = str(getattr(profile, "manufacturer", "") or "")
    model = str(getattr(profile, "model", "") or "")
    if not model:
        said = str(getattr(driver, "model", "") or "")
        maker = str(getattr(driver, "manufacturer", "") or "")
        if said and not maker:
            maker, _, rest = said.partition(" ")
            said = rest or said
        elif said.startswith(f"{maker} "):
            said = said[len(maker) + 1 :]
        manufacturer, model = maker, said
    return DeviceFacts(manufacturer, model, role, production if role == "generation" else None)


def build(
    loaded: LoadedConfig,
    drivers: Iterable[Driver],
    submit: Callable[[Message], None],
    version: str,
) -> HomeAssistant | None:
    """The discovery of a configured agent, started (gateway and known quantities announced,
    removed devices cleared); None when discovery is off and never was on here."""
    cfg = loaded.config
    mqtt = cfg.outputs.mqtt
    state = StateFile(Path(cfg.state_dir) / STATE_FILE)
    enabled = mqtt is not None and mqtt.homeassistant
    if not enabled and not state.path.exists():
        return None
    profiles = loaded.profiles
    by_name = {d.name: d for d in drivers}
    facts = {}
    for name, entry in loaded.entries.items():
        dc = entry.config
        facts[name] = facts_of(
            by_name.get(name), profiles.get(name), dc.role, dc.metrics.generation_counter
        )
    metrics_off = frozenset(
        n
        for n, e in loaded.entries.items()
        if not (cfg.metrics.enabled and e.config.metrics.enabled)
    )
    ha = HomeAssistant(
        cfg.site,
        cfg.agent_id,
        submit,
        facts,
        prefix=mqtt.homeassistant_prefix if mqtt is not None else "homeassistant",
        version=version,
        es=spanish(),
        state=state,
        enabled=enabled,
        metrics_off=metrics_off,
    )
    ha.start({d.name: d.quantities for d in drivers if d.name in facts})
    return ha

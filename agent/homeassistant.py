"""Home Assistant MQTT discovery (``outputs.mqtt.homeassistant: true``): every device's
quantities appear in Home Assistant by themselves, as sensors reading Vatio's own topics.

One retained config message per device and quantity under
``<discovery_prefix>/sensor/vatio_<site>_<device>/<quantity>/config``: the state comes from
the device's ``telemetry`` topic (``value_json['values'][quantity]``), availability from the
agent's status (``online`` / ``offline``), and the unit and device class from the
vocabulary. Nothing new is published for the readings themselves: the contract stays as is.
"""

from __future__ import annotations

import json

from vatio.agent.messages import Message, topic
from vatio.common.vocabulary import QUANTITIES, Kind

# vocabulary unit → (Home Assistant unit, device class)
_UNITS: dict[str, tuple[str, str | None]] = {
    "w": ("W", "power"),
    "kw": ("kW", "power"),
    "va": ("VA", "apparent_power"),
    "var": ("var", "reactive_power"),
    "kwh": ("kWh", "energy"),
    "kvarh": ("kvarh", None),
    "v": ("V", "voltage"),
    "a": ("A", "current"),
    "hz": ("Hz", "frequency"),
    "c": ("°C", "temperature"),
    "pct": ("%", None),
    "ppm": ("ppm", "carbon_dioxide"),
    "ppb": ("ppb", None),  # Home Assistant's ozone/NO2/SO2 classes want µg/m³: no class
    "ugm3": ("µg/m³", None),
    "hpa": ("hPa", "atmospheric_pressure"),
    "per_cm3": ("#/cm³", None),
    "um": ("µm", None),
    "kgco2e": ("kg", None),
    "deg": ("°", None),
}
_PM = {"pm2_5_ugm3": "pm25", "pm10_ugm3": "pm10", "pm1_0_ugm3": "pm1", "humidity_pct": "humidity",
       "pm2_5_cf1_ugm3": "pm25", "co_ppm": "carbon_monoxide"}  # fmt: skip


def discovery(
    site: str, agent_id: str, device: str, quantities: list[str], prefix: str = "homeassistant"
) -> list[Message]:
    node = f"vatio_{site}_{device}".replace("-", "_").replace(".", "_")
    messages = []
    for name in quantities:
        q = QUANTITIES.get(name)
        if q is None:
            continue
        unit, device_class = _UNITS.get(q.unit, ("", None))
        device_class = _PM.get(name, device_class)
        if name.startswith("power_factor") and not q.unit:
            device_class = "power_factor"
        config: dict[str, object] = {
            "name": q.description,
            "unique_id": f"{node}_{name}",
            "object_id": f"{node}_{name}",
            "state_topic": topic(site, device, "telemetry"),
            "value_template": f"{{{{ value_json['values']['{name}'] }}}}",
            "availability_topic": topic(site, agent_id, "status"),
            "availability_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": {
                "identifiers": [node],
                "name": f"{device} ({site})",
                "manufacturer": "Vatio",
                "via_device": f"vatio_{site}_{agent_id}",
            },
        }
        if unit:
            config["unit_of_measurement"] = unit
        if device_class:
            config["device_class"] = device_class
        if unit or device_class == "power_factor":
            # energy counters only grow; Home Assistant's statistics need to know
            config["state_class"] = "total_increasing" if q.kind is Kind.COUNTER else "measurement"
        messages.append(
            Message(f"{prefix}/sensor/{node}/{name}/config", json.dumps(config).encode(), True)
        )
    return messages

"""Agent configs for simulated plants: Modbus/TCP buses on 127.0.0.1 and their devices.

The demo, the benchmarks and the integration tests all describe a plant the same way:
bus name → port, and (device, bus, unit, profile, interval) rows.
"""

from __future__ import annotations

from pathlib import Path

DeviceRow = tuple[str, str, int, str, str]  # name, bus, unit, profile, interval


def loopback_config(
    site: str,
    agent_id: str,
    state_dir: Path | str,
    buses: dict[str, int],
    devices: list[DeviceRow],
    mqtt_url: str,
    mqtt_options: str = "",
) -> str:
    """YAML for an agent polling ``devices`` on Modbus/TCP buses at ``127.0.0.1:port``."""
    bus_yaml = "".join(
        f"  {name}: {{type: modbus-tcp, host: 127.0.0.1, port: {port}}}\n"
        for name, port in buses.items()
    )
    dev_yaml = "".join(
        f"  {name}: {{bus: {bus}, unit: {unit}, profile: {profile}, interval: {interval}}}\n"
        for name, bus, unit, profile, interval in devices
    )
    extra = f", {mqtt_options}" if mqtt_options else ""
    return (
        f"site: {site}\nagent_id: {agent_id}\nstate_dir: {state_dir}\n"
        f"buses:\n{bus_yaml}devices:\n{dev_yaml}"
        f"outputs:\n  mqtt: {{url: '{mqtt_url}'{extra}}}\n"
    )

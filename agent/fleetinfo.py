"""Where a device is and how it is labelled, as the retained status carries it (issue 15).

A device's labels are the agent's labels with the device's own over them; its location is
its own, else the agent's. Both go into the retained ``status`` message (``location``:
``{"lat", "lon", "name"?}``, ``labels``: ``{key: value}``), which the ingest bridge turns into
fields (location) and tags (labels) of the ``status`` measurement.
"""

from __future__ import annotations

from typing import Any

from vatio.agent.config import AgentConfig


def device_labels(config: AgentConfig, device: str) -> dict[str, str]:
    dev = config.devices.get(device)
    return {**config.labels, **(dev.labels if dev is not None else {})}


def status_extras(config: AgentConfig, device: str | None) -> dict[str, Any]:
    """The ``location`` and ``labels`` keys of a status payload (``device`` None: the
    agent's own status); empty when none are configured."""
    dev = config.devices.get(device) if device is not None else None
    labels = device_labels(config, device) if device is not None else dict(config.labels)
    location = (dev.location if dev is not None else None) or config.location
    out: dict[str, Any] = {}
    if location is not None:
        out["location"] = location.as_status()
    if labels:
        out["labels"] = labels
    return out

"""What a pushed config may change, decided by the agent's local file (``remote:``).

A push is a whole config. Sections listed in ``remote.sections`` are taken as pushed (left
out: removed). Every other section, and those no push may ever change (``site``,
``agent_id``, ``state_dir``, ``remote``, ``spool.path``), must be left out (the running
value is kept) or equal to the running value; a different value refuses the push, naming
the section. The broker credentials (``outputs.mqtt`` username, password, client_id, tls)
follow the same rule unless ``remote.allow_broker_credentials`` is set.

Validation is :func:`vatio.agent.config.parse_config`, what ``vatio check`` runs, so a
refused config gets the same located problems. Secrets of either config (every
``SecretStr``, and any string under a key named like a password or token) are replaced by
``***`` in every problem sent back or logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vatio.agent.config import (
    REMOTE_NEVER,
    ConfigError,
    LoadedConfig,
    RemoteConfig,
    parse_config,
    parse_config_text,
)
from vatio.agent.logs import secrets_of
from vatio.agent.runtime import reload_blockers
from vatio.common.yamlconf import YamlDocument, load_yaml_text

PUSHED = "pushed config"
CREDENTIALS = ("username", "password", "client_id", "tls")
_SECRET_KEY = re.compile(r"pass|token|secret", re.IGNORECASE)
_MISSING = object()


@dataclass
class Checked:
    """A pushed config that may go in: the file's text, and the config it loads to."""

    text: str
    loaded: LoadedConfig


class Refused(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def raw_secrets(data: Any) -> list[str]:
    """Strings under keys that name a secret, however deep (before ``${VAR}`` substitution)."""
    found: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, str) and isinstance(k, str) and _SECRET_KEY.search(k):
                found.append(v)
            else:
                found += raw_secrets(v)
    elif isinstance(data, list):
        for v in data:
            found += raw_secrets(v)
    return found


def redact(text: str, secrets: list[str]) -> str:
    for s in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def merge(
    running: dict[str, Any], pushed: dict[str, Any], rules: RemoteConfig, doc: YamlDocument
) -> tuple[dict[str, Any], list[str]]:
    """The config to write, and what the push may not change (located in its text)."""
    problems: list[str] = []
    merged = dict(pushed)
    locked = list(REMOTE_NEVER)
    locked += [
        s
        for s in ("buses", "devices", "outputs", "spool", "metrics", "http", "time", "bill")
        if s not in rules.sections
    ]
    if not rules.allow_broker_credentials and "outputs" in rules.sections:
        locked += [f"outputs.mqtt.{k}" for k in CREDENTIALS]
    for dotted in locked:
        mine, theirs = _get(running, dotted), _get(pushed, dotted)
        if theirs is _MISSING:
            if mine is not _MISSING and (
                dotted.count(".") == 0 or isinstance(_get(merged, dotted.rpartition(".")[0]), dict)
            ):
                _set(merged, dotted, mine)
            continue
        if theirs != mine:
            why = (
                "set remote.allow_broker_credentials: true in the agent's local file to allow it"
                if dotted.startswith("outputs.mqtt.")
                else "add it to remote.sections in the agent's local file to allow it"
                if dotted.count(".") == 0 and dotted not in REMOTE_NEVER
                else "only the agent's local file can change it"
            )
            problems.append(
                str(doc.problem(tuple(dotted.split(".")), f"may not be changed remotely: {why}"))
            )
    return merged, problems


def check_push(text: str, local_path: Path, running: LoadedConfig, rules: RemoteConfig) -> Checked:
    """The config to put in force for the pushed ``text``, or :class:`Refused` with every
    problem (validation as ``vatio check``, the policy, what a reload cannot change)."""
    secrets = secrets_of(running.config)
    try:
        doc = load_yaml_text(text, PUSHED)
    except ConfigError as exc:
        raise Refused([redact(str(p), secrets) for p in exc.problems]) from None
    if not isinstance(doc.data, dict):
        raise Refused([f"{PUSHED}: expected a mapping with site, buses and devices"])
    secrets += raw_secrets(doc.data)
    base_dir = local_path.absolute().parent
    local = yaml.safe_load(local_path.read_text(encoding="utf-8")) or {}
    merged, problems = merge(local, doc.data, rules, doc)
    try:  # exactly what `vatio check` runs, on the text as sent (its lines)
        parse_config(YamlDocument(merged, doc.root, PUSHED), base_dir)
    except ConfigError as exc:
        problems += [str(p) for p in exc.problems]
    if problems:
        raise Refused([redact(p, secrets) for p in problems])
    out = yaml.safe_dump(merged, sort_keys=False, allow_unicode=True)
    header = "# written by vatio: a config pushed over MQTT (see the .origin.json beside it)\n"
    try:
        loaded = parse_config_text(header + out, base_dir, str(local_path))
    except ConfigError as exc:  # cannot happen unless the dump changed meaning: say so
        raise Refused([redact(str(p), secrets) for p in exc.problems]) from None
    secrets += secrets_of(loaded.config)
    if loaded.config.outputs.mqtt is None:
        raise Refused(["outputs.mqtt: a remotely managed agent needs its MQTT output"])
    blockers = reload_blockers(running, loaded)
    if blockers:
        raise Refused(blockers)
    return Checked(header + out, loaded)

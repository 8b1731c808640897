"""How the agent and the bridge log: one line per record, with its level, in the form the
place it goes to reads best, and never a secret.

* ``journal``: under systemd (``JOURNAL_STREAM`` set) each line starts with the syslog
  priority (``<3>`` for an error, sd-daemon(3)), so ``journalctl -p warning`` filters by level;
  journald adds the time itself.
* ``text``: a terminal: time, level, logger, message.
* ``json``: one JSON object per line (``ts``, ``level``, ``logger``, ``message``, the
  fields a call passed as ``extra=`` such as ``device`` and ``state``, and ``exception``
  when there is one) for log shippers.

Every secret of the config (each ``SecretStr`` field: MQTT and InfluxDB passwords, tokens) is
replaced by ``***`` in the finished line, tracebacks included, whatever code logged it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, SecretStr

LogFormat = Literal["auto", "journal", "text", "json"]

# logging level → syslog priority (sd-daemon(3): <3> err, <4> warning, <6> info, <7> debug)
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6}


def secrets_of(model: BaseModel) -> list[str]:
    """The values of every ``SecretStr`` in a config, however deep."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(model)
    return found


# what every LogRecord has; anything else came from a call's ``extra=``
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class _Formatter(logging.Formatter):
    def __init__(self, style: LogFormat, secrets: Iterable[str]) -> None:
        super().__init__()
        self.style = style
        # longest first, so a secret that contains another is replaced whole
        self.secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        exception = self.formatException(record.exc_info) if record.exc_info else ""
        if self.style == "json":
            ts = datetime.fromtimestamp(record.created, UTC)
            body = {
                "ts": ts.isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": self._redact(message),
            }
            for key, value in record.__dict__.items():  # `extra=` fields: device, state…
                if key not in _STANDARD and not key.startswith("_"):
                    body[key] = self._redact(str(value))
            if exception:
                body["exception"] = self._redact(exception)
            return json.dumps(body, ensure_ascii=False)
        line = f"{record.levelname} {record.name}: {message}"
        if exception:
            line += "\n" + exception
        if self.style == "journal":
            priority = _PRIORITY.get(record.levelno, 7)
            # journald takes each line as one entry: keep the priority on a traceback's lines
            line = "\n".join(f"<{priority}>{part}" for part in line.split("\n"))
        else:
            line = f"{self.formatTime(record)} {line}"
        return self._redact(line)


def setup_logging(
    verbose: bool = False, style: LogFormat = "auto", secrets: Iterable[str] = ()
) -> None:
    if style == "auto":
        style = "journal" if "JOURNAL_STREAM" in os.environ else "text"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(style, secrets))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def add_secrets(secrets: Iterable[str]) -> None:
    """Redact these too from now on (a pushed config brought new ones)."""
    for handler in logging.getLogger().handlers:
        fmt = handler.formatter
        if isinstance(fmt, _Formatter):
            merged = set(fmt.secrets) | {s for s in secrets if len(s) >= 3}
            fmt.secrets = sorted(merged, key=len, reverse=True)

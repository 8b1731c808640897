"""The recent log lines an operator can fetch, and a log level that goes back by itself.

The lines are formatted by the formatter of the agent's own log handler (agent/logs.py), so
they are redacted exactly as the journal's are: no secret can leave through ``logs``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque


class LogBuffer(logging.Handler):
    """The last ``size`` log lines, formatted as the agent's log handler formats them."""

    def __init__(self, size: int = 1000) -> None:
        super().__init__(logging.DEBUG)
        self.lines: deque[str] = deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # logging must never break the agent
            self.handleError(record)

    def install(self) -> None:
        root = logging.getLogger()
        for h in root.handlers:
            if h.formatter is not None:  # the agent's handler: same lines, same redaction
                self.setFormatter(h.formatter)
                break
        root.addHandler(self)

    def remove(self) -> None:
        logging.getLogger().removeHandler(self)

    def tail(self, n: int) -> list[str]:
        return list(self.lines)[-n:] if n > 0 else []


class TemporaryLevel:
    """Set the root logger's level for a while, then put back the level it had."""

    def __init__(self) -> None:
        self._original: int | None = None
        self._timer: asyncio.TimerHandle | None = None

    def set(self, level: str, seconds: float) -> None:
        root = logging.getLogger()
        if self._original is None:
            self._original = root.level
        if self._timer is not None:
            self._timer.cancel()
        root.setLevel(level.upper())
        self._timer = asyncio.get_running_loop().call_later(seconds, self.restore)

    def restore(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._original is not None:
            logging.getLogger().setLevel(self._original)
            logging.getLogger(__name__).info(
                "log level back to %s", logging.getLevelName(self._original)
            )
            self._original = None

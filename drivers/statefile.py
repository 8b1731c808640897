"""A small JSON file a driver may keep across restarts (e.g. the read plan a device taught it).

Drivers never import ``agent/``, so the agent hands a driver a :class:`StateFile` under its
``state_dir`` (see ``use_state`` in drivers/plugin.py). Writes are atomic (a temp file in the
same folder, fsync, rename, fsync of the folder): a power cut leaves the old file or the new
one, never half of one. A full or read-only disk never raises: the failure is logged once,
the driver keeps its state in memory, and the next successful write says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class StateFile:
    """One JSON object in one file. ``writable=False`` (commissioning tools) only reads."""

    def __init__(self, path: Path, writable: bool = True) -> None:
        self.path = path
        self.writable = writable
        self.failing = False  # the last write failed (logged once)

    def load(self) -> dict[str, Any] | None:
        """The stored object, or None if there is none or it cannot be read (logged)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read %s (%s): starting without it", self.path, exc.strerror)
            return None
        try:
            data = json.loads(text)
        except ValueError:
            log.warning("%s is not valid JSON: ignored (it is rewritten when needed)", self.path)
            return None
        return data if isinstance(data, dict) else None

    def save(self, data: dict[str, Any]) -> bool:
        """Replace the stored object atomically; False (logged once) when the disk refuses."""
        if not self.writable:
            return False
        tmp: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            tmp = None
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself survives a power cut
            finally:
                os.close(dir_fd)
        except OSError as exc:
            if not self.failing:
                log.warning(
                    "cannot write %s (%s): kept in memory until the disk takes writes again",
                    self.path, exc.strerror or exc,
                )  # fmt: skip
            self.failing = True
            return False
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        if self.failing:
            log.info("%s written again", self.path)
            self.failing = False
        return True

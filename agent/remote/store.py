"""Where pushed configs live, written so that a crash at any moment leaves a whole file.

The config in force is always the local file (``vatio run -c FILE``). A push replaces it by
rename: the new text goes to a temporary file in the same directory, is fsynced, renamed
over ``FILE`` (atomic on POSIX), and the directory is fsynced so the rename itself survives
a power cut. Beside it:

* ``FILE.previous/``: the configs that were in force before each push (the last
  ``remote.keep_configs``), named ``<utc time>-<hash>.yaml``; a rollback renames one back.
* ``FILE.trial.json``: written before the new file goes in, removed when the trial ends.
  An agent that starts and finds it (it was killed mid-trial) runs the trial again, and
  answers the request once the trial ends.
* ``FILE.origin.json``: the hash of the file and where it came from (``local``, or the
  sender and request id of a push); the agent's status carries both.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def config_hash(data: bytes) -> str:
    """The config's version: the first 12 hex digits of the SHA-256 of the file."""
    return hashlib.sha256(data).hexdigest()[:12]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int | None = None) -> None:
    """``path`` holds ``data`` afterwards, or (on any error, or a crash) what it held
    before; never a part of either. ``mode``: default, that of the file replaced."""
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@dataclass
class Trial:
    """A pushed config on trial: what to answer, and what to go back to."""

    request_id: str
    sender: str
    response_topic: str
    correlation_hex: str
    new_hash: str
    previous: str  # the file in FILE.previous/ holding the config before the push
    devices_answering: list[str]  # devices that answered before the push
    rollback_after: float


@dataclass
class Origin:
    hash: str
    origin: str  # "local", or "remote"
    sender: str = ""
    request_id: str = ""
    at: str = ""


class ConfigStore:
    """The files beside the agent's config ``path``."""

    def __init__(self, path: str | Path, keep: int = 5) -> None:
        self.path = Path(path).absolute()
        self.keep = keep
        self.previous_dir = self.path.with_name(self.path.name + ".previous")
        self.trial_file = self.path.with_name(self.path.name + ".trial.json")
        self.origin_file = self.path.with_name(self.path.name + ".origin.json")

    def clean_temporaries(self) -> None:
        """Temporary files a crash left behind (never the config itself)."""
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def current(self) -> bytes:
        return self.path.read_bytes()

    def origin(self) -> Origin:
        data = self.current()
        h = config_hash(data)
        try:
            recorded = Origin(**json.loads(self.origin_file.read_text()))
        except (OSError, ValueError, TypeError):
            return Origin(h, "local")
        # edited by hand since the push: it is a local file again
        return recorded if recorded.hash == h else Origin(h, "local")

    def save_previous(self, data: bytes) -> Path:
        self.previous_dir.mkdir(mode=0o700, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.previous_dir / f"{stamp}-{config_hash(data)}.yaml"
        write_atomically(target, data, self.path.stat().st_mode & 0o777)
        kept = sorted(self.previous_dir.glob("*.yaml"))
        for old in kept[: -self.keep]:
            with contextlib.suppress(OSError):
                old.unlink()
        return target

    def begin_trial(self, trial: Trial, new: bytes) -> None:
        """Keep the running config, mark the trial, then put the new config in force."""
        write_atomically(self.trial_file, json.dumps(asdict(trial)).encode(), 0o600)
        write_atomically(self.path, new)

    def trial(self) -> Trial | None:
        """The trial a killed agent left, if its new config did go in (else it is void)."""
        try:
            trial = Trial(**json.loads(self.trial_file.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            self.end_trial()
            return None
        if config_hash(self.current()) != trial.new_hash:
            self.end_trial()  # killed before the rename: the old config is still in force
            return None
        return trial

    def end_trial(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.trial_file.unlink()
            fsync_dir(self.path.parent)

    def record_origin(self, origin: Origin) -> None:
        write_atomically(self.origin_file, json.dumps(asdict(origin)).encode(), 0o600)

    def roll_back(self, previous: str) -> None:
        write_atomically(self.path, Path(previous).read_bytes())


def origin_fields(origin: Origin) -> dict[str, Any]:
    """What the agent's status says of its config."""
    out: dict[str, Any] = {"hash": origin.hash, "origin": origin.origin}
    if origin.origin == "remote":
        out.update(sender=origin.sender, request=origin.request_id, at=origin.at)
    return out

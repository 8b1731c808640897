"""A real small disk for fault tests: a tmpfs mounted for one test, filled until writes fail,
freed again, or remounted read-only — what a gateway's SD card does, without mocks.

Mounting needs root (``./scripts/test`` runs as root, as CI does); elsewhere the tests that
use it are skipped with that reason.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallDisk:
    def __init__(self, path: Path, size_kib: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(path)],
            check=True,
        )
        self._fillers: list[Path] = []

    def fill(self) -> int:
        """Write filler until the disk refuses even a byte; returns the bytes written."""
        written = 0
        filler = self.path / f"filler-{len(self._fillers)}"
        self._fillers.append(filler)
        with open(filler, "wb", buffering=0) as f:
            for chunk in (65536, 4096, 512, 1):
                block = b"\0" * chunk
                while True:
                    try:
                        written += f.write(block) or 0
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        return written

    def free(self) -> None:
        for filler in self._fillers:
            filler.unlink(missing_ok=True)
        self._fillers.clear()

    def read_only(self, on: bool = True) -> None:
        subprocess.run(
            ["mount", "-o", f"remount,{'ro' if on else 'rw'}", str(self.path)], check=True
        )

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


def small_disk(tmp_path: Path, size_kib: int = 4096) -> Iterator[SmallDisk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root: run ./scripts/test as root (CI does)")
    disk = SmallDisk(tmp_path / "small", size_kib)
    try:
        yield disk
    finally:
        disk.close()

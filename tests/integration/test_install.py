"""scripts/install (from the checkout) and scripts/uninstall against a temporary root: a venv
that runs, the example config (0640, state in /var/lib/vatio), the units; then removal,
keeping the config unless --purge. Upgrades and the offline path: test_bundle.py."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent.parent


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_install_from_the_checkout_and_uninstall_keeps_the_config(tmp_path):
    root = tmp_path / "root"
    out = run(str(REPO / "scripts/install"), "--root", str(root))
    assert "wrote the example config" in out
    config = root / "etc/vatio/vatio.yaml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "etc/vatio").stat().st_mode) == 0o750
    assert "state_dir: /var/lib/vatio" in config.read_text()
    for unit in ("vatio-agent.service", "vatio-ingest.service"):
        assert (root / "etc/systemd/system" / unit).read_text() == (
            REPO / "systemd" / unit
        ).read_text()
    vatio = root / "opt/vatio/bin/vatio"
    assert "ok:" in run(str(vatio), "check", "-c", str(config))

    # a second install (an upgrade) keeps a changed config and the spool: test_bundle.py,
    # through the offline path (the two differ only in where pip takes the wheels)

    run(str(REPO / "scripts/uninstall"), "--root", str(root))
    assert not (root / "opt/vatio").exists()
    assert not (root / "etc/systemd/system/vatio-agent.service").exists()
    assert config.exists()
    run(str(REPO / "scripts/uninstall"), "--root", str(root), "--purge")
    assert not (root / "etc/vatio").exists()

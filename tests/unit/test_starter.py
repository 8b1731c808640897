"""``vatio --version`` and ``vatio init``, in process (the installed wheel: test_bundle.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.helpers import run_cli
from vatio.agent.cli import main
from vatio.agent.runtime import vatio_version
from vatio.agent.starter import EXAMPLES, example_text

CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs"


@pytest.fixture(autouse=True)
def english(monkeypatch):
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")


def test_version_names_vatio_python_and_the_libraries(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"vatio {vatio_version()}"
    assert lines[1].startswith("Python 3.")
    assert lines[2].startswith("pymodbus 3.") and lines[3].startswith("paho-mqtt 2.")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_shipped_example_is_the_repository_s(name):
    assert example_text(name) == (CONFIGS / EXAMPLES[name]).read_text()


def test_init_writes_and_never_overwrites_without_force(tmp_path, capsys):
    target = tmp_path / "vatio.yaml"
    assert main(["init", str(target), "--example", "city"]) == 0
    assert target.read_text() == (CONFIGS / "city.yaml").read_text()
    assert stat.S_IMODE(target.stat().st_mode) & 0o007 == 0  # may soon hold a password
    assert f"vatio check -c {target}" in capsys.readouterr().out

    target.write_text("mine\n")
    assert main(["init", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {target} exists already; it was not changed")
    assert "--force" in err
    assert target.read_text() == "mine\n"
    assert main(["init", str(target), "--force"]) == 0
    assert target.read_text() == (CONFIGS / "example.yaml").read_text()


def test_init_into_a_folder_and_into_a_missing_one(tmp_path, capsys):
    assert main(["init", str(tmp_path), "--example", "ingest"]) == 0
    assert (tmp_path / "ingest.yaml").read_text() == (CONFIGS / "ingest.yaml").read_text()
    assert "vatio ingest -c" in capsys.readouterr().out
    assert main(["init", str(tmp_path)]) == 0
    assert (tmp_path / "vatio.yaml").exists()

    assert main(["init", str(tmp_path / "no" / "v.yaml")]) == 1
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'no' / 'v.yaml'}: the folder {tmp_path / 'no'} does not exist; "
        "create it first\n"
    )


def test_init_speaks_spanish(tmp_path):
    (tmp_path / "vatio.yaml").write_text("mine\n")
    done = run_cli("init", "vatio.yaml", lang="es_MX.UTF-8", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: vatio.yaml ya existe; no se modificó")
    assert "Traceback" not in done.stderr

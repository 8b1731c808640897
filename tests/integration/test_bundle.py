"""The built wheel and the offline bundle, used as a technician would, away from the repository.

The wheel, installed into a fresh venv outside the repository, gives the ``vatio`` command and
the ``vatio`` package only: ``vatio --version``, ``vatio init`` + ``vatio check`` on every
shipped example, a third-party driver loaded from its own wheel, and no top-level ``agent``,
``drivers``, ``simulators`` or ``common``. The offline bundle (built once for x86_64, aarch64 and
armv7l: this needs the package index, as ``scripts/test`` does) installs with ``--offline``
while every way pip could reach a network is closed, upgrades over a changed config and a
non-empty spool without touching either, and refuses a config the new version rejects, a
damaged copy and a platform it has no wheels for. For aarch64 and armv7l, each wheel must fit
the platform and the set must be the one that installed on x86_64 (else the platform is
marked incomplete, naming what is missing); armv7l's pure-Python PyYAML runs Vatio.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "vatio_demo_driver"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
EXAMPLES = ("example", "factory-rs485", "city")
GLIBC_MINOR = 36  # bookworm

# pip must find no network: no index, and any proxy it might try is a closed port
OFFLINE_ENV = {
    "PIP_NO_INDEX": "1",
    "https_proxy": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "no_proxy": "",
}


def run(
    *args: str | Path, cwd: Path = REPO, env: dict[str, str] | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        # English whatever the developer's locale: the assertions read the messages
        env={**english(os.environ), **(env or {})},
    )
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def english(env: Mapping[str, str]) -> dict[str, str]:
    return {
        **{k: v for k, v in env.items() if not k.startswith(("LC_", "LANG"))},
        "LANG": "C.UTF-8",
    }


def clean_env() -> dict[str, str]:
    """The environment of a shell away from the repository: no PYTHONPATH into it."""
    return {k: v for k, v in english(os.environ).items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


@contextlib.contextmanager
def building_in_the_repository() -> Iterator[None]:
    """One build at a time in the repository's build/ and egg-info: the suite's workers each
    run this module's fixtures, and two setuptools builds in one tree break each other."""
    with open(Path(tempfile.gettempdir()) / "vatio-test-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Vatio's wheel and the demo driver's, built once (no build isolation: no network)."""
    out = tmp_path_factory.mktemp("wheels")
    for source in (REPO, FIXTURE):
        with building_in_the_repository():
            # setuptools' build/lib keeps what an older build put there (scripts/bundle too)
            shutil.rmtree(source / "build" / "lib", ignore_errors=True)
            for stale in (source / "build").glob("bdist.*"):
                shutil.rmtree(stale, ignore_errors=True)
            run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                "-w", out, source)  # fmt: skip
    return {
        "vatio": next(out.glob("vatio-*.whl")),
        "plugin": next(out.glob("vatio_demo_driver-*.whl")),
    }


@pytest.fixture(scope="module")
def bundle(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bundle for the three platforms (the only step here that uses the package index)."""
    out = tmp_path_factory.mktemp("bundle")
    done = run(REPO / "scripts/bundle", "--wheel", wheels["vatio"], "--out", out, ok=False)
    # 3: a platform is incomplete and named (armv7l: PyPI lacks some wheels); checked below
    assert done.returncode in (0, 3), done.stdout + done.stderr
    return out / f"vatio-{VERSION}-offline"


def test_the_wheel_holds_the_vatio_package_only_with_its_data(wheels):
    names = zipfile.ZipFile(wheels["vatio"]).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"vatio", f"vatio-{VERSION}.dist-info"}
    for config in ("example", "factory-rs485", "city", "ingest"):
        assert f"vatio/configs/{config}.yaml" in names
    assert any(n.startswith("vatio/drivers/profiles/") for n in names)
    assert any(n.startswith("vatio/agent/web/") for n in names)


def test_the_sdist_holds_real_files_and_builds_the_same_wheel(tmp_path):
    """The sdist (what PyPI and distro packagers take) carries the files behind vatio/'s
    symlinks, the profiles, the page and the examples, and a wheel built from it is clean."""
    out = tmp_path / "dist"
    out.mkdir()
    build = "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))"
    with building_in_the_repository():
        name = run(sys.executable, "-c", build, out, cwd=REPO).stdout.strip().splitlines()[-1]
    with tarfile.open(out / name) as sdist:
        members = {m.name: m for m in sdist.getmembers()}
    root = f"vatio-{VERSION}/vatio/"
    assert not any(m.issym() for m in members.values())  # real files, for any unpacker
    for needed in ("agent/cli.py", "common/i18n.py", "drivers/profiles/eastron_sdm630.yaml",
                   "agent/web/status.html", "configs/example.yaml", "py.typed"):  # fmt: skip
        assert root + needed in members, needed
    tops = {n.split("/")[1] for n in members if n.count("/") >= 1}
    assert not tops & {"agent", "drivers", "simulators", "common", "tests"}, tops
    unpacked = tmp_path / "src"
    with tarfile.open(out / name) as sdist:
        sdist.extractall(unpacked, filter="data")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "-w", out, unpacked / f"vatio-{VERSION}")  # fmt: skip
    wheel = zipfile.ZipFile(next(out.glob("vatio-*.whl"))).namelist()
    assert {n.split("/")[0] for n in wheel} == {"vatio", f"vatio-{VERSION}.dist-info"}


def test_installed_wheel_works_away_from_the_repository(wheels, bundle, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    # dependencies from the bundle: this install needs no network either
    run(venv / "bin/python", "-m", "pip", "install", "-q", "--no-index", "--find-links",
        bundle / "wheels/x86_64", wheels["vatio"], wheels["plugin"], cwd=tmp_path,
        env=OFFLINE_ENV)  # fmt: skip
    vatio = venv / "bin/vatio"
    env = clean_env()
    home = tmp_path / "site"
    home.mkdir()

    lines = run(vatio, "--version", cwd=home, env=env).stdout.splitlines()
    assert lines[0] == f"vatio {VERSION}"
    assert re.fullmatch(r"Python 3\.\d+\.\d+ \(CPython, linux \w+\)", lines[1]), lines
    assert re.fullmatch(r"pymodbus 3\.16\.\d+", lines[2]), lines
    assert re.fullmatch(r"paho-mqtt 2\.\d+\.\d+", lines[3]), lines

    for example in EXAMPLES:
        path = home / f"{example}.yaml"
        out = run(vatio, "init", path.name, "--example", example, cwd=home, env=env).stdout
        assert f"wrote the '{example}' example to {path.name}" in out
        assert path.read_text() == (REPO / "configs" / f"{example}.yaml").read_text()
        assert run(vatio, "check", "-c", path.name, cwd=home, env=env).stdout.startswith("ok:")
    run(vatio, "init", cwd=home, env=env)  # the default: vatio.yaml, the Modbus TCP example
    assert "ok:" in run(vatio, "check", "-c", "vatio.yaml", cwd=home, env=env).stdout

    # never overwritten without --force; a located message, no traceback
    (home / "vatio.yaml").write_text("mine\n")
    refused = run(vatio, "init", cwd=home, env=env, ok=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: vatio.yaml exists already")
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr
    assert (home / "vatio.yaml").read_text() == "mine\n"
    missing = run(vatio, "init", "no/such/dir/v.yaml", cwd=home, env=env, ok=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    run(vatio, "init", "--force", cwd=home, env=env)
    assert (home / "vatio.yaml").read_text() == (REPO / "configs/example.yaml").read_text()

    # the third-party driver, from its own wheel, is found through vatio.drivers
    (home / "plugin.yaml").write_text(
        "site: lab\nagent_id: gw\nstate_dir: state\n"
        "buses:\n  uart: {type: serial, port: /dev/null, baudrate: 9600}\n"
        "devices:\n  th: {bus: uart, driver: thermo-line, channel: 2, interval: 1s}\n"
    )
    out = run(vatio, "check", "-c", "plugin.yaml", cwd=home, env=env).stdout
    assert "driver thermo-line" in out

    # only `vatio` is installed at the top of site-packages
    for name in ("agent", "drivers", "simulators", "common"):
        done = run(venv / "bin/python", "-c", f"import {name}", cwd=home, env=env, ok=False)
        assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr, name
    run(venv / "bin/python", "-c", "import vatio.agent.cli, vatio.drivers, vatio.common",
        cwd=home, env=env)  # fmt: skip


def fits(filename: str, arch: str) -> bool:
    """A wheel pip on CPython 3.11 installs on a bookworm ``arch`` (checked apart from
    scripts/bundle's own check, so that a mistake there cannot pass here)."""
    *_, pys, abis, plats = filename[: -len(".whl")].split("-")
    oldest = 5 if arch == "x86_64" else 17
    allowed = {f"manylinux_2_{m}_{arch}" for m in range(oldest, GLIBC_MINOR + 1)}
    allowed |= {f"manylinux2014_{arch}", "any"}
    if arch == "armv7l":
        allowed.add("linux_armv7l")
    pure = abis == "none" and "py3" in pys.split(".")
    native = "cp311" in pys.split(".") and abis in ("cp311", "abi3")
    return (pure or native) and any(p in allowed for p in plats.split("."))


def names(folder: Path) -> set[str]:
    return {re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower() for w in folder.glob("*.whl")}


def test_bundle_has_a_fitting_wheel_of_every_dependency_or_names_the_missing(bundle):
    reference = names(bundle / "wheels/x86_64")  # this set installs offline (tests here)
    assert {"vatio", "pydantic-core", "pyyaml", "pymodbus", "paho-mqtt"} <= reference
    for arch in ("x86_64", "aarch64", "armv7l"):
        folder = bundle / "wheels" / arch
        for wheel in folder.glob("*.whl"):
            assert fits(wheel.name, arch), (arch, wheel.name)
        missing = reference - names(folder)
        marker = folder / "INCOMPLETE"
        if missing:
            # named at bundle time, so that scripts/install refuses the platform
            assert marker.exists(), (arch, missing)
            for name in missing:
                assert name in marker.read_text().lower(), (arch, name)
        else:
            assert not marker.exists(), marker.read_text()
    # PyPI has every aarch64 wheel, and every armv7l one but PyYAML's, which the bundle
    # builds pure-Python (Vatio uses only PyYAML's pure-Python loader)
    for arch in ("aarch64", "armv7l"):
        assert not (bundle / "wheels" / arch / "INCOMPLETE").exists(), arch
    assert [w.name for w in (bundle / "wheels/armv7l").glob("pyyaml-*.whl")] == [
        f"pyyaml-{pyyaml_version(bundle)}-py3-none-any.whl"
    ]
    assert "armv7l: complete (pyyaml==" in (bundle / "README.txt").read_text()

    listed = dict(
        reversed(line.split("  ", 1)) for line in (bundle / "MANIFEST").read_text().splitlines()
    )
    for wheel in bundle.glob("wheels/*/*.whl"):
        assert wheel.relative_to(bundle).as_posix() in listed
    run("sha256sum", "-c", "--quiet", "MANIFEST", cwd=bundle)


def pyyaml_version(bundle: Path) -> str:
    return next((bundle / "wheels/x86_64").glob("pyyaml-*.whl")).name.split("-")[1]


def test_the_pure_python_pyyaml_of_the_armv7l_bundle_runs_vatio(wheels, bundle, tmp_path):
    """armv7l's wheels, but for pydantic-core (native code: x86_64's stands in for it)."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    native = tmp_path / "native"
    native.mkdir()
    shutil.copy2(next((bundle / "wheels/x86_64").glob("pydantic_core-*.whl")), native)
    run(venv / "bin/python", "-m", "pip", "install", "-q", "--no-index",
        "--find-links", bundle / "wheels/armv7l", "--find-links", native, "vatio",
        cwd=tmp_path, env=OFFLINE_ENV)  # fmt: skip
    env = clean_env()
    done = run(venv / "bin/python", "-c", "import yaml; print(yaml.__with_libyaml__)",
               cwd=tmp_path, env=env)  # fmt: skip
    assert done.stdout.strip() == "False"
    run(venv / "bin/vatio", "init", "--example", "factory-rs485", cwd=tmp_path, env=env)
    done = run(venv / "bin/vatio", "check", "-c", "vatio.yaml", cwd=tmp_path, env=env)
    assert done.stdout.startswith("ok:")
    (tmp_path / "vatio.yaml").write_text("site: s\nbuses: {}\ndevices: {}\nnonsense: 1\n")
    done = run(venv / "bin/vatio", "check", "-c", "vatio.yaml", cwd=tmp_path, env=env, ok=False)
    assert "vatio.yaml:4: nonsense: unknown key 'nonsense'" in done.stderr  # located, as ever


def offline_install(root: Path, bundle: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """scripts/install --offline with no network for pip (PIP_NO_INDEX, closed proxies)."""
    args = ("--root", root, "--offline", bundle)
    return run(REPO / "scripts/install", *args, env=OFFLINE_ENV, ok=ok)


def test_offline_install_then_upgrades_keep_config_and_spool(bundle, tmp_path):
    root = tmp_path / "root"
    # an install by the older scripts/install: a venv right in /opt/vatio
    (root / "opt/vatio/bin").mkdir(parents=True)
    out = offline_install(root, bundle).stdout
    assert "installing from the offline bundle" in out and "(x86_64, Python 3.11)" in out
    opt = root / "opt/vatio"
    assert opt.is_symlink()
    config = root / "etc/vatio/vatio.yaml"
    assert "state_dir: /var/lib/vatio" in config.read_text()
    vatio = opt / "bin/vatio"
    assert run(vatio, "--version", env=clean_env()).stdout.startswith(f"vatio {VERSION}\n")
    assert "ok:" in run(vatio, "check", "-c", config, cwd=tmp_path, env=clean_env()).stdout
    # the installed code is the wheel's, not the repository's
    where = run(opt / "bin/python", "-c", "import vatio; print(vatio.__file__)", cwd=tmp_path,
                env=clean_env()).stdout  # fmt: skip
    real = os.path.realpath(where.strip())
    assert real.startswith(str(root / "opt/vatio-versions")), (where, real)

    # the operator's changes and the agent's undelivered messages
    config.write_text(config.read_text().replace("planta-norte", "planta-sur"))
    mine = config.read_text()
    spool = root / "var/lib/vatio/spool.db"
    spool.parent.mkdir(parents=True)
    spool.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    kept = spool.read_bytes()
    first = os.readlink(opt)

    tarball = bundle.parent / f"{bundle.name}.tar.gz"
    out = offline_install(root, tarball).stdout  # the upgrade, from the tarball this time
    assert f"vatio {VERSION} accepts your config" in out and "kept your config" in out
    assert config.read_text() == mine and spool.read_bytes() == kept
    second = os.readlink(opt)
    assert second != first and (opt.parent / first).is_dir()  # the previous one: a rollback
    assert "site planta-sur" in run(vatio, "check", "-c", config, env=clean_env()).stdout

    # a config the new version refuses: nothing changes, and the script says why
    config.write_text(mine + "no_such_key: 1\n")
    refused = offline_install(root, bundle, ok=False)
    assert refused.returncode == 1
    assert "unknown key 'no_such_key'" in refused.stderr
    assert "Nothing was changed. The installed vatio" in refused.stderr
    assert os.readlink(opt) == second and spool.read_bytes() == kept
    assert sorted(p.name for p in (opt.parent / "vatio-versions").iterdir()) == sorted(
        [first.split("/")[-1], second.split("/")[-1]]
    )

    run(REPO / "scripts/uninstall", "--root", root)
    assert not opt.exists() and not (root / "opt/vatio-versions").exists()
    assert config.exists() and spool.read_bytes() == kept
    # a reinstall over the kept /etc/vatio checks it too
    refused = offline_install(root, bundle, ok=False)
    assert refused.returncode == 1 and "unknown key 'no_such_key'" in refused.stderr
    assert not opt.exists() and not any((root / "opt/vatio-versions").iterdir())


def test_offline_install_refuses_a_damaged_copy_or_a_missing_platform(bundle, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(bundle, damaged)
    wheel = next((damaged / "wheels/x86_64").glob("pyyaml-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte of a wheel, as a bad USB stick would
    wheel.write_bytes(bytes(data))
    done = offline_install(tmp_path / "root1", damaged, ok=False)
    assert done.returncode == 1 and "damaged copy" in done.stderr
    assert not (tmp_path / "root1/opt/vatio").exists()

    shutil.rmtree(damaged / "wheels/x86_64")
    done = offline_install(tmp_path / "root2", damaged, ok=False)
    assert done.returncode == 1
    assert "no wheels for this machine (x86_64)" in done.stderr
    assert "scripts/bundle --platforms x86_64" in done.stderr

"""What an installed user needs without the repository: ``vatio --version`` and ``vatio init``.

The example configs ship inside the package as data of ``vatio`` (``vatio/configs`` is a
symlink to the repository's ``configs/``, listed file by file in pyproject's package-data), so
:func:`importlib.resources.files` finds them the same way in the repository, in an editable
install and in an installed wheel. ``configs/`` is not a package (no ``__init__.py``): it holds
data only, and the Grafana and Mosquitto examples beside the YAML files are not shipped.

The version comes from one place, pyproject's ``version``, read back from the installed
metadata (:func:`vatio.agent.runtime.vatio_version`).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path

from vatio.agent.buses import vatio_version
from vatio.common.i18n import tr

# name on the command line -> file shipped in vatio/configs/
EXAMPLES: dict[str, str] = {
    "example": "example.yaml",  # Modbus TCP meters: the demo and the service's default
    "factory-rs485": "factory-rs485.yaml",  # RS-485 line and an RTU gateway
    "city": "city.yaml",  # air-quality sensors on serial ports
    "ingest": "ingest.yaml",  # the ingest bridge's config (vatio ingest -c …)
}

# what a bug report needs besides our version: the libraries whose APIs we follow closely
REPORTED = ("pymodbus", "paho-mqtt")


def version_report() -> str:
    """``vatio --version``: Vatio's version, then the Python and the libraries it talks through."""
    lines = [f"vatio {vatio_version()}"]
    where = f"{platform.python_implementation()}, {sys.platform} {platform.machine()}"
    lines.append(f"Python {platform.python_version()} ({where})")
    for dist in REPORTED:
        try:
            lines.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            lines.append(f"{dist} not installed")
    return "\n".join(lines)


class VersionAction(argparse.Action):
    """``--version`` that looks the versions up only when asked (not on every start)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the versions and exit")

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        try:
            print(version_report(), flush=True)
        except BrokenPipeError:
            # `vatio --version | head -n 1`: the reader left; as main() does, end quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        parser.exit()


def example_text(name: str) -> str:
    """The text of one shipped example config."""
    return (files("vatio") / "configs" / EXAMPLES[name]).read_text(encoding="utf-8")


def add_init_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="write a starting config from a shipped example")
    p.add_argument(
        "path", nargs="?", default="vatio.yaml", help="file to write (default: vatio.yaml)"
    )
    p.add_argument(
        "--example",
        choices=list(EXAMPLES),
        default="example",
        help="which example: example (Modbus TCP), factory-rs485, city (air quality), "
        "ingest (the ingest bridge)",
    )
    p.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    p.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.path)
    if target.is_dir():
        target = target / ("ingest.yaml" if args.example == "ingest" else "vatio.yaml")
    text = example_text(args.example)
    if not target.parent.is_dir():
        return _fail(
            tr(
                "{path}: the folder {folder} does not exist; create it first",
                path=target,
                folder=target.parent,
            )
        )
    # O_EXCL: never overwrite without --force, even if the file appears meanwhile.
    # 0640: a config soon holds broker credentials; the service's group reads it.
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if args.force else os.O_EXCL)
    try:
        fd = os.open(target, flags, 0o640)
    except FileExistsError:
        return _fail(
            tr(
                "{path} exists already; it was not changed. Write elsewhere "
                "(vatio init OTHER.yaml) or overwrite it with --force",
                path=target,
            )
        )
    except IsADirectoryError:
        return _fail(tr("{path} is a folder; name a file", path=target))
    except OSError as exc:
        return _fail(tr("{path}: cannot write it: {reason}", path=target, reason=exc.strerror))
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    print(tr("wrote the '{example}' example to {path}", example=args.example, path=target))
    then = "vatio ingest" if args.example == "ingest" else "vatio check"
    print(tr("edit it, then: {command} -c {path}", command=then, path=target))
    return 0


def _fail(message: str) -> int:
    print(tr("error: {text}", text=message), file=sys.stderr)
    return 1

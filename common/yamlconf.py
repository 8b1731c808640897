"""YAML files that technicians edit: load them strictly, and report errors by place.

Both the agent config and the device profiles are YAML read into pydantic models. This module
owns what they share: duplicate keys are errors (PyYAML silently keeps the last one), every
error names its file, line and dotted YAML path, and pydantic's messages get a plain hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from vatio.common.i18n import tr

PathPart = str | int


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a YAML file, located by path (and line when known)."""

    path: tuple[PathPart, ...]
    message: str
    file: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        dotted = dotted_path(self.path)
        return f"{where}: {dotted}: {self.message}" if dotted else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems; ``str()`` lists each on its own line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def dotted_path(path: Iterable[PathPart]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last silently."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                tr(
                    "duplicate key '{key}' (first at line {line}); keep only one",
                    key=key,
                    line=seen[key] + 1,
                ),
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


@dataclass
class YamlDocument:
    """Parsed YAML data plus its node tree, so errors can point at a line."""

    data: Any
    root: yaml.Node | None
    file: str

    def line_of(self, path: Sequence[PathPart]) -> int | None:
        node = self.root
        line = None if node is None else node.start_mark.line + 1
        for part in path:
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.value == part or (
                        isinstance(part, int) and key_node.value == str(part)
                    ):
                        node = value_node
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    return line
                node = node.value[part]
            else:
                return line
            line = node.start_mark.line + 1
        return line

    def problem(self, path: Sequence[PathPart], message: str) -> Problem:
        return Problem(tuple(path), message, self.file, self.line_of(path))


def load_yaml_text(text: str, file: str) -> YamlDocument:
    """Parse YAML strictly; a syntax error becomes a located :class:`ConfigError`."""
    try:
        root = yaml.compose(text, Loader=_StrictLoader)
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or str(exc)
        raise ConfigError(
            [
                Problem(
                    (),
                    tr("not valid YAML: {what} (check indentation and quoting)", what=what),
                    file,
                    line,
                )
            ]
        ) from None
    return YamlDocument(data, root, file)


def load_yaml_file(path: Path) -> YamlDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem((), tr("file not found; check the path"), str(path))]) from None
    except (OSError, UnicodeDecodeError) as exc:
        problem = Problem((), tr("cannot read the file: {error}", error=exc), str(path))
        raise ConfigError([problem]) from None
    return load_yaml_text(text, str(path))


def validation_problems(
    exc: ValidationError,
    doc: YamlDocument,
    model: type[BaseModel] | None = None,
    prefix: Sequence[PathPart] = (),
    also_allowed: Sequence[str] = (),
) -> list[Problem]:
    """Turn pydantic errors into located problems with hints a technician can act on.

    ``prefix`` is where in the document the validated data sits (for a model validated on
    part of the file, such as a driver's options under ``devices.<name>``); ``also_allowed``
    are keys valid there besides the model's (offered as did-you-mean hints).
    """
    data = doc.data
    for part in prefix:
        data = data.get(part) if isinstance(data, dict) else None
    problems = []
    for err in exc.errors(include_url=False):
        rel = _yaml_path(err["loc"], data)
        loc = tuple(prefix) + rel
        problems.append(doc.problem(loc, _humanise(err, model, rel, also_allowed)))
    return problems


def _yaml_path(loc: Sequence[Any], data: Any) -> tuple[PathPart, ...]:
    """Drop the parts of a pydantic location that are not in the YAML (union tags)."""
    path: list[PathPart] = []
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if part == "[key]":
            continue  # the error is about the key itself; the path already names it
        if isinstance(data, dict) and part not in data and not last:
            continue  # e.g. the 'modbus-tcp' branch of a discriminated union
        path.append(part)
        data = (
            data.get(part)
            if isinstance(data, dict)
            else (
                data[part]
                if isinstance(data, list) and isinstance(part, int) and part < len(data)
                else None
            )
        )
    return tuple(path)


def _humanise(
    err: Any,
    model: type[BaseModel] | None,
    loc: tuple[PathPart, ...],
    also_allowed: Sequence[str] = (),
) -> str:
    kind = err["type"]
    msg: str = err["msg"]
    given = err.get("input")
    if kind == "extra_forbidden":
        key = loc[-1] if loc else "?"
        allowed = (_allowed_keys(model, loc[:-1]) if model else []) + list(also_allowed)
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = (
            tr("did you mean '{close}'?", close=close[0])
            if close
            else tr("allowed keys: {keys}", keys=", ".join(allowed))
        )
        return tr("unknown key '{key}': {hint}", key=key, hint=hint)
    if kind == "missing":
        return tr("required but missing; add it")
    if kind == "string_pattern_mismatch":
        return tr(
            "'{given}' is not a valid name: use letters, digits, '-', '_' or '.', no spaces "
            "(names become MQTT topic levels)",
            given=given,
        )
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return tr(
            "'{tag}' is not a known type: use {expected}",
            tag=ctx.get("tag", given),
            expected=ctx.get("expected_tags", ""),
        )
    if kind.startswith("value_error"):
        return msg.removeprefix("Value error, ")
    if kind in ("enum", "literal_error"):
        return tr("'{given}' is not allowed: {msg}", given=given, msg=msg.lower())
    return f"{msg} (got {given!r})" if given is not None and not isinstance(given, dict) else msg


def _allowed_keys(model: type[BaseModel], loc: tuple[PathPart, ...]) -> list[str]:
    """Field names of the model at ``loc`` (best effort; used only for hints)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            current = _inner_model(current)
            if isinstance(part, int):
                continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            current = _inner_model(current)  # a dict of models keyed by name
            continue
        current = _inner_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside list[X], dict[str, X] or X | None, if there is exactly one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None

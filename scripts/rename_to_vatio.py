#!/usr/bin/env python3
"""Issue 13, part 1: install the project under one import package, ``vatio``.

Run at the root of a checkout of main (whatever has been merged by then)::

    python3 scripts/rename_to_vatio.py            # do it (git mv / git add included)
    python3 scripts/rename_to_vatio.py --dry-run  # only say what would change

It is idempotent: a second run changes nothing. What it does:

* The folders stay at the top (agent/, drivers/, simulators/); a new top-level folder
  ``vatio/`` holds the package's ``__init__.py``, ``py.typed`` and relative symlinks
  ``vatio/agent -> ../agent`` (same for drivers, simulators, common). The wheel is built
  through them (setuptools' package finder follows symlinks, the wheel holds real files),
  the editable install maps ``vatio`` to that folder, and mypy, pytest and ``python -m``
  from the repository root see ``vatio.agent...`` with no import hook and no reinstall
  when a module is added.
* The shared pieces that are not drivers (i18n, yamlconf, clock, vocabulary, links) move
  from drivers/ to a new top-level ``common/`` folder (``vatio.common``) with ``git mv``.
* Every tracked ``.py`` file is rewritten with the tokenizer, never by a file list:
  import statements (``from drivers import clock`` -> ``from vatio.common import clock``,
  ``from agent.cli import main`` -> ``from vatio.agent.cli import main``), and in strings and
  comments the dotted module paths that name a module that exists in the tree
  (``"agent.cli"``, ``"drivers.modbus.plugin:ModbusDriver"``, ``"agent.spool.time.time"``,
  ``:mod:`agent.spool```). A dotted path is rewritten only if its first two parts are a real
  module or package of agent/, drivers/, simulators/ (so ``agent.run(stop)``, the ``"agent"``
  payload key, ``agent_id`` and ``vatio-agent.service`` are left alone). Code outside import
  statements is never touched. A bare ``"agent"`` string is rewritten only as the argument of
  ``resources.files``/``import_module``/``find_spec``/``getLogger``; the others are listed.
* pyproject.toml: package discovery, package-data, entry points, mypy packages, ruff
  (isort known-first-party, TID251 ban on the old top-level names).
* README.md and the other text files (scripts, CI, units, configs): the same dotted-path
  rule, import lines in code samples, paths of the moved files (drivers/i18n.py ->
  common/i18n.py), ``ruff check`` argument lists.
* Then, if ruff is found (.venv/bin/ruff or PATH): ``ruff check --select I --fix`` on the
  changed Python files (the import blocks re-sort: ``vatio`` is first-party), and
  ``ruff format --range`` on the lines the rename pushed over the line length.

What it cannot know is printed at the end under "review by hand".
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tokenize
from pathlib import Path

PACKAGE = "vatio"
TOPS = ("agent", "drivers", "simulators")  # folders installed as vatio.<name>
SHARED_HOME = "common"  # the room of the shared pieces: common/ -> vatio.common
SHARED_FROM = "drivers"
# timesync ("is the system clock synchronised?") arrived on main with issue 12: the clock's
# sibling, used by agent/timetrust.py; moved only where it exists. statefile stays in
# drivers/: it is part of the driver API (drivers/plugin.py hands it to a driver).
SHARED: tuple[str, ...] = ("i18n", "yamlconf", "clock", "vocabulary", "links", "timesync")
ALL_TOPS = (*TOPS, SHARED_HOME)
SELF = Path(__file__).resolve()

COMMON_INIT = '''"""What every part of Vatio shares and no part owns.

The messages in English and Spanish (:mod:`vatio.common.i18n`), YAML loading with errors that
name their place (:mod:`vatio.common.yamlconf`), the clock (:mod:`vatio.common.clock`), the
quantity vocabulary (:mod:`vatio.common.vocabulary`) and the link descriptions a driver is
handed (:mod:`vatio.common.links`). Nothing here imports from agent, drivers or simulators.
"""
'''
VATIO_INIT = '''"""Vatio: edge agent for energy and air-quality monitoring.

In the repository the subpackages live at the top (agent/, drivers/, simulators/, common/);
this folder holds symlinks to them, so the repository, the editable install and the wheel
all import them as ``vatio.agent``, ``vatio.drivers``, ``vatio.simulators``, ``vatio.common``.
"""
'''
# Bare package names in strings are rewritten only as the argument of these calls.
BARE_NAME_CALLS = {"files", "import_module", "find_spec", "getLogger", "files_of"}
TEXT_SUFFIXES = {".md", ".rst", ".txt", ".toml", ".cfg", ".ini", ".sh", ".service", ".yaml",
                 ".yml", ".conf"}

warnings: list[str] = []
left_alone: list[str] = []


def git(*args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], check=check, capture_output=True, text=True).stdout


# --------------------------------------------------------------------------- module names


def known_modules(root: Path) -> set[str]:
    """Dotted names (old spelling) of every module and package under the top folders."""
    names: set[str] = set()
    for top in ALL_TOPS:
        base = root / top
        if not base.is_dir():
            continue
        for path in base.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            for i in range(1, len(parts) + 1):
                names.add(".".join(parts[:i]))
    for name in SHARED:  # the moved modules, under their old name too
        names.add(f"{SHARED_FROM}.{name}")
    return names


def new_name(dotted: str) -> str:
    parts = dotted.split(".")
    if parts[0] == SHARED_FROM and len(parts) > 1 and parts[1] in SHARED:
        parts = [SHARED_HOME, *parts[1:]]
    return ".".join([PACKAGE, *parts])


def is_module_path(dotted: str, modules: set[str]) -> bool:
    parts = dotted.split(".")
    return len(parts) >= 2 and parts[0] in ALL_TOPS and ".".join(parts[:2]) in modules


DOTTED = re.compile(r"(?<![\w.\-/$])(" + "|".join(ALL_TOPS) + r")((?:\.[A-Za-z_]\w*)+)")


def rewrite_text(text: str, modules: set[str], skip: list[tuple[int, int]] = ()) -> str:
    """Dotted module paths in free text (strings, comments, markdown, toml)."""

    def repl(m: re.Match[str]) -> str:
        if any(a <= m.start() < b for a, b in skip):
            return m.group(0)
        full = m.group(0)
        # the longest prefix that is a module, keep the rest (attributes) as they are
        parts = full.split(".")
        if not is_module_path(full, modules):
            return full
        k = len(parts)
        while k > 2 and ".".join(parts[:k]) not in modules:
            k -= 1
        return new_name(".".join(parts[:k])) + full[len(".".join(parts[:k])):]

    return DOTTED.sub(repl, text)


MOVED_PATH = re.compile(r"(?<![\w/])" + SHARED_FROM + r"/(" + "|".join(SHARED) + r")\.py\b")


def rewrite_paths(text: str) -> str:
    return MOVED_PATH.sub(SHARED_HOME + r"/\1.py", text)


# --------------------------------------------------------------------------- python files


def fstring_expr_spans(body: str) -> list[tuple[int, int]]:
    spans, depth, start, i = [], 0, 0, 0
    while i < len(body):
        c = body[i]
        if depth == 0 and body.startswith(("{{", "}}"), i):
            i += 2
            continue
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, i + 1))
        i += 1
    return spans


def split_names(tokens: list[tokenize.TokenInfo]) -> list[tuple[str, str | None]]:
    """``a as b, c`` (tokens after ``import``) -> [(a, b), (c, None)]; parens dropped."""
    out: list[tuple[str, str | None]] = []
    cur: list[str] = []
    for t in tokens:
        if t.type == tokenize.OP and t.string in "()":
            continue
        if t.type == tokenize.OP and t.string == ",":
            if cur:
                out.append(_name_as(cur))
            cur = []
        elif t.type in (tokenize.NAME, tokenize.OP):
            cur.append(t.string)
    if cur:
        out.append(_name_as(cur))
    return out


def _name_as(words: list[str]) -> tuple[str, str | None]:
    if "as" in words:
        i = words.index("as")
        return "".join(words[:i]), words[i + 1]
    return "".join(words), None


def fmt_from(module: str, names: list[tuple[str, str | None]]) -> str:
    return f"from {module} import " + ", ".join(n if a is None else f"{n} as {a}"
                                               for n, a in names)


def rewrite_python(path: Path, src: str, modules: set[str]) -> str:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (tokenize.TokenError, SyntaxError) as e:
        warnings.append(f"{path}: not tokenizable ({e}); left as it is")
        return src
    lines = src.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def pos(rc: tuple[int, int]) -> int:
        return offsets[rc[0] - 1] + rc[1]

    edits: list[tuple[int, int, str]] = []
    significant = {tokenize.NL, tokenize.COMMENT}
    prev_sig: tokenize.TokenInfo | None = None
    i = 0
    n = len(tokens)
    while i < n:
        t = tokens[i]
        at_start = prev_sig is None or prev_sig.type in (
            tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) or (
            prev_sig.type == tokenize.OP and prev_sig.string == ";")
        if t.type == tokenize.NAME and t.string in ("from", "import") and at_start:
            j = i
            while j < n and tokens[j].type not in (tokenize.NEWLINE, tokenize.ENDMARKER) and not (
                    tokens[j].type == tokenize.OP and tokens[j].string == ";"):
                j += 1
            stmt = tokens[i:j]
            edit = rewrite_import(path, stmt, src, pos, modules)
            if edit:
                edits.append(edit)
            i = j
            continue
        if t.type == tokenize.STRING or t.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            body_start = 0
            skip: list[tuple[int, int]] = []
            if t.type == tokenize.STRING:
                m = re.match(r"[A-Za-z]*", t.string)
                prefix = m.group(0) if m else ""
                body_start = len(prefix)
                if "f" in prefix.lower():
                    skip = fstring_expr_spans(t.string)
                new = t.string[:body_start] + rewrite_text(t.string[body_start:], modules,
                                                           [(a - body_start, b - body_start)
                                                            for a, b in skip])
                inner = t.string[body_start:].strip("\"'")
                if inner in TOPS:
                    call = _call_name(tokens, i)
                    if call in BARE_NAME_CALLS:
                        new = t.string[:body_start] + t.string[body_start:].replace(
                            inner, f"{PACKAGE}.{inner}", 1)
                    else:
                        left_alone.append(f"{path}:{t.start[0]}: {lines[t.start[0]-1].strip()}")
            else:
                new = rewrite_text(t.string, modules)
            new = rewrite_paths(new)
            if new != t.string:
                edits.append((pos(t.start), pos(t.end), new))
        elif t.type == tokenize.COMMENT:
            new = rewrite_paths(rewrite_text(t.string, modules))
            if new != t.string:
                edits.append((pos(t.start), pos(t.end), new))
        if t.type not in significant:
            prev_sig = t
        i += 1
    for a, b, new in sorted(edits, reverse=True):
        src = src[:a] + new + src[b:]
    return src


def _call_name(tokens: list[tokenize.TokenInfo], i: int) -> str | None:
    """The name called with the string at ``i`` as its first argument, if any."""
    k = i - 1
    while k >= 0 and tokens[k].type in (tokenize.NL, tokenize.COMMENT):
        k -= 1
    if k < 1 or tokens[k].string != "(":
        return None
    return tokens[k - 1].string if tokens[k - 1].type == tokenize.NAME else None


def rewrite_import(path: Path, stmt: list[tokenize.TokenInfo], src: str, pos,
                   modules: set[str]) -> tuple[int, int, str] | None:
    body = [t for t in stmt if t.type not in (tokenize.NL, tokenize.COMMENT)]
    start, end = pos(body[0].start), pos(body[-1].end)
    indent_line = src[src.rfind("\n", 0, start) + 1:start]
    indent = indent_line if indent_line.strip() == "" else ""
    if body[0].string == "from":
        k = 1
        mod_toks = []
        while k < len(body) and not (body[k].type == tokenize.NAME and body[k].string == "import"):
            mod_toks.append(body[k])
            k += 1
        module = "".join(t.string for t in mod_toks)
        names = split_names(body[k + 1:])
        if module.startswith("."):
            if _relative_touches_shared(path, module, names):
                warnings.append(f"{path}:{body[0].start[0]}: relative import {module!r} "
                                "crosses the moved shared modules: make it absolute by hand")
            return None
        top = module.split(".")[0]
        if top == PACKAGE:
            if module != f"{PACKAGE}.{SHARED_FROM}":
                return None
            old = SHARED_FROM  # e.g. a "from vatio.drivers import clock" written by hand
        elif top in ALL_TOPS:
            old = module
        else:
            return None
        if old == SHARED_FROM and any(nm in SHARED for nm, _ in names):
            moved = [(nm, a) for nm, a in names if nm in SHARED]
            rest = [(nm, a) for nm, a in names if nm not in SHARED]
            if any(t.type == tokenize.COMMENT for t in stmt):
                warnings.append(f"{path}:{body[0].start[0]}: comments inside a split import "
                                "were dropped")
            out = [fmt_from(f"{PACKAGE}.{SHARED_HOME}", moved)]
            if rest:
                out.append(fmt_from(f"{PACKAGE}.{SHARED_FROM}", rest))
            return start, end, ("\n" + indent).join(out)
        new_mod = new_name(old)
        if new_mod == module:
            return None
        return pos(mod_toks[0].start), pos(mod_toks[-1].end), new_mod
    # import a.b as c, d
    names = split_names(body[1:])
    if not any(nm.split(".")[0] in ALL_TOPS for nm, _ in names):
        return None
    if len(names) == 1 and names[0][1] is None and "." not in names[0][0]:
        return start, end, f"from {PACKAGE} import {names[0][0]}"
    out = []
    for nm, a in names:
        if nm.split(".")[0] in ALL_TOPS:
            if a is None:
                warnings.append(f"{path}:{body[0].start[0]}: 'import {nm}' binds the name "
                                f"{nm.split('.')[0]!r}; now 'import {new_name(nm)}': fix the uses")
            nm = new_name(nm)
        out.append(nm if a is None else f"{nm} as {a}")
    return start, end, "import " + ", ".join(out)


def _relative_touches_shared(path: Path, module: str, names: list[tuple[str, str | None]]) -> bool:
    parts = list(path.with_suffix("").parts)
    if not parts or parts[0] not in ALL_TOPS:
        return False
    if parts[0] == SHARED_HOME or (parts[0] == SHARED_FROM and len(parts) == 2
                                   and parts[1] in SHARED):
        return True  # inside a moved module: the relative base changed
    dots = len(module) - len(module.lstrip("."))
    base = parts[:-1][: len(parts) - dots] if dots else parts[:-1]
    target = [*base, *[p for p in module.lstrip(".").split(".") if p]]
    if target == [SHARED_FROM]:
        return any(nm in SHARED for nm, _ in names)
    return len(target) >= 2 and target[0] == SHARED_FROM and target[1] in SHARED


# --------------------------------------------------------------------------- other files


IMPORT_LINE = re.compile(r"^(\s*(?:>>> |\.\.\. )?)from (" + "|".join(ALL_TOPS) + r") import (.+)$",
                         re.M)


def rewrite_markup(text: str, modules: set[str]) -> str:
    def repl(m: re.Match[str]) -> str:
        lead, top, rest = m.groups()
        names = [(n.strip(), None) for n in rest.split(",")]
        if top == SHARED_FROM and names and all(n.split(" as ")[0] in SHARED for n, _ in names):
            return f"{lead}from {PACKAGE}.{SHARED_HOME} import {rest}"
        return f"{lead}from {PACKAGE}.{top} import {rest}"

    text = IMPORT_LINE.sub(repl, text)
    text = re.sub(r"^(\s*)import (" + "|".join(TOPS) + r")\s*$", rf"\1from {PACKAGE} import \2",
                  text, flags=re.M)
    return rewrite_paths(rewrite_text(text, modules))


def add_common_to_dir_lists(text: str) -> str:
    """``ruff check agent drivers simulators ...`` and ("agent", "drivers", "simulators")."""
    text = re.sub(r'(\bruff"?\s+(?:check|format)\b[^\n]*\bsimulators\b)(?![^\n]*\bcommon\b)',
                  r"\1 " + SHARED_HOME, text)
    return re.sub(r"""(["'])agent\1,\s*(["'])drivers\2,\s*(["'])simulators\3(?!,\s*["']common)""",
                  lambda m: m.group(0) + f", {m.group(1)}{SHARED_HOME}{m.group(1)}", text)


def rewrite_pyproject(text: str, modules: set[str]) -> str:
    # package discovery: through the vatio/ folder (its symlinks)
    find = r"(\[tool\.setuptools\.packages\.find\]\n(?:[^\[\n][^\n]*\n)*?)include = \[[^\]]*\]"
    text = re.sub(find, r'\1include = ["vatio", "vatio.*"]', text)
    if "[tool.setuptools.packages.find]" not in text and "package-dir" not in text:
        warnings.append("pyproject.toml: no [tool.setuptools.packages.find]; add "
                        'include = ["vatio", "vatio.*"] by hand')
    # package-data keys
    m = re.search(r"\[tool\.setuptools\.package-data\]\n((?:[^\[\n][^\n]*\n)*)", text)
    if m:
        block = m.group(1)
        new = re.sub(r"^(" + "|".join(ALL_TOPS) + r")(\.[\w.]+)? =",
                     lambda k: f'"{PACKAGE}.{k.group(1)}{k.group(2) or ""}" =', block, flags=re.M)
        if not re.search(r'^(vatio|"vatio") =', new, flags=re.M):
            new = f'{PACKAGE} = ["py.typed"]\n' + new
        text = text[: m.start(1)] + new + text[m.end(1):]
    # mypy
    def mypy_packages(k: re.Match[str]) -> str:
        names = re.findall(r'"([^"]+)"', k.group(2))
        out = [f"{PACKAGE}.{x}" if x in ALL_TOPS else x for x in names]
        if f"{PACKAGE}.{SHARED_FROM}" in out and f"{PACKAGE}.{SHARED_HOME}" not in out:
            out.insert(out.index(f"{PACKAGE}.{SHARED_FROM}") + 1, f"{PACKAGE}.{SHARED_HOME}")
        return k.group(1) + "[" + ", ".join(f'"{x}"' for x in out) + "]"

    text = re.sub(r"(\[tool\.mypy\]\n(?:[^\[\n][^\n]*\n)*?packages = )(\[[^\]]*\])",
                  mypy_packages, text)
    # for ruff, vatio is first-party; the old top-level names are banned
    if "[tool.ruff.lint]" in text:
        text = re.sub(r'(\[tool\.ruff\.lint\]\n(?:[^\[\n][^\n]*\n)*?select = \[)([^\]]*)\]',
                      lambda k: k.group(0) if "TID251" in k.group(2)
                      else f'{k.group(1)}{k.group(2)}, "TID251"]', text)
        if "[tool.ruff.lint.isort]" not in text:
            isort = f'[tool.ruff.lint.isort]\nknown-first-party = ["{PACKAGE}"]\n'
            text = _append_after_section(text, "[tool.ruff.lint]", isort)
        if "[tool.ruff.lint.flake8-tidy-imports.banned-api]" not in text:
            bans = "".join(f'"{t}".msg = "import {PACKAGE}.{t} (issue 13: one package, vatio)"\n'
                           for t in ALL_TOPS)
            text = _append_after_section(
                text, "[tool.ruff.lint.isort]",
                "# The folders are importable from the repository root too; only the vatio.*\n"
                "# names are installed, so the old ones must not come back.\n"
                "[tool.ruff.lint.flake8-tidy-imports.banned-api]\n" + bans)
    else:
        warnings.append("pyproject.toml: no [tool.ruff.lint]; set isort known-first-party by hand")
    return rewrite_markup(text, modules)


def _append_after_section(text: str, header: str, block: str) -> str:
    i = text.index(header)
    nxt = text.find("\n[", i + len(header))
    if nxt == -1:
        return text.rstrip("\n") + "\n\n" + block
    sep = "" if text[nxt - 1] == "\n" else "\n"
    return text[: nxt + 1] + sep + block + "\n" + text[nxt + 1:]


# --------------------------------------------------------------------------- layout


def move_shared(root: Path, dry: bool) -> list[str]:
    done = []
    home = root / SHARED_HOME
    for name in SHARED:
        src, dst = root / SHARED_FROM / f"{name}.py", home / f"{name}.py"
        if src.exists() and dst.exists():
            sys.exit(f"both {src} and {dst} exist: merge them by hand, then run again")
        if src.exists():
            done.append(f"git mv {src.relative_to(root)} {dst.relative_to(root)}")
            if not dry:
                home.mkdir(exist_ok=True)
                git("mv", str(src.relative_to(root)), str(dst.relative_to(root)))
    init = home / "__init__.py"
    if not init.exists():
        done.append(f"create {init.relative_to(root)}")
        if not dry:
            home.mkdir(exist_ok=True)
            init.write_text(COMMON_INIT, encoding="utf-8")
            git("add", str(init.relative_to(root)))
    return done


def make_vatio_folder(root: Path, dry: bool) -> list[str]:
    done = []
    pkg = root / PACKAGE
    if pkg.exists() and not pkg.is_dir():
        sys.exit(f"{pkg} exists and is not a folder")
    for rel, content in (("__init__.py", VATIO_INIT), ("py.typed", "")):
        f = pkg / rel
        if not f.exists():
            done.append(f"create {f.relative_to(root)}")
            if not dry:
                pkg.mkdir(exist_ok=True)
                f.write_text(content, encoding="utf-8")
                git("add", str(f.relative_to(root)))
    for top in ALL_TOPS:
        link = pkg / top
        if link.is_symlink() and os.readlink(link) == f"../{top}":
            continue
        if link.exists() or link.is_symlink():
            sys.exit(f"{link} exists and is not the symlink ../{top}: fix it by hand")
        done.append(f"symlink {link.relative_to(root)} -> ../{top}")
        if not dry:
            pkg.mkdir(exist_ok=True)
            os.symlink(f"../{top}", link)
            git("add", str(link.relative_to(root)))
    return done


# --------------------------------------------------------------------------- ruff


def find_ruff(root: Path) -> str | None:
    for cand in (root / ".venv/bin/ruff", Path(sys.executable).parent / "ruff"):
        if cand.exists():
            return str(cand)
    return shutil.which("ruff")


def statement_lines(path: Path, row: int) -> tuple[int, int]:
    """The lines of the innermost statement holding ``row`` (ruff formats whole statements)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except SyntaxError:
        return row, row
    best = (row, row)
    size = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or node.end_lineno is None:
            continue
        first, last = node.lineno, node.end_lineno
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            last = body[0].lineno - 1  # a compound statement: only its header
            decorators = getattr(node, "decorator_list", [])
            first = min([first, *(d.lineno for d in decorators)])
        if first <= row <= last and (size is None or last - first < size):
            best, size = (first, last), last - first
    return best


def ruff_fixups(root: Path, ruff: str, files: list[str]) -> list[str]:
    notes = []
    if not files:
        return notes
    subprocess.run([ruff, "check", "--quiet", "--select", "I", "--fix", "--exit-zero", *files],
                   cwd=root, check=False)
    out = subprocess.run([ruff, "check", "--select", "E501", "--output-format", "json",
                          "--exit-zero", *files], cwd=root, capture_output=True, text=True)
    try:
        found = json.loads(out.stdout or "[]")
    except json.JSONDecodeError:
        return ["ruff E501 output unreadable; check line lengths by hand"]
    for item in sorted(found, key=lambda d: (d["filename"], -d["location"]["row"])):
        fn, row = item["filename"], item["location"]["row"]
        line = Path(fn).read_text(encoding="utf-8").splitlines()[row - 1]
        if f"{PACKAGE}." not in line:
            continue  # long before the rename: not ours
        first, last = statement_lines(Path(fn), row)
        subprocess.run([ruff, "format", "--quiet", f"--range={first}-{last}", fn], cwd=root,
                       check=False)
        notes.append(f"{os.path.relpath(fn, root)}:{row}: over the line length after the rename: "
                     f"ruff format --range={first}-{last}")
    return notes


# --------------------------------------------------------------------------- main


def tracked_files(root: Path) -> list[Path]:
    out = git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    files = []
    for rel in sorted(set(filter(None, out.split("\0")))):
        p = root / rel
        if p.is_symlink() or not p.is_file() or p.resolve() == SELF:
            continue
        if rel.split("/")[0] == PACKAGE:
            continue  # vatio/ holds only the package root and symlinks
        files.append(p)
    return files


def is_text_target(p: Path, root: Path) -> bool:
    rel = p.relative_to(root)
    if p.suffix in TEXT_SUFFIXES:
        return True
    if p.suffix == "" and rel.parts[0] in ("scripts", ".ci", "bin"):
        try:
            return p.read_bytes()[:2] == b"#!"
        except OSError:
            return False
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    ap.add_argument("--no-ruff", action="store_true", help="skip the ruff import sort / re-wrap")
    ap.add_argument("--shared", action="append", default=[], metavar="NAME",
                    help=f"also move {SHARED_FROM}/NAME.py to {SHARED_HOME}/ (repeatable)")
    args = ap.parse_args()
    global SHARED, MOVED_PATH
    SHARED = (*SHARED, *(n for n in args.shared if n not in SHARED))
    MOVED_PATH = re.compile(r"(?<![\w/])" + SHARED_FROM + r"/(" + "|".join(SHARED) + r")\.py\b")
    t0 = time.monotonic()
    root = Path(git("rev-parse", "--show-toplevel").strip())
    os.chdir(root)
    pyproject = root / "pyproject.toml"
    if not pyproject.exists() or 'name = "vatio"' not in pyproject.read_text(encoding="utf-8"):
        sys.exit("run this in a Vatio checkout (pyproject.toml with name = \"vatio\")")
    for top in TOPS:
        if not (root / top / "__init__.py").exists():
            sys.exit(f"{top}/__init__.py missing: is this the Vatio repository?")

    modules = known_modules(root)  # before the move: the old names must resolve
    steps = move_shared(root, args.dry_run) + make_vatio_folder(root, args.dry_run)
    modules |= known_modules(root)

    changed: list[str] = []
    for p in tracked_files(root):
        rel = str(p.relative_to(root))
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if p.suffix == ".py" or (p.suffix == "" and text.startswith("#!") and "python" in
                                 text.split("\n", 1)[0]):
            new = add_common_to_dir_lists(rewrite_python(Path(rel), text, modules))
        elif p.name == "pyproject.toml" and p.parent == root:
            new = rewrite_pyproject(text, modules)
        elif is_text_target(p, root):
            new = add_common_to_dir_lists(rewrite_markup(text, modules))
        else:
            continue
        if new != text:
            changed.append(rel)
            if not args.dry_run:
                p.write_text(new, encoding="utf-8")

    notes: list[str] = []
    if not args.dry_run and not args.no_ruff:
        ruff = find_ruff(root)
        py = [c for c in changed if c.endswith(".py")]
        if ruff:
            notes = ruff_fixups(root, ruff, py)
        else:
            warnings.append("ruff not found: run `ruff check --select I --fix` yourself")

    egg = root / f"{PACKAGE}.egg-info"
    if egg.is_dir() and not args.dry_run:
        # setuptools merges the old SOURCES.txt into every sdist: agent/... would ship again
        shutil.rmtree(egg)
        steps.append(f"removed {egg.name}/ (generated; its stale file list leaks into the sdist)")
    for s in steps:
        print(s)
    print(f"{'would change' if args.dry_run else 'changed'} {len(changed)} files")
    for c in changed:
        print("  " + c)
    for n in notes:
        print("  " + n)
    if left_alone:
        print("bare package names in strings, left alone (check they are not module names):")
        for x in left_alone:
            print("  " + x)
    if warnings:
        print("review by hand:")
        for w in warnings:
            print("  " + w)
    print(f"done in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The layout's rules, proven on the source: the server side (what the zipapp carries) imports
without the maintainer side, and dependencies between the folders point one way.

    cli -> resolve, export, inspect, bundle, apply -> store -> upstream -> lock -> core

A folder imports its own modules and those of folders below it, never one beside or above it;
the one exception is apply reading bundles through bundle/safe_archive.py.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tljh_lock
from tljh_lock.bundle import zipapp

PACKAGE = Path(tljh_lock.__file__).parent
BLOCKED = (*tljh_lock.MAINTAINER_SIDE, *tljh_lock.MAINTAINER_REQUIRES)

# cli/main imports the maintainer verbs only once it found everything they need (the zipapp has
# none of it); every other import of the maintainer side from the server side is a mistake.
GUARDED = {("tljh_lock.cli.main", "tljh_lock.cli.maintainer")}

RANK = {"core": 0, "lock": 1, "upstream": 2, "store": 3, "resolve": 4, "export": 4,
        "inspect": 4, "bundle": 4, "apply": 4, "cli": 5}
ALLOWED_ACROSS = {("apply", "tljh_lock.bundle.safe_archive")}

# Runs in a fresh interpreter: the maintainer side made absent (as `None` in sys.modules makes
# a module: its import fails, importlib.util.find_spec answers None), then every module the
# zipapp carries imported, and the command line asked for help and for a maintainer verb.
_PROBE = """
import contextlib, importlib, io, json, sys
blocked, modules = json.loads(sys.argv[1])
for name in blocked:
    sys.modules[name] = None
failures = {}
for module in modules:
    try:
        importlib.import_module(module)
    except Exception as exc:
        failures[module] = f"{type(exc).__name__}: {exc}"
if failures:
    print(json.dumps({"failures": failures}))
    sys.exit()
from tljh_lock.cli.main import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        main(["--help"])
    except SystemExit as exc:
        help_code = exc.code
    update_code = main(["update", "--recipes", "r"])
    export_code = main(["-q", "export", "--format", "pylock"])
print(json.dumps({"failures": failures, "help": [help_code, out.getvalue()],
                  "maintainer": [update_code, export_code, err.getvalue()]}))
"""


def module_name(rel: str) -> str:
    name = rel[:-len(".py")].replace("/", ".")
    return name[:-len(".__init__")] if name.endswith(".__init__") else name


def server_modules() -> list[str]:
    """What the zipapp carries, less the templates (data) and __main__ (it runs the tool)."""
    return sorted(module_name(rel) for rel in zipapp.package_files()
                  if rel.endswith(".py") and not rel.startswith("tljh_lock/templates/")
                  and not rel.endswith("/__main__.py"))


def source_of(module: str) -> Path:
    base = PACKAGE.parent / module.replace(".", "/")
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, in functions too; `from package import
    module` counts as the module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                is_module = name.startswith("tljh_lock.") and source_of(name).exists()
                found.append((node.lineno, name if is_module else node.module))
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_server_side_imports_without_the_maintainer_side() -> None:
    modules = server_modules()
    assert "tljh_lock.apply.engine" in modules and "tljh_lock.cli.main" in modules
    assert not [m for m in modules if any(_under(m, side) for side in BLOCKED)]
    result = subprocess.run([sys.executable, "-c", _PROBE, json.dumps([BLOCKED, modules])],
                            capture_output=True, text=True, check=False, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["failures"] == {}
    help_code, help_text = report["help"]
    assert help_code == 0
    assert "  apply " in help_text and "  check " in help_text
    assert "  update " not in help_text and "  export " not in help_text
    assert "pip install 'tljh-lock[maintainer]'" in help_text
    update_code, export_code, errors = report["maintainer"]
    assert update_code == export_code == 2
    assert "`update` is a maintainer command" in errors
    assert "`export` is a maintainer command" in errors
    assert "Traceback" not in errors


def test_no_server_module_imports_the_maintainer_side_even_when_called() -> None:
    """What the import test cannot see: an import inside a function, run only when called."""
    found = [f"{module}:{line} imports {name}" for module in server_modules()
             for line, name in imports(source_of(module))
             if any(_under(name, blocked) for blocked in BLOCKED)
             and (module, name) not in GUARDED]
    assert found == []


def _folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANK) else None


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_dependencies_point_one_way(path: Path) -> None:
    rel = path.relative_to(PACKAGE.parent).as_posix()
    if rel.startswith("tljh_lock/templates/"):
        return
    own = _folder(module_name(rel))
    if own is None:  # tljh_lock/__init__.py, __main__.py
        return
    wrong = []
    for line, name in imports(path):
        other = _folder(name) if name.startswith("tljh_lock.") else None
        if other is None or other == own or other not in RANK:
            continue
        if RANK[other] < RANK[own] or any(own == allowed_from and _under(name, target)
                                           for allowed_from, target in ALLOWED_ACROSS):
            continue
        wrong.append(f"line {line}: {own}/ imports {name}")
    assert wrong == []

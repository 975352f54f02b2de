"""The in-process installer against pip on the same real wheels: the same files, a RECORD pip
can uninstall with, console scripts of the venv's python, bytecode compiled afterwards (and
removed by pip with its module); an installed distribution replaced; a member outside the
environment refused."""

from __future__ import annotations

import csv
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.upstream import build_wheel
from tests.upstream.scenarios import installer_wheel
from tljh_lock.apply.actions import wheel_install
from tljh_lock.core.errors import IntegrityError

PIP_ENV = {"PIP_CONFIG_FILE": "/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PATH": "/usr/bin:/bin"}


def venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", path], check=True)
    return path / "bin" / "python3"


def fx_wheel(directory: Path, version: str = "1.0") -> Path:
    return build_wheel(directory, "fx-tool", version,
                       files={"fx_tool/__init__.py": f"VERSION = {version!r}\n",
                              "fx_tool/cli.py": "def main():\n    print('fx-tool')\n"},
                       entry_points={"console_scripts": {"fx-tool": "fx_tool.cli:main"}})


def files_below(prefix: Path) -> set[str]:
    return {p.relative_to(prefix).as_posix() for p in prefix.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.name != "pyvenv.cfg"
            and not p.is_symlink()}


def record(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as fh:
        return {row[0]: row[1:] for row in csv.reader(fh)}


def pip(python: Path, *args: str) -> str:
    return subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True,
                          check=True, env=PIP_ENV).stdout


def test_same_files_as_pip_and_pip_manages_the_result(tmp_path: Path) -> None:
    wheels = [installer_wheel(), fx_wheel(tmp_path / "w")]
    ours = venv(tmp_path / "ours")
    env = wheel_install.Environment.of(ours, None)
    installed = wheel_install.install_wheels(env, [(w.name, w) for w in wheels], "test")
    theirs = venv(tmp_path / "pip")
    # by name from a directory, as apply's pip did: a path would be a direct URL install
    subprocess.run([theirs, wheels[0] / "pip", "install", "--no-index", "--no-deps",
                    "--no-compile", "--find-links", wheels[0].parent, "--find-links",
                    wheels[1].parent, "pip", "fx-tool"], check=True, capture_output=True,
                   env=PIP_ENV)
    ours_files, pip_files = files_below(tmp_path / "ours"), files_below(tmp_path / "pip")
    assert ours_files == pip_files
    for name in ours_files:
        if name.endswith("/RECORD"):  # the same files, of the same contents but for the
            # scripts (each names its own venv's python) and INSTALLER
            rows = [record(tmp_path / side / name) for side in ("ours", "pip")]
            assert rows[0].keys() == rows[1].keys()
            assert {k: v for k, v in rows[0].items() if not k.startswith("../")
                    and not k.endswith("/INSTALLER")} == {
                k: v for k, v in rows[1].items() if not k.startswith("../")
                and not k.endswith("/INSTALLER")}
    site = Path(env.schemes["purelib"])
    assert (site / "fx_tool-1.0.dist-info/INSTALLER").read_bytes() == b"tljh-lock\n"
    script = tmp_path / "ours/bin/fx-tool"
    assert script.read_text().splitlines()[0] == f"#!{ours}"
    assert subprocess.run([script], capture_output=True, text=True,
                          check=True).stdout == "fx-tool\n"
    assert not list((tmp_path / "ours").rglob("__pycache__"))  # no bytecode while unpacking
    assert {"fx-tool==1.0", f"pip=={wheels[0].name.split('-')[1]}"} <= set(
        pip(ours, "list", "--format=freeze").split())

    wheel_install.compile_bytecode(env, installed, None, "test")
    cached = site / "fx_tool/__pycache__" / f"cli.{env.cache_tag}.pyc"
    assert cached.exists()
    pip(ours, "uninstall", "-y", "fx-tool")
    assert not (site / "fx_tool").exists() and not script.exists() and not cached.exists()
    assert not (site / "fx_tool-1.0.dist-info").exists()


def test_an_installed_version_and_a_killed_install_are_replaced(tmp_path: Path) -> None:
    python = venv(tmp_path / "env")
    env = wheel_install.Environment.of(python, None)
    old = build_wheel(tmp_path / "old", "fx-tool", "0.9",
                      files={"fx_tool/__init__.py": "", "fx_tool/gone.py": ""})
    wheel_install.install_wheels(env, [(old.name, old)], "test")
    site = Path(env.schemes["purelib"])
    assert (site / "fx_tool/gone.py").exists()
    new = fx_wheel(tmp_path / "new")
    # a killed install of the new version: some files written, no RECORD
    (site / "fx_tool-1.0.dist-info").mkdir()
    (site / "fx_tool/cli.py").write_text("half")
    wheel_install.install_wheels(env, [(new.name, new)], "test")
    assert not (site / "fx_tool/gone.py").exists()
    assert not (site / "fx_tool-0.9.dist-info").exists()
    assert "print('fx-tool')" in (site / "fx_tool/cli.py").read_text()
    assert (site / "fx_tool-1.0.dist-info/RECORD").exists()
    assert pip_version(python) == "1.0"


def pip_version(python: Path) -> str:
    return subprocess.run([python, "-I", "-c", "import importlib.metadata as m; "
                           "print(m.version('fx-tool'))"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_member_outside_the_environment_is_refused(tmp_path: Path) -> None:
    python = venv(tmp_path / "env")
    env = wheel_install.Environment.of(python, None)
    wheel = fx_wheel(tmp_path / "w")
    with zipfile.ZipFile(wheel, "a") as archive:
        archive.writestr("fx_tool-1.0.data/scripts/../../../../../escaped", "x")
    with pytest.raises(IntegrityError, match="outside"):
        wheel_install.install_wheels(env, [(wheel.name, wheel)], "test")
    assert not (tmp_path / "escaped").exists()

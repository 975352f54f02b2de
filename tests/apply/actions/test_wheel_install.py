"""The in-process installer against pip on the same real wheels: the same files, a RECORD pip
can uninstall with, console scripts of the venv's python, bytecode compiled afterwards (and
removed by pip with its module); an installed distribution replaced; a member outside the
environment refused; a new environment linking what an earlier one has of the same wheels,
the same as unpacking, and pip's changes to either not reaching the other; a wheel installs
only under its own name and version, whatever its file is called, checked before or, in the
worker processes, as it is opened."""

from __future__ import annotations

import csv
import hashlib
import os
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


def wheels_of(*paths: Path) -> list[wheel_install.Wheel]:
    return [wheel_install.Wheel(p.name, p, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in paths]


def data_wheel(directory: Path) -> Path:
    """A wheel with a file in each of its .data directory's schemes but purelib's."""
    return build_wheel(directory, "fx-data", "1.0", files={
        "fx_data/__init__.py": "",
        "fx_data-1.0.data/scripts/fx-legacy": "#!python\nprint('legacy')\n",
        "fx_data-1.0.data/platlib/fx_data_native.py": "",
        "fx_data-1.0.data/headers/fx_data.h": "int fx;\n",
        "fx_data-1.0.data/data/share/fx-data/readme.txt": "hello\n"})


def test_same_files_as_pip_and_pip_manages_the_result(tmp_path: Path) -> None:
    wheels = [installer_wheel(), fx_wheel(tmp_path / "w"), data_wheel(tmp_path / "w")]
    ours = venv(tmp_path / "ours")
    env = wheel_install.Environment.of(ours, None)
    installed = wheel_install.install_wheels(env, wheels_of(*wheels), "test")
    theirs = venv(tmp_path / "pip")
    # by name from a directory, as apply's pip did: a path would be a direct URL install
    subprocess.run([theirs, wheels[0] / "pip", "install", "--no-index", "--no-deps",
                    "--no-compile", "--find-links", wheels[0].parent, "--find-links",
                    wheels[1].parent, "pip", "fx-tool", "fx-data"], check=True,
                   capture_output=True, env=PIP_ENV)
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
    # no bytecode while unpacking (looked at before the script runs: python writes some)
    assert not list((tmp_path / "ours").rglob("__pycache__"))
    script = tmp_path / "ours/bin/fx-tool"
    assert script.read_text().splitlines()[0] == f"#!{ours}"
    assert subprocess.run([script], capture_output=True, text=True,
                          check=True).stdout == "fx-tool\n"
    # a script the wheel carries: its "#!python" names the venv's python, as pip writes it
    assert (tmp_path / "ours/bin/fx-legacy").read_bytes() == (
        tmp_path / "pip/bin/fx-legacy").read_bytes().replace(bytes(theirs), bytes(ours))
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
    wheel_install.install_wheels(env, wheels_of(old), "test")
    site = Path(env.schemes["purelib"])
    assert (site / "fx_tool/gone.py").exists()
    new = fx_wheel(tmp_path / "new")
    # a killed install of the new version: some files written, no RECORD
    (site / "fx_tool-1.0.dist-info").mkdir()
    (site / "fx_tool/cli.py").write_text("half")
    wheel_install.install_wheels(env, wheels_of(new), "test")
    assert not (site / "fx_tool/gone.py").exists()
    assert not (site / "fx_tool-0.9.dist-info").exists()
    assert "print('fx-tool')" in (site / "fx_tool/cli.py").read_text()
    assert (site / "fx_tool-1.0.dist-info/RECORD").exists()
    assert pip_version(python) == "1.0"


def pip_version(python: Path) -> str:
    return subprocess.run([python, "-I", "-c", "import importlib.metadata as m; "
                           "print(m.version('fx-tool'))"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize(("member", "message"), [
    ("fx_tool-1.0.data/scripts/../../../../../escaped", "outside"),
    ("fx_tool/../../../../../escaped", "outside"),
    (f"{os.sep}escaped", "outside"),
    ("fx_tool-1.0.data/elsewhere/escaped", "not in a valid .data directory"),
])
def test_a_member_outside_the_environment_is_refused(tmp_path: Path, member: str,
                                                     message: str) -> None:
    python = venv(tmp_path / "env")
    env = wheel_install.Environment.of(python, None)
    wheel = fx_wheel(tmp_path / "w")
    with zipfile.ZipFile(wheel, "a") as archive:
        archive.writestr(member, "x")
    with pytest.raises(IntegrityError, match=message):
        wheel_install.install_wheels(env, wheels_of(wheel), "test")
    assert not list(tmp_path.rglob("escaped"))


def tree(prefix: Path) -> dict[str, bytes]:
    return {name: (prefix / name).read_bytes() for name in files_below(prefix)}


def test_a_new_environment_links_the_unchanged_and_pip_keeps_them_apart(tmp_path: Path) -> None:
    pip_wheel, tool, other = installer_wheel(), fx_wheel(tmp_path / "w"), build_wheel(
        tmp_path / "w", "fx-other", "1.0", files={"fx_other/__init__.py": "X = 1\n"})
    newer = build_wheel(tmp_path / "w2", "fx-other", "2.0",
                        files={"fx_other/__init__.py": "X = 2\n"})
    before = wheel_install.Environment.of(venv(tmp_path / "before"), None)
    done = wheel_install.install_wheels(before, wheels_of(pip_wheel, tool, other), "test")
    previous = wheel_install.Previous(before.prefix, {
        w.sha256: d.record for w, d in zip(wheels_of(pip_wheel, tool, other), done)})
    wanted = wheels_of(pip_wheel, tool, newer)
    after = wheel_install.Environment.of(venv(tmp_path / "after"), None)
    installed = wheel_install.install_wheels(after, wanted, "test", previous)
    fresh = wheel_install.Environment.of(venv(tmp_path / "fresh"), None)
    wheel_install.install_wheels(fresh, wanted, "test")

    # what unpacking gives, but for each script's shebang (its own environment's python) and
    # so the scripts' hashes in RECORD
    linked, unpacked = tree(tmp_path / "after"), tree(tmp_path / "fresh")
    assert linked.keys() == unpacked.keys()
    for name, data in linked.items():
        if name.endswith("/RECORD"):
            rows = [{k: v for k, v in record(tmp_path / side / name).items()
                     if not k.startswith("../../../bin/")} for side in ("after", "fresh")]
            assert rows[0] == rows[1], name
        elif not name.startswith("bin/activate"):  # the venv's own, naming the venv
            assert data.replace(bytes(tmp_path / "after"), bytes(tmp_path / "fresh")) \
                == unpacked[name], name
    assert [d.linked > 0 for d in installed] == [True, True, False]
    site_before, site_after = Path(before.schemes["purelib"]), Path(after.schemes["purelib"])
    shared = site_after / "fx_tool/cli.py"
    assert os.path.samefile(shared, site_before / "fx_tool/cli.py")
    assert not os.path.samefile(site_after / "fx_tool-1.0.dist-info/RECORD",
                                site_before / "fx_tool-1.0.dist-info/RECORD")
    script = tmp_path / "after/bin/fx-tool"
    assert not os.path.samefile(script, tmp_path / "before/bin/fx-tool")
    assert subprocess.run([script], capture_output=True, text=True,
                          check=True).stdout == "fx-tool\n"

    # an admin's pip in the new environment, reinstalling and removing what is shared
    kept = tree(tmp_path / "before")
    pip(Path(after.python), "install", "--no-index", "--no-deps", "--force-reinstall",
        "--no-compile", str(tool))
    pip(Path(after.python), "uninstall", "-y", "pip")
    assert tree(tmp_path / "before") == kept
    assert pip_version(Path(before.python)) == "1.0"


def test_a_changed_file_of_the_previous_environment_is_not_linked(tmp_path: Path) -> None:
    tool = fx_wheel(tmp_path / "w")
    before = wheel_install.Environment.of(venv(tmp_path / "before"), None)
    [done] = wheel_install.install_wheels(before, wheels_of(tool), "test")
    site_before = Path(before.schemes["purelib"])
    (site_before / "fx_tool/cli.py").write_text("changed: another size")
    (site_before / "fx_tool/__init__.py").unlink()
    after = wheel_install.Environment.of(venv(tmp_path / "after"), None)
    [linked] = wheel_install.install_wheels(
        after, wheels_of(tool), "test",
        wheel_install.Previous(before.prefix, {wheels_of(tool)[0].sha256: done.record}))
    site_after = Path(after.schemes["purelib"])
    assert "print('fx-tool')" in (site_after / "fx_tool/cli.py").read_text()
    assert (site_after / "fx_tool/__init__.py").read_text() == "VERSION = '1.0'\n"
    # the whole distribution unpacked again: nothing of it shared
    assert linked.linked == 0
    assert not any(os.path.samefile(p, site_before / p.relative_to(site_after))
                   for p in site_after.rglob("*") if p.is_file()
                   and (site_before / p.relative_to(site_after)).exists())


def test_a_wheel_under_another_versions_file_name_is_refused(tmp_path: Path) -> None:
    old = build_wheel(tmp_path / "old", "fx-hub", "1.0.0")
    new = build_wheel(tmp_path / "new", "fx-hub", "1.1.0")
    wheel_install.check_wheel_metadata(new, new.name, "hub")
    with pytest.raises(IntegrityError, match=r"holds fx-hub 1\.0\.0, not fx-hub 1\.1\.0"):
        wheel_install.check_wheel_metadata(old, new.name, "hub")
    other = build_wheel(tmp_path / "other", "fx-web", "1.1.0")
    with pytest.raises(IntegrityError, match="holds fx-web 1.1.0, not fx-hub 1.1.0"):
        wheel_install.check_wheel_metadata(other, new.name, "hub")
    not_a_zip = tmp_path / "fx_hub-1.1.0-py3-none-any.whl"
    not_a_zip.write_bytes(b"<html>")
    with pytest.raises(IntegrityError, match="not a wheel"):
        wheel_install.check_wheel_metadata(not_a_zip, not_a_zip.name, "hub")


def test_in_the_workers_a_wheel_is_checked_as_it_is_opened_or_linked(tmp_path: Path) -> None:
    """new=True (an environment being built): the check comes back from a worker process as the
    same error, with its hint; a linked wheel is checked too."""
    fillers = [build_wheel(tmp_path / "w", f"fx-fill{i}", "1.0") for i in range(8)]
    old = build_wheel(tmp_path / "old", "fx-hub", "1.0.0")
    resealed = tmp_path / "new" / "fx_hub-1.1.0-py3-none-any.whl"
    resealed.parent.mkdir()
    resealed.write_bytes(old.read_bytes())
    env = wheel_install.Environment.of(venv(tmp_path / "env"), None)
    with wheel_install.workers() as pool:
        assert pool is not None, "these tests run on two cores or more"
        with pytest.raises(IntegrityError, match="holds fx-hub 1.0.0, not fx-hub 1.1.0") as got:
            wheel_install.install_wheels(env, wheels_of(*fillers, resealed), "hub", None, pool,
                                         new=True)
    assert got.value.hint and "do not trust this lock" in got.value.hint

    before = wheel_install.Environment.of(venv(tmp_path / "before"), None)
    [done] = wheel_install.install_wheels(before, wheels_of(old), "hub")
    previous = wheel_install.Previous(before.prefix, {wheels_of(resealed)[0].sha256: done.record})
    after = wheel_install.Environment.of(venv(tmp_path / "after"), None)
    with pytest.raises(IntegrityError, match="holds fx-hub 1.0.0, not fx-hub 1.1.0"):
        wheel_install.install_wheels(after, wheels_of(resealed), "hub", previous, new=True)
    # without the METADATA it installed there, it is unpacked, and checked as it is opened
    os.unlink(os.path.join(os.path.dirname(done.record), "METADATA"))
    with pytest.raises(IntegrityError, match="holds fx-hub 1.0.0, not fx-hub 1.1.0"):
        wheel_install.install_wheels(after, wheels_of(resealed), "hub", previous, new=True)
    [unpacked] = wheel_install.install_wheels(after, wheels_of(old), "hub", previous,
                                              new=True)
    assert unpacked.linked == 0
    # a new environment's RECORD hashes come back with it, by path below it, for its tree hash
    site = os.path.dirname(os.path.dirname(unpacked.record))
    assert unpacked.hashes and unpacked.hashes == tuple(
        (os.path.relpath(os.path.join(site, rel), after.prefix), digest)
        for rel, digest in wheel_install.record_hashes(unpacked.record))
    assert all(os.path.isfile(os.path.join(after.prefix, path)) for path, _ in unpacked.hashes)

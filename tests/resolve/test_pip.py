"""update / check / diff / export of the hub pip set against the fixture upstream (offline)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.pylock import Pylock

from tests.conftest import UNREACHABLE, Upstream
from tests.upstream import FixtureUpstream
from tljh_lock.core import runner
from tljh_lock.core.errors import EXIT_FAILURE, EXIT_INPUT, EXIT_INTEGRITY, EXIT_USAGE
from tljh_lock.core.targets import default_targets
from tljh_lock.lock import file as lockfile
from tljh_lock.resolve.write import dumps as dump_lock


def update(tljh, upstream: Upstream, recipes: Path, lock: Path, *extra: str):
    result = tljh("update", "--recipes", recipes, "--lock", lock, *upstream.mirror_flags(), *extra)
    assert result.code == 0, result.err
    return result


def versions(lock_path: Path) -> dict[str, list[str]]:
    lock = lockfile.load(lock_path)
    return {name: list(v) for name, v in lock.components["hub"].versions().items()}


def test_update_locks_every_target(tljh, hub_upstream: Upstream, recipes: Path, tmp_path: Path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, hub_upstream, recipes, lock_path)
    lock = lockfile.load(lock_path)
    hub = lock.components["hub"]
    by_name = {p.name: p for p in hub.packages}
    assert set(by_name) == {"fx-auth", "fx-backport", "fx-hub", "fx-otp", "fx-speedups", "fx-web",
                            "pip"}
    assert by_name["fx-hub"].version == "1.1.0"
    # present only under a marker, and only for the pythons that need it
    assert by_name["fx-backport"].marker == 'python_full_version < "3.11"'
    # abi3 wheels for both arches, the Windows one left out
    wheels = [w.name for w in by_name["fx-speedups"].wheels]
    assert len(wheels) == 2 and all("manylinux" in w for w in wheels)
    assert not any(w.name in hub_upstream.facts["foreign_files"] for p in hub.packages
                   for w in p.wheels)
    # the sdist-only package carries its build requirements, which are locked with wheels
    assert by_name["fx-otp"].sdist and not by_name["fx-otp"].wheels
    assert by_name["fx-otp"].build_requires == ("fixture-backend",)
    assert [p.name for p in hub.build_packages] == ["fixture-backend"]
    # every file recorded with the index's hash and size, under canonical URLs only
    files = hub_upstream.facts["files"]
    for artifact in hub.files():
        assert artifact.url.startswith("https://files.pythonhosted.org/packages/")
        assert artifact.sha256 == files[artifact.name]["sha256"]
        assert artifact.size == files[artifact.name]["size"]
    assert "127.0.0.1" not in lock_path.read_text()
    (source,) = hub.sources
    assert source.tree_hash == hub_upstream.facts["tljh"]["tree_hash"]
    # the bytes' identity too, for PEP 751 readers (the fixture serves GitHub's path)
    assert source.archive_sha256 == hub_upstream.facts["tljh"]["sha256"]
    assert source.archive_size == len((hub_upstream.root / source.url.removeprefix(
        "https://")).read_bytes())
    result = tljh("check", "--recipes", recipes, "--lock", lock_path)
    assert result.code == 0, result.err
    assert "installable on 10 targets" in result.out


def test_update_is_byte_identical_and_mirror_independent(
    tljh, hub_upstream: Upstream, recipes: Path, tmp_path: Path
):
    first, second, third = (tmp_path / f"{n}.lock.toml" for n in ("a", "b", "c"))
    update(tljh, hub_upstream, recipes, first)
    update(tljh, hub_upstream, recipes, second)
    assert first.read_bytes() == second.read_bytes()
    # A second mirror, on another port: the lock must not remember where bytes came from.
    with FixtureUpstream(hub_upstream.root) as other:
        mirror = Upstream(hub_upstream.root, other, hub_upstream.facts)
        update(tljh, mirror, recipes, third)
    assert third.read_bytes() == first.read_bytes()


def test_mirror_config_file_equals_flags(tljh, hub_upstream, recipes, tmp_path):
    config = tmp_path / "mirrors.toml"
    config.write_text("[mirrors]\n" + "".join(
        f'"{c}" = "{m}"\n' for c, m in hub_upstream.server.mirror_map().items()))
    via_flags, via_file = tmp_path / "flags.toml", tmp_path / "file.toml"
    update(tljh, hub_upstream, recipes, via_flags)
    result = tljh("update", "--recipes", recipes, "--lock", via_file, "--mirror-config", config)
    assert result.code == 0, result.err
    assert via_file.read_bytes() == via_flags.read_bytes()


def test_check_names_the_changed_recipe(tljh, hub_upstream, recipes, tmp_path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, hub_upstream, recipes, lock_path)
    hub = recipes / "hub.toml"
    hub.write_text(hub.read_text().replace('"fx-web<2"', '"fx-web<3"'))
    result = tljh("check", "--recipes", recipes, "--lock", lock_path)
    assert result.code == EXIT_FAILURE
    assert "recipes/hub.toml changed since the lock was made" in result.err
    (recipes / "targets.toml").write_text((recipes / "targets.toml").read_text() + "\n")
    result = tljh("check", "--recipes", recipes, "--lock", lock_path)
    assert "recipes/targets.toml changed" in result.err


def test_check_catches_an_altered_hash(tljh, hub_upstream, recipes, tmp_path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, hub_upstream, recipes, lock_path)
    digest = hub_upstream.facts["files"]["fx_web-1.1-py3-none-any.whl"]["sha256"]
    text = lock_path.read_text()
    assert digest in text
    lock_path.write_text(text.replace(digest, digest[:-1] + ("0" if digest[-1] != "0" else "1")))
    result = tljh("check", "--recipes", recipes, "--lock", lock_path)
    assert result.code == EXIT_INPUT
    assert "components.hub.content-hash" in result.err and "edited by hand" in result.err


def _rewrite(lock_path: Path, edit) -> None:
    """Change a lock's content and reseal it, as a buggy resolver would have written it."""
    lock = lockfile.load(lock_path)
    edit(lock.components["hub"])
    lock_path.write_text(dump_lock(lock))


def test_check_catches_a_target_lacking_a_package(tljh, hub_upstream, recipes, tmp_path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, hub_upstream, recipes, lock_path)

    def drop_backport(hub):
        hub.packages = tuple(p for p in hub.packages if p.name != "fx-backport")

    _rewrite(lock_path, drop_backport)
    result = tljh("check", "--recipes", recipes, "--lock", lock_path)
    assert result.code == EXIT_FAILURE
    needing = {t.name for t in default_targets() if t.python_minor < (3, 11)}
    for target in needing:
        assert f"hub on {target}: fx-backport>=1" in result.err
    assert "debian-12" not in result.err  # python 3.11 does not need it


def test_check_catches_a_missing_arch_wheel(tljh, hub_upstream, recipes, tmp_path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, hub_upstream, recipes, lock_path)

    def drop_aarch64(hub):
        import dataclasses

        hub.packages = tuple(
            dataclasses.replace(p, wheels=tuple(w for w in p.wheels if "aarch64" not in w.name))
            for p in hub.packages
        )

    _rewrite(lock_path, drop_aarch64)
    result = tljh("check", "--recipes", recipes, "--lock", lock_path)
    assert result.code == EXIT_FAILURE
    assert "hub on debian-11-aarch64: fx-speedups 2.0 has no file installable here" in result.err
    assert not re.search(r"hub on \S+-x86_64:", result.err)


@pytest.mark.parametrize(
    ("edit", "place"),
    [
        (lambda t: t.replace("lock-version = 1", "lock-version = 99"), "lock-version"),
        (lambda t: t.replace("lock-version = 1", 'lock-version = "1"'), "lock-version"),
        (lambda t: re.sub(r'(?m)^sha256 = "[0-9a-f]{64}"', 'sha256 = "abc"', t, count=1),
         "components.hub.packages[0].wheels[0].hashes.sha256"),
        (lambda t: re.sub(r"(?m)^size = \d+", 'size = "big"', t, count=1),
         "components.hub.packages[0].wheels[0].size"),
        (lambda t: re.sub(r'archive-sha256 = "[0-9a-f]{64}"', 'archive-sha256 = "abc"', t),
         "components.hub.sources[0].archive-sha256"),
        (lambda t: re.sub(r"archive-size = \d+\n", "", t),
         "components.hub.sources[0].archive-size: archive-sha256 and archive-size are recorded "
         "together"),
        (lambda t: t.replace("https://files.pythonhosted.org", "http://files.pythonhosted.org", 1),
         "components.hub.packages[0].wheels[0].url"),
        (lambda t: t.replace('name = "fx_auth-1.0-py3-none-any.whl"',
                             'name = "../../etc/fx_auth-1.0-py3-none-any.whl"'),
         "components.hub.packages[0].wheels[0].name"),
        (lambda t: t.replace("[components.hub.packages.wheels.hashes]\nsha256", "[x]\ny", 1),
         "components.hub.packages[0].wheels[0].hashes"),
        (lambda t: t.replace("[components.hub]", "[components.hub]\nbogus = [", 1),
         "not valid TOML"),
    ],
)
def test_check_rejects_a_malformed_lock(tljh, hub_upstream, recipes, tmp_path, edit, place):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, hub_upstream, recipes, lock_path)
    lock_path.write_text(edit(lock_path.read_text()))
    result = tljh("check", "--recipes", recipes, "--lock", lock_path)
    assert result.code == EXIT_INPUT, result.err
    assert place in result.err


def test_existing_pins_stay_until_upgraded(tljh, hub_upstream, recipes, tmp_path):
    lock_path = tmp_path / "tljh.lock.toml"
    hub = recipes / "hub.toml"
    original = hub.read_text()
    hub.write_text(original.replace('"fx-web<2"', '"fx-web<1.1"'))
    update(tljh, hub_upstream, recipes, lock_path)
    assert versions(lock_path)["fx-web"] == ["1.0"]
    # The recipe changes (the cap goes): the pin stays, like pip-compile's preferences.
    hub.write_text(original)
    update(tljh, hub_upstream, recipes, lock_path)
    assert versions(lock_path)["fx-web"] == ["1.0"]
    # Unchanged recipe: nothing is resolved again.
    result = update(tljh, hub_upstream, recipes, lock_path)
    assert "hub [kept]" in result.out
    update(tljh, hub_upstream, recipes, lock_path, "--upgrade-package", "fx-web")
    assert versions(lock_path)["fx-web"] == ["1.1"]
    result = tljh("update", "--recipes", recipes, "--lock", lock_path,
                  *hub_upstream.mirror_flags(), "-P", "no-such-thing")
    assert result.code == EXIT_USAGE and "no-such-thing" in result.err


def test_source_pin_is_verified(tljh, hub_upstream, recipes, tmp_path):
    lock_path = tmp_path / "tljh.lock.toml"
    hub = recipes / "hub.toml"
    original = hub.read_text()
    tree_hash = hub_upstream.facts["tljh"]["tree_hash"]
    hub.write_text(original.replace(tree_hash, "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
    result = tljh("update", "--recipes", recipes, "--lock", lock_path,
                  *hub_upstream.mirror_flags())
    assert result.code == EXIT_INTEGRITY
    assert "tree hash mismatch" in result.err and tree_hash in result.err
    hub.write_text(original.replace('requires = ["fx-web>=1", "fx-auth"]',
                                    'requires = ["fx-web>=1"]'))
    result = tljh("update", "--recipes", recipes, "--lock", lock_path,
                  *hub_upstream.mirror_flags())
    assert result.code == EXIT_INTEGRITY
    assert "recipe lacks ['fx-auth']" in result.err
    assert not lock_path.exists()  # nothing written on failure


def test_diff_reports_upgrades_and_hash_changes(tljh, hub_upstream, recipes, tmp_path):
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    hub = recipes / "hub.toml"
    hub.write_text(hub.read_text().replace('"fx-hub>=1.0,<2"', '"fx-hub>=1.0,<1.1"'))
    update(tljh, hub_upstream, recipes, old)
    hub.write_text(hub.read_text().replace('"fx-hub>=1.0,<1.1"', '"fx-hub>=1.0,<2"'))
    update(tljh, hub_upstream, recipes, new)

    def rehash_web(component):
        import dataclasses

        component.packages = tuple(
            dataclasses.replace(p, wheels=tuple(dataclasses.replace(w, sha256="0" * 64)
                                                for w in p.wheels)) if p.name == "fx-web" else p
            for p in component.packages
        )

    _rewrite(new, rehash_web)
    result = tljh("diff", old, new, "--format", "markdown")
    assert result.code == 0
    assert "**Upgraded** (1)" in result.out and "`fx-hub 1.0.0 -> 1.1.0`" in result.out
    assert "Hash changed for an unchanged version" in result.out
    assert "fx_web-1.1-py3-none-any.whl" in result.out
    assert tljh("diff", old, old).out == "No changes.\n"
    swapped = tljh("diff", new, old)
    assert "downgraded: fx-hub 1.1.0 -> 1.0.0" in swapped.out


def test_export_pylock_selects_for_every_target(tljh, hub_upstream, recipes, tmp_path):
    lock_path, out = tmp_path / "tljh.lock.toml", tmp_path / "pylock.toml"
    update(tljh, hub_upstream, recipes, lock_path)
    assert tljh("export", "--lock", lock_path, "--format", "pylock", "-o", out).code == 0
    pylock = Pylock.from_dict(tomllib.loads(out.read_text()))
    for target in default_targets():
        selected = {p.name: type(d).__name__ for p, d in pylock.select(
            environment=target.marker_environment(), tags=target.supported_tags())}
        assert selected["fx-speedups"] == "PackageWheel"
        assert selected["fx-otp"] == "PackageSdist"
        assert selected["the-littlest-jupyterhub"] == "PackageArchive"
        assert ("fx-backport" in selected) == (target.python_minor < (3, 11))


def test_pip_installs_the_hub_with_tljh_config_from_the_exported_pylock(
    tljh, hub_upstream, recipes, tmp_path
):
    """An installer that reads only the pylock gets the hub, TLJH itself included: pip takes
    every file through --mirror from the fixture upstream and checks it against the pylock's
    hashes. The index is only for what builds the sdist and the archive (fixture-backend)."""
    lock_path, pylock = tmp_path / "tljh.lock.toml", tmp_path / "pylock.toml"
    update(tljh, hub_upstream, recipes, lock_path)
    assert tljh("export", "--lock", lock_path, "--format", "pylock", "-o", pylock,
                *hub_upstream.mirror_flags()).code == 0
    assert "https://" not in pylock.read_text()
    venv = tmp_path / "venv"
    runner.run([sys.executable, "-m", "venv", "--without-pip", venv], what="venv")
    runner.run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
                "--index-url", hub_upstream.server.url_for("https://pypi.org/simple/"),
                "-r", pylock], env={"PIP_CONFIG_FILE": os.devnull,
                                    "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
               what="pip install -r pylock.toml")
    result = runner.run([venv / "bin" / "tljh-config", "show"], what="tljh-config")
    assert result.stdout == "tljh-config (fixture) show\n"


def _without_archive_digests(hub) -> None:
    hub.sources = tuple(dataclasses.replace(s, archive_sha256=None, archive_size=None)
                        for s in hub.sources)


def test_update_records_the_archive_sha256_of_a_kept_pin(tljh, hub_upstream, recipes, tmp_path):
    """A lock that lacks it (made before update recorded it): the next update keeps every
    pin, reads the archive and records it; the lock is the one a fresh update writes."""
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, hub_upstream, recipes, lock_path)
    fresh = lock_path.read_bytes()
    _rewrite(lock_path, _without_archive_digests)
    assert b"archive-sha256" not in lock_path.read_bytes()
    assert "hub [kept]" in update(tljh, hub_upstream, recipes, lock_path).out
    assert lock_path.read_bytes() == fresh


def test_an_unreachable_archive_keeps_the_locks_sha256(tljh, hub_upstream, recipes, tmp_path,
                                                       caplog):
    """`update` only warns when the archive is out of reach: the pin keeps the sha256 the lock
    recorded for it; with none recorded, export says what to do instead of leaving TLJH out."""
    lock_path, fresh = tmp_path / "tljh.lock.toml", tmp_path / "fresh.lock.toml"
    update(tljh, hub_upstream, recipes, lock_path)
    recorded = lockfile.load(lock_path).components["hub"].sources
    no_github = [f for f in hub_upstream.mirror_flags() if "https://github.com/" not in f]
    no_github.append(f"--mirror=https://github.com/={UNREACHABLE}")
    hub = recipes / "hub.toml"
    hub.write_text(hub.read_text() + "\n")  # a changed recipe: resolved again
    result = tljh("update", "--recipes", recipes, "--lock", lock_path, *no_github)
    assert result.code == 0, result.err
    assert "hub [resolved]" in result.out and "not verified (archive unreachable)" in caplog.text
    assert "cannot name it" not in caplog.text
    assert lockfile.load(lock_path).components["hub"].sources == recorded
    caplog.clear()
    result = tljh("update", "--recipes", recipes, "--lock", fresh, *no_github)
    assert result.code == 0 and "`export --format pylock` cannot name it" in caplog.text
    [source] = lockfile.load(fresh).components["hub"].sources
    assert source.archive_sha256 is None and b"archive-s" not in fresh.read_bytes()
    result = tljh("export", "--lock", fresh, "--format", "pylock")
    assert result.code == EXIT_INPUT
    assert "source the-littlest-jupyterhub: the lock has no sha256 of its archive" in result.err


def test_a_recipe_cannot_state_the_archive_sha256(tljh, hub_upstream, recipes, tmp_path):
    hub = recipes / "hub.toml"
    hub.write_text(hub.read_text() + f'archive-sha256 = "{"0" * 64}"\narchive-size = 1\n')
    result = tljh("update", "--recipes", recipes, "--lock", tmp_path / "tljh.lock.toml",
                  *hub_upstream.mirror_flags())
    assert result.code == EXIT_INPUT
    assert "sources[0].archive-sha256: is what `tljh-lock update` records" in result.err


def test_cli_help_and_exit_codes():
    result = subprocess.run([sys.executable, "-m", "tljh_lock", "--help"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0
    for command in ("update", "check", "diff", "export"):
        assert command in result.stdout
    assert "exit codes" in result.stdout
    result = subprocess.run([sys.executable, "-m", "tljh_lock", "check", "--lock", "/nonexistent"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == EXIT_INPUT and "run `tljh-lock update` first" in result.stderr

"""The applier, offline, into a temporary --root: a small hub lock (the fixture upstream's
wheels, a TLJH-like source built into a wheel, the system's own pip wheel as the installer),
a fake traefik and a fake Node.js release."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import UNREACHABLE, nginx_serving
from tests.support.apply_scenario import (
    SYSTEM_PYTHON,
    Fixture,
    build_bundle,
    build_fixture,
    make_root,
    make_tar,
    snapshot,
)
from tljh_lock.apply import engine
from tljh_lock.apply.actions.unpack import unpack_tree
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.steps import HubBuild
from tljh_lock.apply.tree import directory_hash
from tljh_lock.apply.verify import verify
from tljh_lock.bundle import safe_archive
from tljh_lock.core.errors import (
    EXIT_INTEGRITY,
    EXIT_USAGE,
    IntegrityError,
    TljhLockError,
)
from tljh_lock.lock import file as lockfile


@pytest.fixture(scope="session")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build_fixture(tmp_path_factory.mktemp("apply-fixture"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path / "root")


def apply(fixture: Fixture, root: Path, label: str = "old", **options: object) -> engine.Outcome:
    return engine.apply(Layout(root), fixture.locks[label], options.pop("source", None)
                        or fixture.source(), SYSTEM_PYTHON, **options)  # type: ignore[arg-type]



def test_full_apply_then_noop(fixture: Fixture, root: Path) -> None:
    first = apply(fixture, root)
    assert first.generation == 1 and "hub" in first.ran and "node" in first.ran
    layout = Layout(root)
    hub = root / "opt/tljh/hub"
    assert hub.is_symlink() and os.readlink(hub).startswith("hub.")
    # TLJH's console script, from the wheel built out of the source pin, through the link
    link = root / "usr/bin/tljh-config"
    assert os.readlink(link) == "/opt/tljh/hub/bin/tljh-config"
    out = subprocess.run([hub / "bin/tljh-config"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "tljh-config (fixture)"
    listed = subprocess.run([hub / "bin/python3", "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert {"fx-hub==1.0.0", "fx-otp==1.0.1", "the-littlest-jupyterhub==2.0.0",
            "fx-speedups==2.0"} <= set(listed)
    assert not any(line.startswith("fx-backport") for line in listed)  # marker: python < 3.11
    assert (hub / "bin/traefik").read_bytes().startswith(b"#!/bin/sh\necho traefik")
    assert (root / "opt/tljh/node/bin/npm").resolve() == (
        root / "opt/tljh/node/lib/node_modules/npm/bin/npm-cli.js").resolve()
    # the npm tree, installed by the locked Node.js's npm from the verified tarballs only
    fx_proxy = root / "opt/tljh/proxy/node_modules/.bin/fx-proxy"
    described = subprocess.run([root / "opt/tljh/node/bin/node", fx_proxy], capture_output=True,
                               text=True, check=True).stdout.strip()
    assert described.startswith("fx-proxy 1.0.0 [@fx/log 2.0.0 [fx-events 4.0.0]")
    user = root / "opt/tljh/user/bin/python"
    listed = subprocess.run([user, "-c", "import fx_web, fx_otp, sys; print(sys.prefix)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert listed == str(root / "opt/tljh/user")
    groups = (root / "etc/group").read_text()
    assert "\njupyterhub-users:" in groups and "\njupyterhub-admins:" in groups
    sudoers = root / "etc/sudoers.d/jupyterhub-admins"
    assert sudoers.stat().st_mode & 0o777 == 0o440
    assert "%jupyterhub-admins ALL = (ALL) NOPASSWD: ALL" in sudoers.read_text()
    subprocess.run(["/usr/sbin/visudo", "-cs", "-f", sudoers], check=True, capture_output=True)
    token = root / "opt/tljh/state/proxy.env"
    assert token.stat().st_mode & 0o777 == 0o600
    assert token.read_text().startswith("CONFIGPROXY_AUTH_TOKEN=")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert {p.name for p in wants.iterdir()} == {
        "jupyterhub.service", "configurable-http-proxy.service", "traefik.service"}
    assert verify(layout) == []
    status = engine.status(layout)
    assert status["current"]["number"] == 1
    assert status["current"]["lock-sha256"] == hashlib.sha256(
        fixture.locks["old"].read_bytes()).hexdigest()

    before = snapshot(root)
    second = apply(fixture, root)
    assert second.ran == [] and second.generation == 1
    after = snapshot(root)
    # only the state file is rewritten (same contents: nothing recorded changed)
    assert after == before


def test_units_pass_systemd_analyze_verify(fixture: Fixture, root: Path) -> None:
    # the targets and slices the units are ordered against, as a server has them
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    apply(fixture, root)
    units = root / "etc/systemd/system"
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}",
         *(f"/etc/systemd/system/{u}" for u in ("jupyterhub.service", "traefik.service",
                                                "configurable-http-proxy.service"))],
        capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    # and it does catch a unit it cannot run
    (units / "traefik.service").write_text(
        (units / "traefik.service").read_text().replace("/bin/traefik", "/bin/nothere"))
    result = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                             "/etc/systemd/system/traefik.service"], capture_output=True, text=True)
    assert "nothere" in result.stderr


def test_dry_run_changes_nothing(fixture: Fixture, root: Path) -> None:
    before = snapshot(root)
    outcome = apply(fixture, root, dry_run=True)
    assert snapshot(root) == before
    steps = {s.id: s for s in outcome.plan.steps}
    assert all(not s.done for s in outcome.plan.steps if not s.id.startswith("group"))
    unit = steps["file:/etc/systemd/system/jupyterhub.service"]
    apply(fixture, root)
    installed = root / "etc/systemd/system/jupyterhub.service"
    assert hashlib.sha256(installed.read_bytes()).hexdigest() in unit.summary
    # a dry run after the apply plans nothing
    assert apply(fixture, root, dry_run=True).plan.pending == []


def test_verify_reports_an_edited_unit_and_apply_repairs_it(fixture: Fixture, root: Path) -> None:
    apply(fixture, root)
    unit = root / "etc/systemd/system/jupyterhub.service"
    unit.write_text(unit.read_text().replace("Restart=always", "Restart=no"))
    (root / "opt/tljh/hub/bin/traefik").write_bytes(b"#!/bin/sh\necho evil\n")
    (root / "opt/tljh/user/.tljh-lock-key").unlink()
    problems = [str(p) for p in verify(Layout(root))]
    assert any(p.startswith("/etc/systemd/system/jupyterhub.service: sha256") for p in problems)
    assert "/opt/tljh/user: not the user environment that was applied" in problems
    assert any("contents changed" in p and "/opt/tljh/hub." in p for p in problems)
    repaired = apply(fixture, root)
    # the hub is built again beside the changed one (TLJH renders traefik's configuration
    # with it, and the link moves to it), as everything verify reported is repaired
    assert repaired.ran == ["hub", "user-env", "file:/etc/systemd/system/jupyterhub.service",
                            "tljh-traefik", "link:/opt/tljh/hub"]
    assert "Restart=always" in unit.read_text()
    assert (root / "opt/tljh/hub/bin/traefik").read_bytes().startswith(b"#!/bin/sh\necho traefik")
    assert verify(Layout(root)) == []
    assert apply(fixture, root).ran == []


def test_failed_upgrade_keeps_the_previous_generation(fixture: Fixture, root: Path,
                                                      tmp_path: Path) -> None:
    apply(fixture, root, "old-hub")
    hub_before = os.readlink(root / "opt/tljh/hub")
    # a store whose fx-hub 1.1.0 wheel is corrupted
    store = tmp_path / "corrupt-store"
    shutil.copytree(fixture.store, store)
    new_wheel = next(a for c in [lockfile.load(fixture.locks["new-hub"]).components["hub"]]
                     for p in c.packages if p.name == "fx-hub" for a in p.wheels)
    (store / "sha256" / new_wheel.sha256).write_bytes(b"not a wheel")
    with pytest.raises(IntegrityError, match="fx_hub-1.1.0"):
        apply(fixture, root, "new-hub", source=fixture.source(store))
    assert os.readlink(root / "opt/tljh/hub") == hub_before
    assert engine.status(Layout(root))["current"]["number"] == 1
    assert verify(Layout(root)) == []
    # a run killed midway leaves a half-built directory without its marker
    half = root / "opt/tljh" / apply(fixture, root, "new-hub", dry_run=True).plan.dirs["hub"]
    (half / "bin").mkdir(parents=True)
    (half / "bin/python3").write_text("half written")
    # a re-run with good artifacts completes it
    outcome = apply(fixture, root, "new-hub")
    assert (half / "bin/python3").is_symlink()
    assert outcome.generation == 2
    # a new lock changes only what changed: the hub set, traefik's configuration rendered by
    # its TLJH (as TLJH's installer does), and the link to it
    assert outcome.ran == ["hub", "tljh-traefik", "link:/opt/tljh/hub"]
    assert os.readlink(root / "opt/tljh/hub") != hub_before
    assert verify(Layout(root)) == []


def test_an_upgrade_links_what_did_not_change(fixture: Fixture, root: Path) -> None:
    apply(fixture, root, "old-hub")
    old = (root / "opt/tljh/hub").resolve()
    upgrade = apply(fixture, root, "new-hub", dry_run=True).plan.steps[0]
    assert isinstance(upgrade, HubBuild) and upgrade.reuse_from == old.name
    apply(fixture, root, "new-hub")
    new = (root / "opt/tljh/hub").resolve()
    [old_site], [new_site] = (list(d.glob("lib/python3*/site-packages")) for d in (old, new))
    assert os.path.samefile(new_site / "fx_auth-1.0.dist-info/METADATA",
                            old_site / "fx_auth-1.0.dist-info/METADATA")
    assert os.path.samefile(new / "bin/traefik", old / "bin/traefik")
    assert not (new_site / "fx_hub-1.0.0.dist-info").exists()
    assert os.stat(new_site / "fx_hub-1.1.0.dist-info/METADATA").st_nlink == 1
    assert verify(Layout(root)) == []
    # the trees recorded from the RECORDs' hashes (fresh, linked) are what hashing gives
    trees = engine.status(Layout(root))["trees"]
    assert [trees[d.name] for d in (old, new)] == [directory_hash(d) for d in (old, new)]
    # the old generation is as it was built: rollback returns to it whole
    engine.rollback(Layout(root))
    assert verify(Layout(root)) == []


def test_a_changed_hub_is_not_linked_from(fixture: Fixture, root: Path) -> None:
    apply(fixture, root, "old-hub")
    old = (root / "opt/tljh/hub").resolve()
    [site] = old.glob("lib/python3*/site-packages")
    (site / "fx_auth-1.0.dist-info/METADATA").write_text("an admin's edit")
    upgrade = apply(fixture, root, "new-hub", dry_run=True).plan.steps[0]
    assert isinstance(upgrade, HubBuild) and upgrade.reuse_from == ""
    apply(fixture, root, "new-hub")
    new = (root / "opt/tljh/hub").resolve()
    [new_site] = new.glob("lib/python3*/site-packages")
    assert "an admin's edit" not in (new_site / "fx_auth-1.0.dist-info/METADATA").read_text()
    assert not os.path.samefile(new / "bin/traefik", old / "bin/traefik")


def test_downgrade_refused_and_rollback(fixture: Fixture, root: Path) -> None:
    apply(fixture, root, "old-hub")
    old_hub = os.readlink(root / "opt/tljh/hub")
    apply(fixture, root, "new-hub")
    new_hub = os.readlink(root / "opt/tljh/hub")
    with pytest.raises(TljhLockError, match="older than the one applied.*generation 1"):
        apply(fixture, root, "old-hub")
    assert os.readlink(root / "opt/tljh/hub") == new_hub
    previous = engine.rollback(Layout(root))
    assert previous.number == 1
    assert os.readlink(root / "opt/tljh/hub") == old_hub
    assert verify(Layout(root)) == []
    with pytest.raises(TljhLockError, match="first one"):
        engine.rollback(Layout(root))
    # forward again, and back explicitly with --allow-downgrade
    assert apply(fixture, root, "new-hub").generation == 3
    assert apply(fixture, root, "old-hub", allow_downgrade=True).generation == 4
    assert os.readlink(root / "opt/tljh/hub") == old_hub  # reused, not rebuilt


def test_concurrent_apply_refuses(fixture: Fixture, root: Path) -> None:
    state = root / "opt/tljh/state"
    state.mkdir(parents=True)
    with open(state / "apply.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(TljhLockError, match="another tljh-lock apply is running"):
            apply(fixture, root)
    assert not (root / "opt/tljh/hub").exists()


def test_temporary_files_stay_below_the_root(fixture: Fixture, root: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # what a killed run left in the scratch; the next run clears it under the lock
    scratch = root / "opt/tljh/state/tmp"
    (scratch / "tljh-lock-bundle-killed").mkdir(parents=True)
    (scratch / "tljh-lock-bundle-killed/partial").write_bytes(b"x" * 4096)
    tmp = tmp_path / "TMPDIR"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", None)
    apply(fixture, root)
    assert not scratch.exists()
    assert list(tmp.iterdir()) == []  # neither the applier nor pip and npm wrote there


def test_unpack_refuses_links_out(tmp_path: Path) -> None:
    evil = make_tar(tmp_path / "evil.tar.gz", {"top/d/a": "..", "top/d/a/b": "../../etc"}, {})
    with pytest.raises(IntegrityError, match="below a symlink"):
        unpack_tree(evil, tmp_path / "out", "top", "evil")
    out = make_tar(tmp_path / "out.tar.gz", {"top/l": "../../etc"}, {})
    with pytest.raises(IntegrityError, match="links outside"):
        unpack_tree(out, tmp_path / "out2", "top", "evil")


@pytest.fixture(scope="module")
def bundle(fixture: Fixture, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(fixture, "old", tmp_path_factory.mktemp("apply-bundle") / "tljh.bundle")

def run_offline_from_bundle(bundle: Path, tmp_path: Path,
                            *args: str) -> subprocess.CompletedProcess[str]:
    """`apply --bundle` by the bundle's own zipapp, under the system python3, in a network
    namespace with no interfaces up (no route anywhere, no DNS)."""
    pyz = tmp_path / "tljh-lock.pyz"
    if not pyz.exists():
        with tarfile.open(bundle) as tar:
            member = tar.extractfile(safe_archive.PYZ_NAME)
            assert member is not None
            pyz.write_bytes(member.read())
    return subprocess.run(["unshare", "-n", SYSTEM_PYTHON, "-I", pyz, *args],
                          capture_output=True, text=True, env={"PATH": os.environ["PATH"],
                                                               "LANG": "C.UTF-8"})


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace (unshare -n)")
def test_apply_from_bundle_without_network(bundle: Path, root: Path, tmp_path: Path) -> None:
    result = run_offline_from_bundle(bundle, tmp_path, "apply", "--bundle", str(bundle),
                                     "--root", str(root), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["generation"] == 1 and "hub" in report["ran"]
    tljh_config = root / "opt/tljh/hub/bin/tljh-config"
    out = subprocess.run([tljh_config], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "tljh-config (fixture)"  # built from the source pin
    assert not list(root.glob("opt/tljh/state/*bundle*"))  # the unpacked bundle is gone
    # a re-run reads only the manifest: a no-op (how fast: docs/benchmarks.md, not a timed test)
    again = run_offline_from_bundle(bundle, tmp_path, "apply", "--bundle", str(bundle),
                                    "--root", str(root), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["ran"] == []
    assert run_offline_from_bundle(bundle, tmp_path, "verify", "--root", str(root)).returncode == 0
    status = run_offline_from_bundle(bundle, tmp_path, "status", "--json", "--root", str(root))
    assert json.loads(status.stdout)["current"]["lock-sha256"] == \
        safe_archive.read_manifest(bundle).lock.sha256


def _apply_from_store_mirror(fixture: Fixture, www: Path, root: Path, tmp_path: Path,
                             tljh):  # type: ignore[no-untyped-def]
    """apply of the old lock into an empty store, `www` behind nginx as its store mirror and
    every upstream out of reach; the result and the store."""
    nowhere = [f"--mirror=https://{host.name}/={UNREACHABLE}"
               for host in sorted(fixture.upstream.iterdir())]
    store = tmp_path / "store"
    with nginx_serving(www, tmp_path / "nginx") as url:
        result = tljh("apply", "--lock", fixture.locks["old"], "--store", store,
                      "--store-mirror", url, *nowhere, "--root", root,
                      "--python", SYSTEM_PYTHON, "--json")
    return result, store


def test_apply_from_a_store_mirror_served_by_nginx(fixture: Fixture, bundle: Path, root: Path,
                                                  tmp_path: Path, tljh) -> None:  # type: ignore[no-untyped-def]
    """How a fleet installs from one cache: an unpacked bundle behind nginx, the upstream out
    of reach; the server fetches what its empty store lacks, verifies it, and applies."""
    www = tmp_path / "www"
    safe_archive.extract(bundle, www)
    result, _ = _apply_from_store_mirror(fixture, www, root, tmp_path, tljh)
    assert result.code == 0, result.err
    assert json.loads(result.out)["generation"] == 1
    assert verify(Layout(root)) == []
    out = subprocess.run([root / "opt/tljh/hub/bin/tljh-config"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "tljh-config (fixture)"  # built again from the fetched pin


def test_store_mirror_serves_the_bundles_built_wheels(fixture: Fixture, bundle: Path, root: Path,
                                                      tmp_path: Path, tljh,  # type: ignore[no-untyped-def]
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet's server installs the wheels the bundle built from sources, as listed in the
    mirror's manifest.json: it builds nothing (a minimal Debian has no pip to build with)."""
    from tljh_lock.store import build_wheels

    def no_build(self: object) -> Path:
        raise AssertionError("the server built a wheel the mirror's bundle carries")

    monkeypatch.setattr(build_wheels._Builder, "_venv", no_build)
    www = tmp_path / "www"
    built = safe_archive.extract(bundle, www).built
    assert built, "the fixture's bundle has a wheel built from a source"
    result, store = _apply_from_store_mirror(fixture, www, root, tmp_path, tljh)
    assert result.code == 0, result.err
    records = [json.loads(p.read_text()) for p in (store / "built").glob("*.json")]
    assert {(r["source-sha256"], r["sha256"]) for r in records} == \
        {(key, entry.sha256) for key, entry in built.items()}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace (unshare -n)")
def test_corrupted_bundle_changes_nothing(bundle: Path, root: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.bundle"
    shutil.copyfile(bundle, corrupt)
    manifest = safe_archive.read_manifest(bundle)
    victim = next(e for name, e in sorted(manifest.members.items())
                  if name.startswith("sha256/") and e.size > 1024)
    with tarfile.open(bundle) as tar:
        offset = tar.getmember(victim.name).offset_data
    with open(corrupt, "r+b") as fh:
        fh.seek(offset + 512)
        byte = fh.read(1)
        fh.seek(offset + 512)
        fh.write(bytes([byte[0] ^ 0xFF]))
    before = snapshot(root)
    result = run_offline_from_bundle(bundle, tmp_path, "apply", "--bundle", str(corrupt),
                                     "--root", str(root))
    assert result.returncode == EXIT_INTEGRITY, result.stderr
    assert victim.sha256 in result.stderr
    assert snapshot(root) == before


def test_command_line(fixture: Fixture, root: Path, tljh) -> None:  # type: ignore[no-untyped-def]
    where = ["--root", root]
    store = ["--lock", fixture.locks["old"], "--store", fixture.store]
    result = tljh("apply", "--dry-run", *where, *store)
    assert result.code == 0 and "[run ] hub: hub environment" in result.out
    assert "file:/etc/sudoers.d/jupyterhub-admins: /etc/sudoers.d/jupyterhub-admins mode 0440 " \
           "sha256 " in result.out
    assert not (root / "opt").exists()
    result = tljh("apply", *where, *store)
    assert result.code == 0 and result.out.startswith("generation 1 (lock sha256 ")
    result = tljh("status", *where)
    assert result.code == 0 and "generation 1 since" in result.out
    assert json.loads(tljh("status", "--json", *where).out)["current"]["number"] == 1
    assert tljh("verify", *where).code == 0
    unit = root / "etc/systemd/system/traefik.service"
    unit.chmod(0o666)
    result = tljh("verify", *where)
    assert result.code == 1
    assert "drift: /etc/systemd/system/traefik.service: mode 0666, applied 0644" in result.err
    assert "  hint: run `tljh-lock apply`" in result.err
    report = json.loads(tljh("verify", "--json", *where).out)
    assert report["ok"] is False
    assert report["drift"] == [{
        "kind": "mode", "message": "mode 0666, applied 0644",
        "path": "/etc/systemd/system/traefik.service", "expected": "0644", "actual": "0666",
        "repair": "run `tljh-lock apply` with the applied lock (or bundle) again"}]
    result = tljh("apply", *where, "--lock", fixture.locks["new"], "--store", fixture.store)
    assert result.code == 0 and unit.stat().st_mode & 0o777 == 0o644
    result = tljh("rollback", *where)
    assert result.code == 0 and result.out.startswith("rolled back to generation 1")
    result = tljh("apply", *where, *store, "--bundle", fixture.store)
    assert result.code == EXIT_USAGE and "takes no --store" in result.err

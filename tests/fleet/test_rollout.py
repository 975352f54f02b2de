"""A fleet: three booted Debian 12 servers rolled out by Ansible from one static mirror.

Three machines (systemd-nspawn, the e2e image with openssh-server) on a private bridge in a
network namespace of the test's own: nothing leaves the machine, and the servers have no
route to any upstream. The controller is ansible-core from PyPI (.venv-fleet) with the
collection `tljh.lock` built and installed from ansible/; nginx serves the unpacked real
bundles (tests/e2e/real_bundle.py) on the bridge. hub1 and hub2 install from the mirror, hub3
from a copied bundle.

Run: make test-fleet (needs root, tests/e2e/APT_PACKAGES, nginx, and PyPI and the npm registry
to build the bundles).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from tests.conftest import REPO, nginx_serving
from tests.e2e.fixtures import e2e_workdir  # noqa: F401 - a fixture used below
from tests.e2e.machine import BootedMachine, clean_env, ensure_rootfs, run_host
from tests.e2e.real_bundle import build_real_bundles
from tests.fleet.controller import Controller, Run, build_and_install, require_tools
from tests.fleet.network import PrivateBridge
from tljh_lock.bundle import safe_archive

pytestmark = pytest.mark.fleet

HOSTS = ("hub1", "hub2", "hub3")
SUBNET = "10.213.0"
ZIPAPP = "/var/lib/tljh-lock/tljh-lock.pyz"
APPLY_TASK = "tljh.lock.tljh_lock : Apply the lock"
ROLLBACK_TASK = "tljh.lock.tljh_lock : Roll back to the generation of the lock asked for " \
                "(or the previous one)"


def log(line: str) -> None:
    print(f"[fleet] {line}", flush=True)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory,
            vendor_store: Path) -> dict[str, Any]:
    return build_real_bundles(tmp_path_factory.mktemp("fleet-bundles"), vendor_store)


@dataclass
class Fleet:
    net: PrivateBridge
    machines: dict[str, BootedMachine]
    controller: Controller
    mirror: str
    bundles: dict[str, Any]
    work: Path

    def address(self, host: str) -> str:
        return self.net.address(HOSTS.index(host) + 1)

    def inventory(self, name: str, sources: dict[str, tuple[str, str]]) -> Path:
        """An inventory of the three, each with where its lock comes from: ("mirror", NAME)
        for NAME/ on the mirror, ("bundle", LABEL) for the copied bundle LABEL."""
        hosts: dict[str, dict[str, str]] = {}
        for host in HOSTS:
            kind, what = sources[host]
            hosts[host] = {"ansible_host": self.address(host)}
            if kind == "mirror":
                hosts[host]["tljh_lock_store_mirror"] = f"{self.mirror}{what}/"
            else:
                hosts[host]["tljh_lock_bundle"] = str(self.bundles["bundles"][what])
        path = self.work / f"inventory-{name}.json"  # JSON is YAML: the yaml plugin reads it
        path.write_text(json.dumps({"tljh": {"hosts": hosts, "vars": {"ansible_user": "root"}}},
                                   indent=2))
        return path

    def tool(self, host: str, *args: str, check: bool = True) -> Any:
        return self.machines[host].run(["python3", ZIPAPP, *args], check=check, timeout=300)

    def current(self, host: str) -> dict[str, Any]:
        current = json.loads(self.tool(host, "status", "--json").stdout)["current"]
        assert current is not None, f"{host}: nothing applied"
        return current  # type: ignore[no-any-return]

    def urls(self) -> list[str]:
        return [f"http://{self.address(host)}/hub/api" for host in HOSTS]

    def answering(self) -> list[bool]:
        out = self.net.run(["env", "-C", REPO, sys.executable, "-m", "tests.fleet.poll",
                            "--once", *self.urls()], timeout=60).stdout
        return json.loads(out)["up"]  # type: ignore[no-any-return]

    def has_tljh_of(self, host: str, label: str) -> bool:
        """Whether the hub's TLJH is the bundle `label`'s (the recipe may write 2.0.1.dev, the
        installed metadata 2.0.1.dev0; the real TLJH has no __version__)."""
        out = self.machines[host].run([
            "/opt/tljh/hub/bin/python3", "-c", "from importlib.metadata import version; "
            "print(version('the-littlest-jupyterhub'))"]).stdout
        return Version(out.strip()) == Version(self.bundles["versions"][label])

    @contextmanager
    def polling(self, label: str) -> Iterator[list[dict[str, Any]]]:
        """Poll every hub during the block; the samples are in the list afterwards."""
        samples: list[dict[str, Any]] = []
        path = self.work / f"poll-{label}.jsonl"
        with open(path, "wb") as out:
            poller = subprocess.Popen(
                [*self.net.prefix, sys.executable, "-m", "tests.fleet.poll", *self.urls()],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=clean_env(),
                start_new_session=True)
        try:
            yield samples
        finally:
            poller.terminate()
            poller.wait(timeout=30)
            samples += [json.loads(line) for line in path.read_text().splitlines()
                        if line.startswith("{")]


def task_results(run: Run, task: str) -> dict[str, str]:
    """host -> ok/changed/failed/skipping for one task, as the default callback printed it."""
    results: dict[str, str] = {}
    current = None
    for line in run.output.splitlines():
        if line.startswith("TASK ["):
            current = line[len("TASK ["):line.rindex("]")]
        elif current == task:
            for status in ("ok", "changed", "fatal", "skipping"):
                if line.startswith(f"{status}: ["):
                    host = line[len(status) + 3:line.index("]")].split(" -> ")[0]
                    results[host] = "failed" if status == "fatal" else status
    return results


def minimum_up(samples: list[dict[str, Any]]) -> int:
    assert len(samples) > 10, f"the poller took {len(samples)} samples"
    return min(sum(sample["up"]) for sample in samples)


def broken_mirror(www: Path, old: safe_archive.Manifest, new: safe_archive.Manifest) -> str:
    """www/broken: the new bundle unpacked, one of the files only it has flipped in the middle
    (a server upgrading from the old lock fetches it). Returns its sha256."""
    victim = max((e for name, e in new.members.items()
                  if name.startswith("sha256/") and name not in old.members),
                 key=lambda e: e.size)
    shutil.copytree(www / "new", www / "broken", copy_function=os.link)
    path = www / "broken" / victim.name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.unlink()  # a hard link to the good copy
    path.write_bytes(bytes(data))
    return victim.sha256


@pytest.fixture
def fleet(tmp_path: Path, e2e_workdir: Path, bundles: dict[str, Any]) -> Iterator[Fleet]:  # noqa: F811
    if os.geteuid() != 0:
        pytest.fail("the fleet test needs root (network namespaces, systemd-nspawn)")
    require_tools()
    started = time.monotonic()
    rootfs = ensure_rootfs(image="fleet")
    www = tmp_path / "www"
    www.mkdir()
    for label in ("old", "new"):
        safe_archive.extract(bundles["bundles"][label], www / label)
    key = tmp_path / "id_ed25519"
    run_host(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-test", "-f", key])
    collections = build_and_install(tmp_path / "collection", tmp_path / "controller" / "home")
    with ExitStack() as stack:
        net = stack.enter_context(PrivateBridge(SUBNET))
        url = stack.enter_context(nginx_serving(www, tmp_path / "nginx", listen=net.gateway,
                                                netns=net.netns))
        machines: dict[str, BootedMachine] = {}
        known_hosts = []
        for index, host in enumerate(HOSTS, start=1):
            m = stack.enter_context(BootedMachine(rootfs, e2e_workdir, netns=net.netns,
                                                  network=net.nspawn_network))
            machines[host] = m
            net.configure(m, net.address(index))
            m.run(["install", "-d", "-m", "0700", "/root/.ssh"])
            m.copy_in(key.with_suffix(".pub"), "/root/.ssh/authorized_keys", mode=0o600)
            assert m.run(["systemctl", "is-active", "ssh"], check=False).stdout.strip() == \
                "active", m.run(["systemctl", "status", "ssh"], check=False).stdout
            host_key = m.run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()[:2]
            known_hosts.append(f"{net.address(index)} {' '.join(host_key)}")
        (tmp_path / "known_hosts").write_text("\n".join(known_hosts) + "\n")
        # nothing leaves the machine: no route out of the namespace, nor out of a server
        assert "default" not in net.run(["ip", "route"]).stdout.decode()
        assert all("default" not in m.run(["ip", "route"]).stdout for m in machines.values())
        controller = Controller(tmp_path / "controller", net.prefix, collections, key,
                                tmp_path / "known_hosts")
        log(f"3 machines on {net.gateway}/24 ({net.netns}), mirror {url}, ready in "
            f"{time.monotonic() - started:.0f} s")
        yield Fleet(net, machines, controller, url, bundles, tmp_path)


@pytest.mark.fleet
def test_fleet_rollout(fleet: Fleet) -> None:
    started = time.monotonic()
    old = safe_archive.read_manifest(fleet.bundles["bundles"]["old"])
    new = safe_archive.read_manifest(fleet.bundles["bundles"]["new"])
    victim = broken_mirror(fleet.work / "www", old, new)
    c = fleet.controller
    minimums: dict[str, int] = {}

    # --- install (all at once), then the same again (one by one): changed on 3 hosts, then on 0
    inv_old = fleet.inventory("old", {"hub1": ("mirror", "old"), "hub2": ("mirror", "old"),
                                      "hub3": ("bundle", "old")})
    first = c.playbook("tljh.lock.rollout", inv_old, "-e", "tljh_lock_serial=3")
    assert first.rc == 0, first.explain()
    assert task_results(first, APPLY_TASK) == dict.fromkeys(HOSTS, "changed"), first.explain()
    assert first.changed() == list(HOSTS)
    second = c.playbook("tljh.lock.rollout", inv_old)
    assert second.rc == 0, second.explain()
    assert task_results(second, APPLY_TASK) == dict.fromkeys(HOSTS, "ok"), second.explain()
    assert second.changed() == [], second.explain()
    log(f"first run: changed on {len(first.changed())} of 3 hosts ({first.seconds:.0f} s); "
        f"second run: changed on {len(second.changed())} of 3 ({second.seconds:.0f} s)")
    for host in HOSTS:
        current = fleet.current(host)
        assert (current["number"], current["lock-sha256"]) == (1, old.lock.sha256), current
        assert fleet.has_tljh_of(host, "old")
    verify = c.playbook("tljh.lock.verify", inv_old)
    assert verify.rc == 0, verify.explain()
    assert all(fleet.tool(host, "verify").returncode == 0 for host in HOSTS)
    assert fleet.answering() == [True] * 3

    # --- a corrupted mirror for hub2: the roll-out stops there, hub3 is not touched ----------
    untouched = fleet.machines["hub3"].run(
        "cat /opt/tljh/state/state.json; ls -l /var/lib/tljh-lock/bundles").stdout
    inv_broken = fleet.inventory("broken", {"hub1": ("mirror", "new"),
                                            "hub2": ("mirror", "broken"),
                                            "hub3": ("bundle", "new")})
    with fleet.polling("broken") as samples:
        broken = c.playbook("tljh.lock.rollout", inv_broken)
    minimums["stopped roll-out"] = minimum_up(samples)
    assert broken.rc != 0, broken.explain()
    assert task_results(broken, APPLY_TASK) == {"hub1": "changed", "hub2": "failed"}, \
        broken.explain()
    assert broken.failed() == ["hub2"] and "hub3" not in broken.recap, broken.explain()
    failure = broken.failure("hub2")
    assert failure is not None, broken.explain()
    assert "served a different file than the lock declares" in failure["msg"], failure
    assert victim in failure["msg"] and failure["rc"] in (4, 5), failure
    assert "\n" not in failure["msg"]
    log(f"broken mirror: the roll-out stopped at hub2, apply exit {failure['rc']}: "
        f"{failure['msg'][:400]}")
    assert fleet.current("hub1")["lock-sha256"] == new.lock.sha256
    for host in ("hub2", "hub3"):
        assert fleet.current(host)["lock-sha256"] == old.lock.sha256, host
        assert fleet.tool(host, "verify").returncode == 0
    assert fleet.machines["hub3"].run(
        "cat /opt/tljh/state/state.json; ls -l /var/lib/tljh-lock/bundles").stdout == untouched
    log("after the stop: hub1 on the new lock, hub2 and hub3 on the old one, hub3 untouched")

    # --- rollback through the module, on hub1 alone ---------------------------------------------
    inv_new = fleet.inventory("new", {"hub1": ("mirror", "new"), "hub2": ("mirror", "new"),
                                      "hub3": ("bundle", "new")})
    back = c.playbook("tljh.lock.rollback", inv_new, "--limit", "hub1",
                      "-e", f"tljh_lock_rollback_to={old.lock.sha256}")
    assert back.rc == 0, back.explain()
    assert task_results(back, ROLLBACK_TASK) == {"hub1": "changed"}, back.explain()
    assert fleet.current("hub1")["lock-sha256"] == old.lock.sha256
    assert fleet.has_tljh_of("hub1", "old")

    # --- check mode: apply would change every host, and changes none (it fills the stores)
    check = c.playbook("tljh.lock.rollout", inv_new, "--check")
    assert check.rc == 0, check.explain()
    assert task_results(check, APPLY_TASK) == dict.fromkeys(HOSTS, "changed"), check.explain()
    assert all(fleet.current(host)["number"] == 1 for host in HOSTS)
    log("check mode: apply would change 3 of 3 hosts; still generation 1 on each")

    # --- the rolling upgrade: never fewer than 2 of the 3 hubs answering -------------------------
    with fleet.polling("upgrade") as samples:
        upgrade = c.playbook("tljh.lock.rollout", inv_new)
    minimums["rolling upgrade"] = minimum_up(samples)
    assert upgrade.rc == 0, upgrade.explain()
    assert task_results(upgrade, APPLY_TASK) == dict.fromkeys(HOSTS, "changed"), \
        upgrade.explain()
    for host in HOSTS:
        assert fleet.current(host)["lock-sha256"] == new.lock.sha256, host
        assert fleet.has_tljh_of(host, "new")
        assert fleet.tool(host, "verify").returncode == 0
    log(f"rolling upgrade: 3 of 3 hosts changed in {upgrade.seconds:.0f} s; at least "
        f"{minimums['rolling upgrade']} of 3 hubs answered in each of {len(samples)} samples")

    # --- the fleet back to the old lock (hub1 through two generations), then again: a no-op ---
    with fleet.polling("rollback") as samples:
        rollback = c.playbook("tljh.lock.rollback", inv_new,
                              "-e", f"tljh_lock_rollback_to={old.lock.sha256}")
    minimums["fleet rollback"] = minimum_up(samples)
    assert rollback.rc == 0, rollback.explain()
    assert task_results(rollback, ROLLBACK_TASK) == dict.fromkeys(HOSTS, "changed")
    again = c.playbook("tljh.lock.rollback", inv_new,
                       "-e", f"tljh_lock_rollback_to={old.lock.sha256}")
    assert again.rc == 0, again.explain()
    assert task_results(again, ROLLBACK_TASK) == dict.fromkeys(HOSTS, "ok"), again.explain()
    for host in HOSTS:
        current = fleet.current(host)
        assert (current["number"], current["lock-sha256"]) == (1, old.lock.sha256), current
        assert fleet.has_tljh_of(host, "old")
        assert fleet.tool(host, "verify").returncode == 0
    assert fleet.answering() == [True] * 3
    log("fleet rollback: changed on 3 of 3 hosts, all on generation 1 again; a second "
        f"rollback changed {len(again.changed())}")

    # --- admins: the password in no output and in no file on the host --------------------------
    secret = "fleet-" + uuid.uuid4().hex
    secrets = fleet.work / "secrets.json"
    secrets.write_text(json.dumps({"tljh_lock_admins": [f"alice:{secret}"]}))
    secrets.chmod(0o600)
    # -vvv: the module's arguments and every connection command are printed, masked
    admin = c.playbook("tljh.lock.rollout", inv_old, "--limit", "hub1", "-e", f"@{secrets}",
                       "-vvv")
    assert admin.rc == 0, admin.explain()
    assert task_results(admin, APPLY_TASK) == {"hub1": "changed"}, admin.explain()
    assert secret not in admin.output
    hub1 = fleet.machines["hub1"]
    found = hub1.run(
        ["grep", "-rlsF", "--exclude-dir=proc", "--exclude-dir=sys", "--exclude-dir=dev",
         secret, "/"], check=False).stdout.split()
    # apply --admins-from - read it on stdin and gave the hub's python its bcrypt hash to keep
    assert found == [], found
    assert secret not in hub1.run(["journalctl", "--no-pager", "-o", "cat"]).stdout
    config = hub1.run(["cat", "/opt/tljh/config/config.yaml"]).stdout
    assert "alice" in config, config
    log("admins: alice added through --admins-from -; the password appears in no output, no "
        "file and not in the journal")

    log("minimum hubs answering: " + ", ".join(f"{k} {v} of 3" for k, v in minimums.items()))
    assert all(value >= 2 for value in minimums.values()), minimums
    log(f"the fleet test's playbooks and checks took {time.monotonic() - started:.0f} s")

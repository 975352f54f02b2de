"""The end-to-end harness itself: boot the cached Debian 12 rootfs with no network, drive it,
reboot it, stop it.

Run: python -m pytest -m slow tests/e2e/test_boot.py -p no:cacheprovider -o addopts=""
Needs root and what `.ci/deps test-slow` lists. Environment: see tests/e2e/fixtures.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.fixtures import *  # noqa: F403  (e2e_rootfs, e2e_workdir)
from tests.e2e.machine import BootedMachine


@pytest.fixture
def bind_dir(tmp_path: Path) -> Path:
    d = tmp_path / "host-ro"
    d.mkdir()
    (d / "hello.txt").write_text("from the host\n")
    return d


@pytest.mark.slow
def test_boot_offline_users_reboot_verify(e2e_rootfs: Path, e2e_workdir: Path, bind_dir: Path):
    t0 = time.monotonic()
    with BootedMachine(e2e_rootfs, e2e_workdir, {bind_dir: "/mnt/host"}) as m:
        print(f"[e2e] unpack+boot {time.monotonic() - t0:.2f} s (boot {m.boot_times[0]:.2f} s)")
        assert m.state in ("running", "degraded"), m.failed_units()
        state = m.run(["systemctl", "is-system-running"], check=False).stdout.strip()
        assert state in ("running", "degraded"), m.failed_units()
        assert m.failed_units() == []
        assert m.run(["cat", "/etc/os-release"]).stdout.count('VERSION_ID="12"') == 1

        # No network: only loopback, no route, no DNS.
        links = m.run(["ip", "-o", "link"]).stdout.splitlines()
        assert [ln.split(":")[1].strip() for ln in links] == ["lo"], links
        assert m.run(["ip", "-o", "route"]).stdout.strip() == ""
        r = m.run(["curl", "-sS", "--max-time", "3", "https://deb.debian.org"], check=False)
        assert r.returncode != 0 and "resolve host" in r.stderr, r
        r = m.run(["curl", "-sS", "--max-time", "3", "http://151.101.2.132/"], check=False)
        assert r.returncode != 0, r

        # Only python3: `venv --without-pip` works, ensurepip (python3-venv) is absent.
        m.run(["python3", "-m", "venv", "--without-pip", "/opt/probe-venv"])
        assert (
            m.run(
                ["/opt/probe-venv/bin/python", "-c", "import sys; print(sys.prefix)"]
            ).stdout.strip()
            == "/opt/probe-venv"
        )
        assert m.run(["python3", "-c", "import ensurepip"], check=False).returncode != 0

        # The environment is fixed, nothing leaks from the host.
        env = dict(ln.split("=", 1) for ln in m.run(["env"]).stdout.splitlines())
        assert env["LANG"] == "C.UTF-8" and not any(k.startswith(("PIP_", "NPM_")) for k in env)

        # Read-only bind, copy_in, read through the tree (symlinks resolved inside the guest).
        assert m.run(["cat", "/mnt/host/hello.txt"]).stdout == "from the host\n"
        assert m.run(["touch", "/mnt/host/x"], check=False).returncode != 0
        m.copy_in(bind_dir / "hello.txt", "/tmp/hello.txt", mode=0o640)
        assert m.run(["stat", "-c", "%a %U", "/tmp/hello.txt"]).stdout.strip() == "640 root"
        m.copy_in(bind_dir, "/srv/copied")
        assert m.read("/srv/copied/hello.txt") == b"from the host\n"
        assert m.read("/etc/hostname") == b"tljh-e2e\n"

        # Users and groups; running as a user; no sudo for a plain user.
        m.run(["groupadd", "--system", "jupyterhub-users"])
        m.run(["useradd", "--create-home", "--groups", "jupyterhub-users", "alice"])
        r = m.run(["sh", "-c", 'echo "$(id -un) $(id -Gn) $HOME $PWD"'], user="alice", cwd="/tmp")
        assert r.stdout.split() == ["alice", "alice", "jupyterhub-users", "/home/alice", "/tmp"]
        assert m.run(["sudo", "-n", "true"], user="alice", check=False).returncode != 0
        m.run(["sh", "-c", "echo disk > /var/lib/marker; echo tmp > /tmp/marker"])

        # systemd-analyze verify: clean unit -> empty stderr; a typo -> stderr (exit 0!).
        m.run(
            "printf '[Unit]\\nDescription=probe\\n[Service]\\nType=oneshot\\n"
            "ExecStart=/usr/bin/true\\nRemainAfterExit=yes\\n[Install]\\n"
            "WantedBy=multi-user.target\\n' > /etc/systemd/system/tljh-probe.service"
        )
        r = m.run(["systemd-analyze", "verify", "/etc/systemd/system/tljh-probe.service"])
        assert r.stderr == "", r.stderr
        m.run("sed 's/^Type=/Tpye=/' /etc/systemd/system/tljh-probe.service > /root/bad.service")
        r = m.run(["systemd-analyze", "verify", "/root/bad.service"], check=False)
        assert r.stderr != ""
        m.run(["systemctl", "enable", "--now", "tljh-probe.service"])

        # Reboot: a real `systemctl reboot`, then nspawn boots the same tree again.
        t1 = time.monotonic()
        m.reboot()
        print(f"[e2e] reboot {time.monotonic() - t1:.2f} s (boot {m.boot_times[1]:.2f} s)")
        assert m.state in ("running", "degraded"), m.failed_units()
        assert m.run(["getent", "passwd", "alice"]).stdout.startswith("alice:")
        assert "alice" in m.run(["getent", "group", "jupyterhub-users"]).stdout
        assert m.run(["cat", "/var/lib/marker"]).stdout == "disk\n"
        assert m.run(["test", "-e", "/tmp/marker"], check=False).returncode == 1  # tmpfs
        assert m.run(["systemctl", "is-active", "tljh-probe.service"]).stdout.strip() == "active"
        assert m.run(["ip", "-o", "link"]).stdout.count("\n") == 1  # still offline
        assert m.run(["cat", "/mnt/host/hello.txt"]).stdout == "from the host\n"

        t2 = time.monotonic()
        assert m.stop() == 0
        print(f"[e2e] stop {time.monotonic() - t2:.2f} s")
        assert not m.running
        assert m.read("/var/lib/marker") == b"disk\n"  # the tree stays readable while stopped
        tree = m.root
    assert not tree.exists()  # close() removed the copy
    print(f"[e2e] total {time.monotonic() - t0:.2f} s")


def test_host_path_stays_inside_guest_root(tmp_path: Path):
    """Guest symlinks (absolute or ..) resolve within the tree, never on the host."""
    m = BootedMachine.__new__(BootedMachine)
    m.base = tmp_path
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "bin").symlink_to("usr/bin")
    (root / "etc/abs").symlink_to("/etc/passwd")
    (root / "etc/up").symlink_to("../../../../etc/shadow")
    assert m.host_path("/bin/python3") == root / "usr/bin/python3"
    assert m.host_path("/etc/abs") == root / "etc/passwd"
    assert m.host_path("/etc/up") == root / "etc/shadow"
    assert m.host_path("../../etc/hostname") == root / "etc/hostname"

"""Boot a throw-away Debian 12 system with systemd-nspawn, without network, and drive it.

    with BootedMachine(ensure_rootfs(), tmp_path, {"/host/bundle": "/mnt/bundle"}) as m:
        m.run(["python3", "-V"])
        m.run("id", user="alice")
        m.reboot()

Every machine is a fresh copy of the cached rootfs tarball (unpacking takes ~1 s), booted with
`systemd-nspawn -b --private-network` (only `lo`, no DNS, no route out) and entered with
`nsenter -t <container PID 1> -a`. Needs root on a Linux host with systemd-container, zstd and
util-linux (`.ci/deps test-slow`); the host does not need systemd as PID 1.

Reboot: when the container's systemd reboots, systemd-nspawn exits (status 133: it expects a
supervisor such as systemd-nspawn@.service to start it again). `reboot()` therefore runs a real
`systemctl reboot` inside (shutdown.target, units stopped in order), waits for nspawn to exit and
boots the same ROOT again. Everything on disk survives; tmpfs (/tmp, /run) does not, as on a
real server.

All host-side subprocesses go through `run_host()`, which fixes PATH and LANG and passes no
PIP_*/NPM_*/proxy variables from the caller's environment; commands inside the guest also get
a fixed environment (see `BootedMachine.run`).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Optional, Union

HERE = Path(__file__).resolve().parent
ROOTFS_SH = HERE / "rootfs.sh"
DEFAULT_CACHE_DIR = "/var/cache/tljh-lock-e2e"

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GUEST_USER_PATH = "/usr/local/bin:/usr/bin:/bin"

Cmd = Union[Sequence[str], str]


class MachineError(RuntimeError):
    """The container did not boot, stop or reboot as expected."""


def clean_env(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """A fixed environment: nothing from the caller (no PIP_*, NPM_*, proxies, VIRTUAL_ENV)."""
    env = {"PATH": HOST_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/root"}
    if extra:
        env.update(extra)
    return env


def run_host(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: Optional[float] = None,
    input: Optional[bytes] = None,
    stdin: Union[IO[bytes], int, None] = None,
    env: Optional[Mapping[str, str]] = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run one host command with a clean environment, capturing stdout and stderr (bytes).

    The command gets its own process group; on timeout the whole group is killed (for `nsenter`
    this includes the forked child that lives inside the container) and TimeoutExpired raised.
    """
    argv = [str(a) for a in argv]
    if input is not None:
        stdin = subprocess.PIPE
    elif stdin is None:
        stdin = subprocess.DEVNULL
    proc = subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(env),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid)
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(argv, timeout or 0, out, err) from None
    except BaseException:
        _killpg(proc.pid)
        proc.wait()
        raise
    result = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, argv, out, err)
    return result


def _killpg(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def ensure_rootfs(cache_dir: Union[str, Path, None] = None, image: str = "e2e") -> Path:
    """Build the cached rootfs tarball of `image` if needed (tests/e2e/rootfs.sh: e2e, or fleet,
    the e2e image with openssh-server) and return its path, as rootfs.sh prints it last.

    cache_dir defaults to $TLJH_E2E_CACHE, then /var/cache/tljh-lock-e2e.
    """
    cache = Path(cache_dir or os.environ.get("TLJH_E2E_CACHE") or DEFAULT_CACHE_DIR)
    env = {}
    if os.environ.get("TLJH_E2E_MIRROR"):
        env["TLJH_E2E_MIRROR"] = os.environ["TLJH_E2E_MIRROR"]
    try:
        out = run_host(["sh", str(ROOTFS_SH), str(cache), image], timeout=1800, env=env).stdout
    except subprocess.CalledProcessError as e:
        raise MachineError(f"rootfs.sh failed:\n{e.stderr.decode(errors='replace')}") from None
    return Path(out.decode().strip().splitlines()[-1])  # named by its recipe


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4].encode().decode("unicode_escape")
            if target == prefix[:-1] or target.startswith(prefix):
                found.append(target)
    return found


class BootedMachine:
    """A Debian 12 system booted with systemd-nspawn, no network. Use as a context manager.

    rootfs_tarball: the zstd tarball from rootfs.sh / ensure_rootfs().
    workdir: a host directory; the tree is unpacked into a fresh `workdir/machine-XXXX/root`,
        and nspawn's console output goes to `console.log` next to it.
    binds_ro: {host_path: guest_path}, bind-mounted read-only at every boot.
    keep: leave the tree on disk after stop() (for post-mortems); deleted by default.
    netns: a named network namespace (`ip netns add NAME`) that nspawn starts in, with
        `network` its network options there, e.g. ("--network-bridge=br0",) for a machine on
        that namespace's bridge (default: --private-network, only `lo`).
    """

    def __init__(
        self,
        rootfs_tarball: Union[str, Path],
        workdir: Union[str, Path],
        binds_ro: Optional[Mapping[Union[str, Path], str]] = None,
        *,
        boot_timeout: float = 60.0,
        keep: bool = False,
        netns: Optional[str] = None,
        network: Sequence[str] = ("--private-network",),
    ) -> None:
        self.tarball = Path(rootfs_tarball)
        self.workdir = Path(workdir)
        self.binds_ro = {Path(h).resolve(): str(g) for h, g in (binds_ro or {}).items()}
        for host, guest in self.binds_ro.items():
            if not host.exists():
                raise FileNotFoundError(f"bind source {host} does not exist")
            if not guest.startswith("/"):
                raise ValueError(f"bind target {guest!r} must be an absolute guest path")
        self.boot_timeout = boot_timeout
        self.keep = keep
        self.netns = netns
        self.network = list(network)
        self.name = "tljh-e2e-" + uuid.uuid4().hex[:8]
        self.base: Optional[Path] = None
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._console: Optional[IO[bytes]] = None
        self._leader: Optional[int] = None
        self.boot_times: list[float] = []  # seconds from nspawn start to "running"/"degraded"
        self.state = ""  # last `systemctl is-system-running` answer

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The guest's / on the host (the on-disk tree; tmpfs mounts like /tmp are not in it)."""
        if self.base is None:
            raise MachineError("machine not unpacked yet")
        return self.base / "root"

    @property
    def console_log(self) -> Path:
        if self.base is None:
            raise MachineError("machine not unpacked yet")
        return self.base / "console.log"

    @property
    def pid(self) -> int:
        """Host PID of the container's PID 1 (systemd)."""
        if self._leader is None or not self.running:
            raise MachineError("machine is not running")
        return self._leader

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> BootedMachine:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Unpack a fresh tree (first call only) and boot it."""
        if self.base is None:
            self._unpack()
        self._boot()

    def stop(self, timeout: float = 30.0) -> int:
        """Clean poweroff; kill nspawn's process group if it does not exit within timeout.

        Returns nspawn's exit status (0 after a clean poweroff).
        """
        if not self.running:
            return self._proc.returncode if self._proc else 0
        with contextlib.suppress(subprocess.SubprocessError, MachineError):
            self.run(["systemctl", "--no-block", "poweroff"], timeout=10)
        return self._wait_exit(timeout)

    def reboot(self, timeout: float = 30.0) -> None:
        """`systemctl reboot` inside, wait for nspawn to exit (status 133), boot the same tree."""
        if not self.running:
            raise MachineError("machine is not running")
        self.run(["systemctl", "--no-block", "reboot"], timeout=10)
        status = self._wait_exit(timeout)
        if status not in (133, 0):
            raise MachineError(f"reboot: systemd-nspawn exited {status}\n{self._console_tail()}")
        self._boot()

    def close(self) -> None:
        """stop() and, unless keep, delete the tree. Safe to call twice."""
        try:
            self.stop()
        finally:
            if self._console:
                self._console.close()
                self._console = None
            if self.base is not None and not self.keep:
                self._remove_tree()

    # --- inside the guest -------------------------------------------------------------------

    def run(
        self,
        cmd: Cmd,
        *,
        check: bool = True,
        user: Optional[str] = None,
        timeout: Optional[float] = 120.0,
        input: Union[bytes, str, None] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        text: bool = True,
    ) -> subprocess.CompletedProcess:
        """Run cmd inside the guest (a list, or a string for `/bin/sh -c`).

        The guest command gets a fixed environment: PATH, LANG=C.UTF-8, HOME, USER, LOGNAME,
        plus `env`. With user=NAME it runs through `setpriv --reuid --regid --init-groups`
        (no PAM session, no logind) with that user's HOME and a user PATH. stdout/stderr are
        str unless text=False. check=True raises CalledProcessError with both in the message.
        """
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(c) for c in cmd]
        argv = self._guest_argv(argv, user=user, env=env, cwd=cwd)
        data = input.encode() if isinstance(input, str) else input
        result = run_host(argv, check=False, timeout=timeout, input=data)
        if text:
            result = subprocess.CompletedProcess(
                result.args,
                result.returncode,
                result.stdout.decode(errors="replace"),
                result.stderr.decode(errors="replace"),
            )
        if check and result.returncode != 0:
            raise _GuestCommandError(result.returncode, cmd, result.stdout, result.stderr)
        return result

    def copy_in(
        self, host_path: Union[str, Path], guest_path: str, mode: Optional[int] = None
    ) -> None:
        """Copy a host file or directory into the running guest, owned by root.

        Streams through the container (so /tmp, /run and bind mounts are the guest's own, and
        symlinks resolve inside the guest). A file keeps its mode unless `mode` is given; a
        directory is copied as guest_path with its contents (tar, modes kept).
        """
        src = Path(host_path)
        if src.is_dir():
            self.run(["mkdir", "-p", guest_path])
            with tempfile.TemporaryDirectory() as tmp:
                archive = Path(tmp) / "in.tar"
                run_host(
                    [
                        "tar",
                        "-C",
                        str(src),
                        "--numeric-owner",
                        "--owner=0",
                        "--group=0",
                        "-cf",
                        str(archive),
                        ".",
                    ],
                    timeout=600,
                )
                with open(archive, "rb") as f:
                    self._run_stdin(["tar", "-xpf", "-", "-C", guest_path], f)
            return
        perm = mode if mode is not None else src.stat().st_mode & 0o7777
        with open(src, "rb") as f:
            script = 'umask 077 && cat > "$1" && chmod "$2" "$1"'
            self._run_stdin(["/bin/sh", "-c", script, "sh", guest_path, f"{perm:o}"], f)

    def read(self, path: str) -> bytes:
        """Read a guest file through the on-disk tree (works while stopped, too).

        Symlinks are resolved relative to the guest root, never the host's. Paths on guest
        tmpfs (/tmp, /run) or /proc are not in the tree: use run(["cat", path]) for those.
        """
        return self.host_path(path).read_bytes()

    def host_path(self, path: str) -> Path:
        """The host path of guest `path`, resolving symlinks inside the guest root."""
        root = self.root
        parts = list(PurePosixPath("/", path).parts[1:])
        resolved = PurePosixPath("/")
        hops = 0
        while parts:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                resolved = resolved.parent
                continue
            candidate = root / str(resolved / part).lstrip("/")
            if candidate.is_symlink():
                hops += 1
                if hops > 40:
                    raise OSError(f"too many levels of symbolic links in guest path {path}")
                target = PurePosixPath(os.readlink(candidate))
                if target.is_absolute():
                    resolved = PurePosixPath("/")
                parts = list(target.parts[1:] if target.is_absolute() else target.parts) + parts
                continue
            resolved = resolved / part
        return root / str(resolved).lstrip("/")

    def failed_units(self) -> list[str]:
        out = self.run(["systemctl", "--failed", "--plain", "--no-legend", "--no-pager"]).stdout
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    # --- internals --------------------------------------------------------------------------

    def _guest_argv(
        self,
        argv: list[str],
        *,
        user: Optional[str],
        env: Optional[Mapping[str, str]],
        cwd: Optional[str],
    ) -> list[str]:
        if user is None or user == "root":
            home, name, path = "/root", "root", GUEST_PATH
        else:
            home, name, path = self._passwd_home(user), user, GUEST_USER_PATH
        genv = {"PATH": path, "LANG": "C.UTF-8", "HOME": home, "USER": name, "LOGNAME": name}
        genv.update(env or {})
        inner = ["/usr/bin/env", "-i"]
        if cwd:
            inner += ["-C", cwd]
        inner += [f"{k}={v}" for k, v in genv.items()] + argv
        prefix = ["nsenter", "-t", str(self.pid), "-a", "-r", "-w"]
        if name != "root":
            prefix += [
                "setpriv",
                f"--reuid={user}",
                f"--regid={self._primary_gid(user)}",
                "--init-groups",
                "--",
            ]
        return prefix + inner

    def _passwd_entry(self, user: str) -> list[str]:
        for line in self.read("/etc/passwd").decode().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return fields
        raise KeyError(f"no user {user!r} in the guest's /etc/passwd")

    def _passwd_home(self, user: str) -> str:
        return self._passwd_entry(user)[5] or "/"

    def _primary_gid(self, user: str) -> str:
        return self._passwd_entry(user)[3]

    def _run_stdin(self, argv: list[str], stdin: IO[bytes]) -> None:
        full = self._guest_argv(argv, user=None, env=None, cwd=None)
        result = run_host(full, check=False, timeout=600, stdin=stdin)
        if result.returncode != 0:
            raise _GuestCommandError(
                result.returncode, argv, result.stdout.decode(), result.stderr.decode()
            )

    def _unpack(self) -> None:
        if not self.tarball.is_file():
            raise FileNotFoundError(f"rootfs tarball {self.tarball} missing (run rootfs.sh)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.base = Path(tempfile.mkdtemp(prefix="machine-", dir=self.workdir))
        self.root.mkdir()
        tar = ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd"]
        tar += ["-xpf", str(self.tarball), "-C", str(self.root)]
        try:
            run_host(tar, timeout=300)
        except subprocess.CalledProcessError as e:
            err = e.stderr.decode(errors="replace")
            raise MachineError(f"unpacking {self.tarball} failed:\n{err}") from None

    def _nspawn_argv(self) -> list[str]:
        # nsenter --net, not `ip netns exec`: the latter remounts /sys, hiding the cgroup tree
        # that nspawn needs.
        argv = [] if self.netns is None else ["nsenter", f"--net=/run/netns/{self.netns}"]
        argv += [
            "systemd-nspawn",
            "-q",
            "-D",
            str(self.root),
            "-b",
            f"--machine={self.name}",
            "--register=no",
            "--keep-unit",
            "--console=pipe",
            *self.network,
            "--resolv-conf=off",
            "--timezone=off",
            "--link-journal=no",
        ]
        for host, guest in self.binds_ro.items():
            argv.append(f"--bind-ro={_escape_colon(str(host))}:{_escape_colon(guest)}")
        return argv

    def _boot(self) -> None:
        if self.running:
            raise MachineError("already running")
        if self._console is None:
            self._console = open(self.console_log, "ab")  # noqa: SIM115 (closed in close())
        t0 = time.monotonic()
        self._console.write(f"\n=== boot {len(self.boot_times) + 1} ===\n".encode())
        self._console.flush()
        self._proc = subprocess.Popen(
            self._nspawn_argv(),
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            start_new_session=True,
        )
        deadline = t0 + self.boot_timeout
        self._leader = None
        while self._leader is None:
            self._check_alive("booting")
            self._leader = self._find_leader()
            if self._leader is None:
                if time.monotonic() > deadline:
                    self._abort("no container PID 1 appeared")
                time.sleep(0.02)
        while True:
            self._check_alive("booting")
            left = deadline - time.monotonic()
            if left <= 0:
                self._abort(f"not running after {self.boot_timeout:.0f} s (state {self.state!r})")
            try:
                r = run_host(
                    [
                        "nsenter",
                        "-t",
                        str(self._leader),
                        "-a",
                        "-r",
                        "-w",
                        "/usr/bin/env",
                        "-i",
                        f"PATH={GUEST_PATH}",
                        "systemctl",
                        "is-system-running",
                        "--wait",
                    ],
                    check=False,
                    timeout=max(left, 1),
                )
                self.state = r.stdout.decode().strip()
            except subprocess.TimeoutExpired:
                continue
            if self.state in ("running", "degraded"):
                break
            if self.state in ("maintenance", "stopping"):
                self._abort(f"system is {self.state!r}")
            time.sleep(0.05)  # "offline"/"initializing": systemd's socket not there yet
        self.boot_times.append(time.monotonic() - t0)

    def _find_leader(self) -> Optional[int]:
        """The descendant of nspawn that is PID 1 in its own PID namespace."""
        assert self._proc is not None
        todo = [self._proc.pid]
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/status") as f:
                    nspid = next((ln.split()[1:] for ln in f if ln.startswith("NSpid:")), [])
                children: list[int] = []
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        children += [int(c) for c in f.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
            if len(nspid) >= 2 and nspid[-1] == "1":
                try:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                except OSError:
                    comm = ""
                if comm in ("systemd", "init"):
                    return pid
                continue  # namespaces set up, systemd not exec'd yet
            todo += children
        return None

    def _check_alive(self, what: str) -> None:
        if not self.running:
            code = self._proc.returncode if self._proc else None
            raise MachineError(f"systemd-nspawn exited {code} while {what}\n{self._console_tail()}")

    def _wait_exit(self, timeout: float) -> int:
        assert self._proc is not None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM to nspawn asks the container's systemd to power off; then force.
            _killpg(self._proc.pid, signal.SIGTERM)
            try:
                return self._proc.wait(10)
            except subprocess.TimeoutExpired:
                _killpg(self._proc.pid, signal.SIGKILL)
                return self._proc.wait()
        finally:
            self._leader = None

    def _abort(self, why: str) -> None:
        if self._proc is not None and self._proc.poll() is None:
            _killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        raise MachineError(f"boot failed: {why}\n{self._console_tail()}")

    def _console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console_log.read_text(errors="replace")
        except (OSError, MachineError):
            return ""
        return "--- console.log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def _remove_tree(self) -> None:
        assert self.base is not None
        if self.running:
            raise MachineError("refusing to delete the tree of a running machine")
        mounts = _mounts_under(self.base)
        if mounts:
            raise MachineError(f"refusing to delete {self.base}: mounts under it: {mounts}")
        run_host(["rm", "-rf", "--one-file-system", str(self.base)], timeout=300)
        self.base = None


class _GuestCommandError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        cmd = self.cmd if isinstance(self.cmd, str) else shlex.join(map(str, self.cmd))
        out = self.stdout if isinstance(self.stdout, str) else (self.stdout or b"").decode()
        err = self.stderr if isinstance(self.stderr, str) else (self.stderr or b"").decode()
        return (
            f"guest command {cmd!r} exited {self.returncode}\n"
            f"--- stdout ---\n{out[-4000:]}\n--- stderr ---\n{err[-4000:]}"
        )


def _escape_colon(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:")


__all__ = [
    "BootedMachine",
    "MachineError",
    "clean_env",
    "ensure_rootfs",
    "run_host",
    "DEFAULT_CACHE_DIR",
]

"""A manifest of a server root (path, type, mode, sha256 of regular files, link targets), the
documented volatile state left out of it, and what one manifest lost against another."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tljh_lock.apply.observe import MARKER

# What differs between two uninterrupted applies of the same lock into the same path, and why.
# Content is left out, existence and mode are still compared.
VOLATILE_CONTENT = {
    "opt/tljh/state/proxy.env": "the proxy's auth token, random, generated once per server",
    "opt/tljh/state/traefik-api.secret": "TLJH's traefik API password, random, generated once "
                                         "per server",
    "opt/tljh/state/apply.lock": "the pid of the last apply that held the lock",
    "opt/tljh/state/trees-seen.json": "the built directories' tree hashes with the stat "
                                      "signatures (inodes, ctimes) they were taken at: a cache",
}
VOLATILE_NOTES = {
    **VOLATILE_CONTENT,
    "opt/tljh/state/state.json": "`applied-at` of each generation is a timestamp: compared "
                                 "without it",
    "__pycache__/": "bytecode python writes at run time (tree.py skips it for the same reason)",
}
# The modes TLJH gives what it keeps and what apply writes (TLJH's installer, bootstrap and
# tljh.traefik; 0440 for sudoers, which visudo asks for): every reference manifest must have
# them, so every case that reaches its reference has them too.
EXPECTED_MODES = {
    "opt/tljh": "0755",
    "opt/tljh/state": "0700",
    "opt/tljh/state/rules": "0700",
    "opt/tljh/config": "0700",
    "opt/tljh/config/jupyterhub_config.d": "0700",
    "opt/tljh/config/traefik_config.d": "0700",
    "opt/tljh/installer.log": "0500",
    "opt/tljh/config/config.yaml": "0600",
    "opt/tljh/state/traefik-api.secret": "0600",
    "opt/tljh/state/traefik.toml": "0600",
    "opt/tljh/state/acme.json": "0600",
    "opt/tljh/state/rules/dynamic.toml": "0600",
    "opt/tljh/state/rules/rules.toml": "0600",
    "opt/tljh/state/rules/tljh-lock-proxy.toml": "0600",
    "opt/tljh/state/proxy.env": "0600",
    "etc/sudoers.d/jupyterhub-admins": "0440",
    "etc/systemd/system/jupyterhub.service": "0644",
    "etc/systemd/system/traefik.service": "0644",
    "etc/systemd/system/configurable-http-proxy.service": "0644",
}
_BUILT = re.compile(r"opt/tljh/(hub|node|proxy)\.[0-9a-f]{16}(\.[0-9]+)?")
STATE_JSON = "opt/tljh/state/state.json"


@dataclass(frozen=True)
class Entry:
    kind: str  # "file", "dir", "link", "other"
    mode: str
    digest: str  # sha256 of a file's (normalized) content, a link's target, "" otherwise
    size: int = field(default=0, compare=False)  # for the bytes lost, not compared


def _normalized(rel: str, data: bytes) -> bytes:
    if rel.endswith("opt/tljh/state/state.json"):
        try:
            state = json.loads(data)
            for generation in state.get("generations", []):
                generation.pop("applied-at", None)
            return json.dumps(state, sort_keys=True).encode()
        except ValueError:
            return data  # a damaged state file must show as such
    return data


def manifest(root: Path, skip: tuple[str, ...] = ()) -> dict[str, Entry]:
    """Every path below `root` (relative), but `__pycache__` and the `skip` prefixes."""
    found: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if skip and rel.startswith(skip):
                continue
            st = os.lstat(path)
            mode = f"{st.st_mode & 0o7777:04o}"
            if os.path.islink(path):
                found[rel] = Entry("link", "", os.readlink(path))
            elif os.path.isdir(path):
                found[rel] = Entry("dir", mode, "")
            elif os.path.isfile(path):
                if rel in VOLATILE_CONTENT:
                    digest = "(volatile)"
                else:
                    with open(path, "rb") as fh:
                        digest = hashlib.sha256(_normalized(rel, fh.read())).hexdigest()
                found[rel] = Entry("file", mode, digest, st.st_size)
            else:
                found[rel] = Entry("other", mode, "")
    return found


def mode_problems(found: dict[str, Entry]) -> list[str]:
    """Where a manifest lacks a path of EXPECTED_MODES or has it with another mode."""
    problems = []
    for path, mode in sorted(EXPECTED_MODES.items()):
        entry = found.get(path)
        if entry is None:
            problems.append(f"{path}: missing (TLJH's mode is {mode})")
        elif entry.mode != mode:
            problems.append(f"{path}: mode {entry.mode}, TLJH's is {mode}")
    return problems


@dataclass
class Loss:
    """What `got` lacks or has wrong against `want`, and what it has in excess."""

    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    bytes_lost: int = 0

    @property
    def files_lost(self) -> int:
        return len(self.missing) + len(self.changed)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.changed or self.extra)

    def only_kept_builds(self, after: dict[str, Entry]) -> bool:
        """True if all that changed is what a failed apply may keep: complete directories it
        built beside the ones in use (named by key, linked by nothing, reused by the next
        apply, collected after a later one) and their records in state.json."""
        built = {m.group(0) for path in self.extra for m in [_BUILT.match(path)] if m}
        return (not self.missing and set(self.changed) <= {STATE_JSON}
                and all(_BUILT.match(path) for path in self.extra)
                and all(f"{d}/{MARKER}" in after for d in built)
                and not any(e.kind == "link" and e.digest in {d.rsplit("/", 1)[1] for d in built}
                            for e in after.values()))

    def describe(self, limit: int = 6) -> str:
        parts = []
        for label, paths in (("missing", self.missing), ("changed", self.changed),
                             ("extra", self.extra)):
            if paths:
                shown = ", ".join(paths[:limit]) + (" ..." if len(paths) > limit else "")
                parts.append(f"{len(paths)} {label}: {shown}")
        return "; ".join(parts) or "identical"


def compare(want: dict[str, Entry], got: dict[str, Entry]) -> Loss:
    loss = Loss()
    for path, entry in sorted(want.items()):
        other = got.get(path)
        if other is None:
            loss.missing.append(path)
            loss.bytes_lost += entry.size
        elif other != entry:
            loss.changed.append(path)
            loss.bytes_lost += entry.size
    loss.extra = sorted(set(got) - set(want))
    return loss


def invalid_sudoers(root: Path, cache: dict[tuple[str, int, int, int], str | None]) -> list[str]:
    """Files sudo would read from the root's sudoers.d (names without a dot) that `visudo -cs`
    refuses; `cache` keeps the verdict per (name, inode, size, mtime) between polls."""
    directory = root / "etc" / "sudoers.d"
    problems = []
    try:
        names = [n for n in os.listdir(directory) if "." not in n and not n.endswith("~")]
    except FileNotFoundError:
        return []
    for name in names:
        path = directory / name
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        key = (name, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in cache:
            result = subprocess.run(["/usr/sbin/visudo", "-cs", "-f", path],
                                    capture_output=True, text=True)
            mode_ok = st.st_mode & 0o7777 == 0o440
            cache[key] = None if result.returncode == 0 and mode_ok else \
                f"{path}: visudo exit {result.returncode}, mode {st.st_mode & 0o7777:04o}: " \
                f"{(result.stdout + result.stderr).strip()[:200]}"
        if cache[key]:
            problems.append(str(cache[key]))
    return problems

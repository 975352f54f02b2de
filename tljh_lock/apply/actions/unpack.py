"""Unpack a verified release tarball (Node.js) whose files may include relative symlinks
(`bin/npm -> ../lib/node_modules/npm/bin/npm-cli.js`). The archive is trusted by hash, but is
still checked member by member, since this python may lack tarfile's extraction filters."""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from pathlib import Path

from tljh_lock.apply.actions.context import Context
from tljh_lock.apply.steps import UnpackBuild
from tljh_lock.core.errors import IntegrityError


def build_release(step: UnpackBuild, ctx: Context, path: Path) -> None:
    assert step.artifact is not None
    ctx.log(f"unpacking {step.artifact.name} into {path}")
    unpack_tree(ctx.artifact(step.artifact), path, step.top_dir, what=step.artifact.name)


def unpack_tree(archive: Path, dest: Path, top_dir: str | None, what: str) -> None:
    """Extract the files below `top_dir` (or the whole archive) into the new directory `dest`."""
    dest.mkdir(parents=True)
    links: set[str] = set()
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                rel = _relative(member.name, top_dir, what)
                if rel is None:
                    continue
                # A lexical check of a link is only sound if no earlier link is on its way.
                parents = rel.split("/")[:-1]
                if any("/".join(parents[:i + 1]) in links for i in range(len(parents))):
                    raise IntegrityError(f"{what}: {member.name} lies below a symlink")
                target = dest / rel
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    with extracted, open(target, "xb") as out:
                        shutil.copyfileobj(extracted, out)
                    os.chmod(target, member.mode & 0o755)
                elif member.issym():
                    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel),
                                                                 member.linkname))
                    if member.linkname.startswith("/") or resolved.startswith("../") or \
                            resolved == "..":
                        raise IntegrityError(f"{what}: {member.name} links outside the tree "
                                             f"({member.linkname})")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(member.linkname, target)
                    links.add(rel)
                else:
                    raise IntegrityError(f"{what}: {member.name} is neither a file, a "
                                         "directory nor a symlink")
    except tarfile.TarError as exc:
        raise IntegrityError(f"{what}: {archive.name} is not a readable archive: {exc}") from None


def _relative(name: str, top_dir: str | None, what: str) -> str | None:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise IntegrityError(f"{what}: unsafe member name {name!r}")
    if top_dir is not None:
        if not parts or parts[0] != top_dir:
            raise IntegrityError(f"{what}: member {name!r} is outside {top_dir}/")
        parts = parts[1:]
    return "/".join(parts) or None

"""Where the applier takes artifacts from: a content-addressed directory (`sha256/<hex>`), the
layout of both the store and an unpacked bundle. Every file is rehashed before use.

A bundle is unpacked (by `safe_archive`, which checks every member against the manifest) only
when a step needs an artifact: a no-op apply reads just the bundle's manifest."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tljh_lock.bundle import safe_archive
from tljh_lock.core.errors import IntegrityError, TljhLockError
from tljh_lock.core.files import file_sha256
from tljh_lock.lock.kinds.pip import Source
from tljh_lock.lock.model import Artifact
from tljh_lock.store.cas import Store


class ArtifactSource:
    def __init__(self, directory: Path | None, built: dict[str, Artifact] | None = None,
                 sources: dict[str, str] | None = None) -> None:
        self._directory = directory  # holds sha256/<hex>; None until a bundle is unpacked
        # input (an sdist's sha256, or a source pin's `build_input`) -> the wheel built from it
        self.built = dict(built or {})
        self.sources = dict(sources or {})  # "<name>-<commit>" -> sha256 of the pin's archive
        self._verified: set[str] = set()

    @classmethod
    def from_store(cls, store: Path) -> ArtifactSource:
        """The store of `fetch`/`bundle`, with its records of built wheels and source pins."""
        records = Store(store)
        built: dict[str, Artifact] = {}
        for record in records.records("built"):
            built[str(record["source-sha256"])] = Artifact(
                str(record["name"]), "", int(record["size"]), str(record["sha256"]))
        sources = {f"{r['name']}-{r['commit']}": str(r["sha256"])
                   for r in records.records("sources")}
        return cls(store, built, sources)

    def directory(self, scratch: Path | None) -> Path:
        """The directory holding `sha256/<hex>`."""
        assert self._directory is not None
        return self._directory

    def path(self, artifact: Artifact, scratch: Path | None = None) -> Path:
        """The file of `artifact`, rehashed on first use. `scratch`: where the run keeps its
        temporary files (a bundle is unpacked there)."""
        directory = self.directory(scratch)
        path = directory / "sha256" / artifact.sha256
        if artifact.sha256 in self._verified:
            return path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise TljhLockError(
                f"{artifact.name} (sha256 {artifact.sha256}) is not in {directory}",
                hint="fetch it first (`tljh-lock fetch`), or apply from a bundle made for this "
                     "platform",
            ) from None
        if artifact.size is not None and size != artifact.size:
            raise IntegrityError(f"{path} ({artifact.name}): size {size}, the lock says "
                                 f"{artifact.size}")
        actual = file_sha256(path)
        if actual != artifact.sha256:
            raise IntegrityError(f"{path} ({artifact.name}): sha256 {actual}, the lock says "
                                 f"{artifact.sha256}")
        self._verified.add(artifact.sha256)
        return path

    def built_wheel(self, input_sha256: str, what: str) -> Artifact:
        try:
            return self.built[input_sha256]
        except KeyError:
            raise TljhLockError(
                f"{what} needs a build, and no wheel built from it is at hand",
                hint="apply from a bundle, which carries wheels built from sources and sdists, "
                     "or run `tljh-lock bundle` once to build them into the store",
            ) from None

    def built_from_source(self, pin: Source, what: str) -> Artifact:
        archive = self.sources.get(f"{pin.name}-{pin.commit}")
        if archive is None:
            raise TljhLockError(f"{what}: the archive of {pin.name} at {pin.commit} is not at "
                                "hand", hint="fetch it first, or apply from a bundle")
        return self.built_wheel(pin.build_input(archive), what)

    def close(self) -> None:
        """Remove what was unpacked for this run."""


class BundleSource(ArtifactSource):
    """A bundle, unpacked into a temporary directory on first use."""

    def __init__(self, bundle: Path) -> None:
        self.bundle = bundle
        self.manifest = safe_archive.read_manifest(bundle)
        built = {key: Artifact(e.name, "", e.size, e.sha256)
                 for key, e in self.manifest.built.items()}
        sources = {key: str(record["sha256"]) for key, record in self.manifest.sources.items()}
        super().__init__(None, built, sources)
        self._tmp: Path | None = None

    @property
    def lock_sha256(self) -> str:
        return self.manifest.lock.sha256

    def directory(self, scratch: Path | None) -> Path:
        if self._directory is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="tljh-lock-bundle-", dir=scratch))
            safe_archive.extract(self.bundle, self._tmp / "bundle", self.lock_sha256)
            self._directory = self._tmp / "bundle"
        return self._directory

    def verify(self) -> bytes:
        """Check the whole bundle without unpacking it; the lock's bytes."""
        return safe_archive.verify(self.bundle, self.lock_sha256)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            self._directory = None

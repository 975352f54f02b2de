"""The fixture upstream itself: HTTP behaviour, fault modes, artifacts real tools accept."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import pytest

from tests.conftest import REPO, SHARED
from tests.upstream import (
    FixtureUpstream,
    archive_tree_hash,
    build_fixture_backend_wheel,
    build_sdist,
    build_wheel,
    dirhash_h1,
    generate_hub_scenario,
    make_source_archive,
)
from tests.upstream import fixture_backend as fb
from tests.upstream.server import OVERSIZE_EXTRA, STALL_PREFIX

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

UV = Path(sys.executable).with_name("uv")
TLJH_FACTS = SHARED / "upstream-facts" / "tljh.toml"

# [tree-hash-test-vector] of the shared upstream facts (tljh.toml), copied so the test runs
# without them; test_dirhash_vector_matches_shared_facts checks the copy when they are present.
VECTOR_FILES = {
    "README.md": "hello\n",
    "pkg/__init__.py": "",
    "pkg/cli.py": "print('tljh')\n",
    "setup.py": "from setuptools import setup\nsetup()\n",
}
VECTOR_EXPECTED = "h1:NMp1fwJZUq6LXqEE4XZayJVLGQpeKEbVXb2NREx0Zns="


# --- fixtures ---------------------------------------------------------------------------------




@pytest.fixture(scope="module")
def flat_dists(
    scenario: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Every published distribution in one folder, for pip --find-links."""
    root, facts = scenario
    flat = tmp_path_factory.mktemp("flat")
    for name, info in facts["files"].items():
        shutil.copyfile(_local(root, info["url"]), flat / name)
    return flat


def _local(root: Path, canonical_url: str) -> Path:
    """Where the fixture root keeps the file of a canonical URL."""
    return root / FixtureUpstream.path_for(canonical_url).lstrip("/")


def _get(
    upstream: FixtureUpstream,
    path: str,
    headers: Optional[dict[str, str]] = None,
    method: str = "GET",
    timeout: float = 5.0,
) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
    conn = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=timeout)
    conn.request(method, path, headers=headers or {})
    return conn.getresponse(), conn


def _fetch(upstream: FixtureUpstream, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
    resp, conn = _get(upstream, path, **kw)
    try:
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _file(scenario: tuple[Path, dict[str, Any]], name: str) -> tuple[str, bytes]:
    """(URL path on the server, contents) of a published file."""
    root, facts = scenario
    url = facts["files"][name]["url"]
    return FixtureUpstream.path_for(url), _local(root, url).read_bytes()


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    # No PIP_* / UV_* from this machine: its pip configuration adds indexes and constraints.
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), **extra}


def _run(cmd: list[str], env: dict[str, str], cwd: Optional[Path] = None) -> str:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _pip(venv: Path, home: Path, *args: str) -> str:
    env = _clean_env(home, PIP_CONFIG_FILE=os.devnull)
    cmd = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    return _run([*cmd, "--disable-pip-version-check", "--no-input", *args], env)


def _venv(path: Path) -> Path:
    # Without pip: the dev venv's pip drives it through --python, which is much faster.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


# --- hashes and artifacts ---------------------------------------------------------------------


def test_dirhash_test_vector() -> None:
    files = {p: c.encode() for p, c in VECTOR_FILES.items()}
    assert dirhash_h1(files) == VECTOR_EXPECTED


@pytest.mark.skipif(not TLJH_FACTS.is_file(),
                    reason=f"needs {TLJH_FACTS} (../shared beside the clone, or set TLJH_SHARED)")
def test_dirhash_vector_matches_shared_facts() -> None:
    vector = tomllib.loads(TLJH_FACTS.read_text())["tree-hash-test-vector"]
    assert vector["files"] == VECTOR_FILES
    assert vector["expected"] == VECTOR_EXPECTED


def test_scenario_is_deterministic(scenario: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, facts = scenario
    assert generate_hub_scenario(tmp_path) == facts
    assert facts["tljh"]["commit"] == "d1ce" * 10


def test_source_archive_tree_hash(scenario: tuple[Path, dict[str, Any]]) -> None:
    root, facts = scenario
    tljh = facts["tljh"]
    archive = _local(root, tljh["archive_url"])
    assert archive.relative_to(root).as_posix() == (
        f"github.com/jupyterhub/the-littlest-jupyterhub/archive/{tljh['commit']}.tar.gz"
    )
    assert archive_tree_hash(archive) == tljh["tree_hash"]
    with tarfile.open(archive) as tf:
        members = {m.name: m for m in tf.getmembers()}
    top = tljh["top_dir"]
    assert {n.split("/")[0] for n in members} == {top}
    assert members[top].isdir()
    assert members[f"{top}/bootstrap/bootstrap.py"].mode == 0o755
    assert members[f"{top}/tljh/config.py"].mode == 0o644


def test_make_source_archive_rejects_unknown_executable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nope"):
        make_source_archive(tmp_path / "a.tar.gz", "top", {"a": "x"}, executable=("nope",))


def test_wheel_is_well_formed(tmp_path: Path) -> None:
    tag = "cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64"
    wheel = build_wheel(
        tmp_path,
        "Fx.Thing",
        "1.0",
        requires_dist=('fx-web ; python_version < "3.11"',),
        requires_python=">=3.9",
        tag=tag,
        entry_points={"console_scripts": {"fx-thing": "fx_thing:main"}},
    )
    assert wheel.name == f"fx_thing-1.0-{tag}.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert names[-1] == "fx_thing-1.0.dist-info/RECORD"
        record = zf.read(names[-1]).decode().splitlines()
        for line in record[:-1]:
            path, digest, size = line.split(",")
            data = zf.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode() and int(size) == len(data)
        assert record[-1] == "fx_thing-1.0.dist-info/RECORD,,"
        wheel_file = zf.read("fx_thing-1.0.dist-info/WHEEL").decode()
        assert "Root-Is-Purelib: false" in wheel_file
        assert "Tag: cp39-abi3-manylinux2014_x86_64" in wheel_file
        metadata = zf.read("fx_thing-1.0.dist-info/METADATA").decode()
        assert 'Requires-Dist: fx-web ; python_version < "3.11"' in metadata
        assert (
            "fx-thing = fx_thing:main"
            in zf.read("fx_thing-1.0.dist-info/entry_points.txt").decode()
        )
        assert all(i.date_time == (2020, 1, 1, 0, 0, 0) for i in zf.infolist())


def test_toml_subset_parser_agrees_with_tomllib(
    scenario: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """The backend's fallback parser (for Pythons without tomllib) on every pyproject we make."""
    root, facts = scenario
    texts = []
    with tarfile.open(_local(root, facts["tljh"]["archive_url"])) as tf:
        fh = tf.extractfile(f"{facts['tljh']['top_dir']}/pyproject.toml")
        assert fh is not None
        texts.append(fh.read().decode())
    sdist = build_sdist(
        tmp_path,
        "fx-x",
        "1",
        requires_dist=('a[b,c]>=1 ; python_version < "3.11"',),
        requires_python=">=3.9",
        scripts={"fx-x": "fx_x:main"},
    )
    with tarfile.open(sdist) as tf:
        fh = tf.extractfile("fx_x-1/pyproject.toml")
        assert fh is not None
        texts.append(fh.read().decode())
    texts.append('[a]\n"k.q" = [ # comment\n  "x#y", \'z\',\n  true,\n]\nn = 3 # c\n')
    for text in texts:
        assert fb.parse_toml_subset(text) == tomllib.loads(text)


# --- HTTP -------------------------------------------------------------------------------------

WHEEL = "fx_web-1.0-py3-none-any.whl"


def test_layout_and_mirror_map(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream
) -> None:
    _, facts = scenario
    mirrors = upstream.mirror_map()
    assert (
        mirrors["https://files.pythonhosted.org/"] == upstream.base_url + "files.pythonhosted.org/"
    )
    assert set(mirrors) >= {"https://pypi.org/", "https://github.com/", "https://nodejs.org/"}
    info = facts["files"][WHEEL]
    served = upstream.url_for(info["url"])
    canonical_prefix = "https://files.pythonhosted.org/"
    assert served == mirrors[canonical_prefix] + info["url"][len(canonical_prefix) :]
    status, headers, body = _fetch(upstream, urlsplit(served).path)
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == info["sha256"]
    assert int(headers["content-length"]) == info["size"] == len(body)
    assert headers["accept-ranges"] == "bytes"


def test_range_requests(scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream) -> None:
    path, data = _file(scenario, WHEEL)
    size = len(data)
    status, headers, body = _fetch(upstream, path, headers={"Range": "bytes=0-9"})
    assert (status, body) == (206, data[:10])
    assert headers["content-range"] == f"bytes 0-9/{size}"
    assert headers["content-length"] == "10"
    status, headers, body = _fetch(upstream, path, headers={"Range": "bytes=100-"})
    assert (status, body, headers["content-range"]) == (
        206,
        data[100:],
        f"bytes 100-{size - 1}/{size}",
    )
    status, _, body = _fetch(upstream, path, headers={"Range": "bytes=-7"})
    assert (status, body) == (206, data[-7:])
    status, headers, _ = _fetch(upstream, path, headers={"Range": f"bytes={size}-"})
    assert (status, headers["content-range"]) == (416, f"bytes */{size}")
    status, _, body = _fetch(upstream, path, headers={"Range": "bytes=0-1,5-6"})
    assert (status, body) == (200, data)  # multiple ranges are not supported: whole file
    assert upstream.requests[0] == ("GET", path, "bytes=0-9")


def test_head(scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream) -> None:
    path, data = _file(scenario, WHEEL)
    status, headers, body = _fetch(upstream, path, method="HEAD")
    assert (status, body, int(headers["content-length"])) == (200, b"", len(data))
    assert _fetch(upstream, path + "x", method="HEAD")[0] == 404


def test_simple_index_negotiation(upstream: FixtureUpstream) -> None:
    status, headers, body = _fetch(
        upstream,
        "/pypi.org/simple/fx-hub/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.01"},
    )
    assert status == 200
    assert headers["content-type"] == "application/vnd.pypi.simple.v1+json"
    page = json.loads(body)
    assert page["meta"]["api-version"] == "1.1"
    assert page["name"] == "fx-hub" and page["versions"] == ["1.0.0", "1.1.0"]
    first = page["files"][0]
    assert first["url"].startswith("../../../files.pythonhosted.org/packages/")
    assert first["core-metadata"]["sha256"] and first["yanked"] is False
    # The PEP 658 metadata file is where the relative URL + ".metadata" points.
    target = "/" + first["url"].replace("../../../", "") + ".metadata"
    status, _, metadata = _fetch(upstream, target)
    assert (
        status == 200 and hashlib.sha256(metadata).hexdigest() == first["core-metadata"]["sha256"]
    )
    assert b'Requires-Dist: fx-backport>=1 ; python_version < "3.11"' in metadata

    status, headers, body = _fetch(upstream, "/pypi.org/simple/fx-hub/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'data-core-metadata="sha256=' in body and b"#sha256=" in body
    status, headers, _ = _fetch(upstream, "/pypi.org/simple/fx-backport")
    assert (status, headers["location"]) == (301, "/pypi.org/simple/fx-backport/")
    status, _, body = _fetch(upstream, "/pypi.org/simple/fx-backport/")
    assert b'data-requires-python="&gt;=3.8"' in body
    status, _, body = _fetch(
        upstream, "/pypi.org/simple/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert {p["name"] for p in json.loads(body)["projects"]} >= {"fx-hub", "fx-otp"}


def test_no_listing_no_escape(upstream: FixtureUpstream) -> None:
    assert _fetch(upstream, "/files.pythonhosted.org/packages/")[0] == 404
    assert _fetch(upstream, "/pypi.org/../pypi.org/simple/")[0] == 404
    assert _fetch(upstream, "/pypi.org/simple/%2e%2e/simple/")[0] == 404
    assert _fetch(upstream, "/nowhere.example/x")[0] == 404


def test_json_document_directory(tmp_path: Path) -> None:
    """An npm packument: a URL that is also the prefix of the tarball URLs."""
    pkg = tmp_path / "registry.npmjs.org" / "configurable-http-proxy"
    (pkg / "-").mkdir(parents=True)
    (pkg / "index.json").write_text('{"name": "configurable-http-proxy"}')
    (pkg / "-" / "configurable-http-proxy-5.3.0.tgz").write_bytes(b"tgz")
    with FixtureUpstream(tmp_path) as upstream:
        status, headers, body = _fetch(upstream, "/registry.npmjs.org/configurable-http-proxy")
        assert (status, headers["content-type"]) == (200, "application/json")
        assert json.loads(body)["name"] == "configurable-http-proxy"
        path = "/registry.npmjs.org/configurable-http-proxy/-/configurable-http-proxy-5.3.0.tgz"
        assert _fetch(upstream, path)[2] == b"tgz"


def test_fault_truncate_once(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream
) -> None:
    path, data = _file(scenario, WHEEL)
    upstream.faults[path] = "truncate-once"
    resp, conn = _get(upstream, path)
    assert int(resp.headers["Content-Length"]) == len(data)
    with pytest.raises(http.client.IncompleteRead) as excinfo:
        resp.read()
    assert excinfo.value.partial == data[: len(data) // 2]
    conn.close()
    assert _fetch(upstream, path)[2] == data
    assert (
        _fetch(upstream, path, headers={"Range": f"bytes={len(data) // 2}-"})[2]
        == (data[len(data) // 2 :])
    )
    assert [m for m, p, _ in upstream.requests if p == path] == ["GET", "GET", "GET"]


def test_fault_corrupt(scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream) -> None:
    path, data = _file(scenario, WHEEL)
    upstream.faults[path] = "corrupt"
    status, headers, body = _fetch(upstream, path)
    assert status == 200 and len(body) == len(data) == int(headers["content-length"])
    assert sum(a != b for a, b in zip(body, data)) == 1


def test_fault_oversize(scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream) -> None:
    path, data = _file(scenario, WHEEL)
    upstream.faults[path] = "oversize"
    status, headers, body = _fetch(upstream, path)
    assert int(headers["content-length"]) == len(body) == len(data) + OVERSIZE_EXTRA
    assert status == 200 and body.startswith(data)


def test_fault_stall_released_by_stop(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream
) -> None:
    path, data = _file(scenario, WHEEL)
    upstream.faults[path] = "stall"
    resp, conn = _get(upstream, path, timeout=0.5)
    assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(data)
    assert resp.read(STALL_PREFIX) == data[:STALL_PREFIX]
    with pytest.raises(socket.timeout):
        resp.read(1)
    conn.close()
    started = time.monotonic()
    upstream.stop()
    assert time.monotonic() - started < 3


def test_fault_html_and_404(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream
) -> None:
    path, _ = _file(scenario, WHEEL)
    upstream.faults[path] = "html"
    status, headers, body = _fetch(upstream, path)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert body.startswith(b"<!DOCTYPE html>")
    upstream.faults[path] = "404"
    assert _fetch(upstream, path)[0] == 404
    del upstream.faults[path]
    assert _fetch(upstream, path)[0] == 200


def test_cli_serve(scenario: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    pidfile = tmp_path / "upstream.pid"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.upstream",
            "serve",
            str(scenario[0]),
            "--pidfile",
            str(pidfile),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:") and base.endswith("/")
        rest = proc.stdout.readline() + "".join(proc.stdout.readline() for _ in range(8))
        mirrors = tomllib.loads(rest)["mirrors"]
        assert mirrors["https://pypi.org/"] == base + "pypi.org/"
        assert int(pidfile.read_text()) == proc.pid
        port = int(urlsplit(base).port or 0)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/pypi.org/simple/")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert not pidfile.exists()


# --- real tools against it --------------------------------------------------------------------


def test_uv_compiles_universally(upstream: FixtureUpstream, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.in"
    requirements.write_text("fx-hub\nfx-auth\n")
    env = _clean_env(tmp_path, UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_NO_CONFIG="1")
    out = _run(
        [
            str(UV), "pip", "compile", "--no-config", "--no-python-downloads", "--quiet",
            "--index-url", upstream.base_url + "pypi.org/simple",
            "--universal", "--python-version", "3.9", "--no-header", "--no-annotate",
            str(requirements),
        ],
        env,
    )  # fmt: skip
    pins = sorted(line for line in out.splitlines() if line and not line.startswith("#"))
    assert pins == [
        "fx-auth==1.0",
        "fx-backport==1.0 ; python_full_version < '3.11'",
        "fx-hub==1.1.0",
        "fx-otp==1.0.1",
        "fx-speedups==2.0",
        "fx-web==1.1",
    ]
    paths = {p for _, p, _ in upstream.requests}
    assert "/pypi.org/simple/fx-otp/" in paths


def test_pip_installs_offline_and_builds_sdists(
    scenario: tuple[Path, dict[str, Any]], flat_dists: Path, tmp_path: Path
) -> None:
    """Wheels install, fx-otp's sdist and the TLJH tree build with fixture-backend in isolation."""
    root, facts = scenario
    venv = _venv(tmp_path / "venv")
    archive = _local(root, facts["tljh"]["archive_url"])
    _pip(
        venv,
        tmp_path,
        "install",
        "--no-index",
        "--find-links",
        str(flat_dists),
        "fx-hub",
        str(archive),
    )
    listing = json.loads(_pip(venv, tmp_path, "list", "--format", "json"))
    installed = {d["name"]: d["version"] for d in listing}
    assert installed == {
        "fx-auth": "1.0",
        "fx-hub": "1.1.0",
        "fx-otp": "1.0.1",
        "fx-speedups": "2.0",
        "fx-web": "1.1",
        "the-littlest-jupyterhub": "2.0.0",
        **({"fx-backport": "1.0"} if sys.version_info < (3, 11) else {}),
    }
    out = _run([str(venv / "bin" / "tljh-config"), "show"], _clean_env(tmp_path))
    assert out == "tljh-config (fixture) show\n"


def test_pip_wheel_without_build_isolation(
    scenario: tuple[Path, dict[str, Any]], flat_dists: Path, tmp_path: Path
) -> None:
    venv = _venv(tmp_path / "venv")
    _pip(venv, tmp_path, "install", "--no-index", str(build_fixture_backend_wheel(tmp_path)))
    out_dir = tmp_path / "wheels"
    sdist = flat_dists / "fx_otp-1.0.1.tar.gz"
    _pip(venv, tmp_path, "wheel", "--no-index", "--no-build-isolation", "--no-deps",
         "--wheel-dir", str(out_dir), str(sdist))  # fmt: skip
    built = out_dir / "fx_otp-1.0.1-py3-none-any.whl"
    # The backend and the test builder share one writer: same inputs, same bytes.
    direct = build_wheel(tmp_path / "direct", "fx-otp", "1.0.1", requires_dist=("fx-web",))
    assert built.read_bytes() == direct.read_bytes()

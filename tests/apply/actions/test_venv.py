"""A wheel installs only under its own name and version, whatever its file is called."""

from __future__ import annotations

import pytest

from tests.upstream import build_wheel
from tljh_lock.apply.actions.venv import check_wheel_metadata
from tljh_lock.core.errors import IntegrityError


def test_a_wheel_under_another_versions_file_name_is_refused(tmp_path):
    old = build_wheel(tmp_path / "old", "fx-hub", "1.0.0")
    new = build_wheel(tmp_path / "new", "fx-hub", "1.1.0")
    check_wheel_metadata(new, new.name, "hub")
    with pytest.raises(IntegrityError, match=r"holds fx-hub 1\.0\.0, not fx-hub 1\.1\.0"):
        check_wheel_metadata(old, new.name, "hub")
    other = build_wheel(tmp_path / "other", "fx-web", "1.1.0")
    with pytest.raises(IntegrityError, match="holds fx-web 1.1.0, not fx-hub 1.1.0"):
        check_wheel_metadata(other, new.name, "hub")
    not_a_zip = tmp_path / "fx_hub-1.1.0-py3-none-any.whl"
    not_a_zip.write_bytes(b"<html>")
    with pytest.raises(IntegrityError, match="not a wheel"):
        check_wheel_metadata(not_a_zip, not_a_zip.name, "hub")

"""A file written whole or not at all (devicectl/core/whole_files.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from devicectl.core import whole_files
from devicectl.core.whole_files import write_whole


def test_a_file_is_replaced_whole_and_nothing_is_left_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "db"
    path.write_bytes(b"old")
    assert write_whole(path, b"new") and path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["db"]


def test_without_replace_a_file_another_process_made_meanwhile_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "key"
    assert write_whole(path, b"first", mode=0o600, replace=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not write_whole(path, b"second", mode=0o600, replace=False)
    assert path.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["key"]


@pytest.mark.parametrize("replace", [True, False])
def test_a_write_that_fails_before_the_disk_has_it_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   replace: bool) -> None:
    def lost(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(whole_files.os, "fsync", lost)
    with pytest.raises(OSError, match="Input/output"):
        write_whole(tmp_path / "file", b"data", replace=replace)
    assert list(tmp_path.iterdir()) == []

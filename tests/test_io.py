import errno
import os
import stat

import pytest

from mtbench.errors import MtbenchError
from mtbench.io import atomic_directory, atomic_write_bytes, atomic_write_text


def test_atomic_write_replaces_content(tmp_path):
    path = tmp_path / "sub" / "file.txt"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert [entry.name for entry in path.parent.iterdir()] == ["file.txt"]


def test_atomic_write_uses_umask_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "data.bin", b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "data.bin").stat().st_mode) == 0o644


def test_atomic_directory_keeps_old_on_error(tmp_path):
    target = tmp_path / "dataset"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "a.txt").write_text("new")
            raise RuntimeError("interrupted")
    assert (target / "a.txt").read_text() == "old"
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["dataset"]


def test_atomic_directory_replaces_on_success(tmp_path):
    target = tmp_path / "dataset"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("old")
    with atomic_directory(target) as staging:
        (staging / "b.txt").write_text("new")
    assert sorted(entry.name for entry in target.iterdir()) == ["b.txt"]
    assert stat.S_IMODE(target.stat().st_mode) & 0o055 == 0o055 & ~os.umask(os.umask(0))


@pytest.mark.parametrize(
    ("error_number", "message"),
    [(errno.ENOSPC, "No space left"), (errno.EACCES, "permission denied"), (errno.EROFS, "permission denied")],
)
def test_write_failure_keeps_old_file(tmp_path, monkeypatch, error_number, message):
    path = tmp_path / "record.txt"
    atomic_write_text(path, "kept")

    def failing_replace(source, destination):
        raise OSError(error_number, os.strerror(error_number))

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(MtbenchError, match=message):
        atomic_write_text(path, "lost")
    assert path.read_text() == "kept"
    assert [entry.name for entry in tmp_path.iterdir()] == ["record.txt"]

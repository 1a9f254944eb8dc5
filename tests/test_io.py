import errno
import json
import subprocess
import os
import stat

import pytest

from mtbench.errors import MtbenchError
from mtbench.io import append_json_line, atomic_directory, atomic_write_bytes, atomic_write_text


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


def test_append_after_partial_line_starts_new_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"run_id": "a"}\n{"run_id": "trunc')
    append_json_line(path, {"run_id": "b"})
    lines = path.read_bytes().split(b"\n")
    assert lines[1] == b'{"run_id": "trunc'
    assert json.loads(lines[2]) == {"run_id": "b"}


def test_abandoned_staging_is_removed(tmp_path):
    target = tmp_path / "dataset"
    dead_pid = _dead_pid()
    abandoned = tmp_path / f".dataset.staging-{dead_pid}-abc"
    abandoned.mkdir()
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("new")
    assert not abandoned.exists()
    assert (target / "a.txt").read_text() == "new"


def test_retired_copy_restored_after_kill(tmp_path):
    target = tmp_path / "dataset"
    retired = tmp_path / f".dataset.retired-{_dead_pid()}"
    retired.mkdir()
    (retired / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target):
            raise RuntimeError("interrupted")
    assert (target / "a.txt").read_text() == "old"


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid

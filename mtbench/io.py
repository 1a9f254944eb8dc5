"""Crash-safe writes: a file or folder is either complete or absent.

Every writer stages its output next to the destination and renames it into
place, so an interrupted process leaves the previous version (or nothing), never
a half-written file that a later command would load.
"""

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mtbench.errors import MtbenchError


def _default_mode(directory: bool) -> int:
    """Return the mode a plain ``open`` or ``mkdir`` would give, since ``tempfile`` creates private files."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _raise_for_os_error(error: OSError, path: Path) -> None:
    if error.errno == errno.ENOSPC:
        raise MtbenchError(f"No space left on the device while writing {path}. Free some disk space and run the command again.") from error
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        raise MtbenchError(f"Cannot write {path}: permission denied. Choose a writable folder or fix its permissions.") from error
    raise MtbenchError(f"Cannot write {path}: {error.strerror}.") from error


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.chmod(temporary, _default_mode(directory=False))
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
    except OSError as error:
        _raise_for_os_error(error, path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_abandoned_siblings(path: Path) -> None:
    """Delete staging folders of killed writers, and restore a retired copy that lost its replacement.

    A writer killed between its two renames leaves ``path`` absent and the old
    content under ``.<name>.retired-<pid>``, which is moved back.
    """
    for sibling in path.parent.glob(f".{path.name}.*-*"):
        kind, _, rest = sibling.name[len(path.name) + 2 :].partition("-")
        pid_text = rest.split("-")[0]
        if kind not in ("staging", "retired") or not pid_text.isdigit() or _process_is_alive(int(pid_text)):
            continue
        if kind == "retired" and not path.exists():
            os.replace(sibling, path)
        else:
            shutil.rmtree(sibling, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder that replaces ``path`` only if the block finishes.

    On an exception the staging folder is removed and ``path`` keeps its old
    content. A kill leaves a hidden ``.<name>.staging-<pid>-*`` folder, which
    the next call for the same ``path`` deletes once that process is gone.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_siblings(path)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.staging-{os.getpid()}-", dir=path.parent))
        os.chmod(staging, _default_mode(directory=True))
    except OSError as error:
        _raise_for_os_error(error, path)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        retired = None
        if path.exists():
            retired = path.parent / f".{path.name}.retired-{os.getpid()}"
            os.replace(path, retired)
        os.replace(staging, path)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    except OSError as error:
        _raise_for_os_error(error, path)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as reader:
        reader.seek(-1, os.SEEK_END)
        return reader.read(1) == b"\n"


def append_json_line(path: str | os.PathLike, record: dict) -> None:
    """Append ``record`` as one JSON line to ``path``.

    The line is written under an exclusive lock and synced to disk, so
    concurrent writers never interleave or split lines. When the write fails
    (a full disk can take part of the line first), the file is cut back to its
    previous size, so it never keeps a fragment of this record.
    """
    path = Path(path)
    line = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unbuffered, so that after a failed write no buffered bytes are flushed on close.
        with open(path, "ab", buffering=0) as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                size = os.fstat(handle.fileno()).st_size
                # A writer killed mid-line leaves no final newline: start a new line
                # so this record is not glued onto the fragment.
                if size > 0 and not _ends_with_newline(path):
                    line = b"\n" + line
                try:
                    _write_all(handle, line)
                    os.fsync(handle.fileno())
                except OSError:
                    os.ftruncate(handle.fileno(), size)
                    raise
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except OSError as error:
        _raise_for_os_error(error, path)


def _write_all(handle, data: bytes) -> None:
    """Write ``data`` to the unbuffered ``handle``, repeating the call after a short write."""
    view = memoryview(data)
    while view:
        written = handle.write(view)
        view = view[written:]


def check_writable(folder: str | os.PathLike) -> None:
    """Raise MtbenchError now, before hours of work, when files cannot be created in ``folder``."""
    folder = Path(folder)
    probe = folder / f".write-check-{os.getpid()}"
    atomic_write_bytes(probe, b"")
    probe.unlink()


def check_appendable(path: str | os.PathLike) -> None:
    """Raise MtbenchError now when records cannot be appended to the file ``path``; change nothing."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise MtbenchError(f"{path} is not a regular file, so results cannot be appended to it. Move it away and run again.")
    if path.exists():
        try:
            with open(path, "ab"):
                pass
        except OSError as error:
            _raise_for_os_error(error, path)

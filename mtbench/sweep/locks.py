"""Per-run locks, so that two sweeps (or a restarted sweep and a run it left behind) never train the same run at once.

A run's lock is an exclusive ``flock`` on ``<leaderboard_dir>/.sweep-locks/<benchmark>/<run_id>.lock``.
The sweep hands the locked file descriptor to the `mtbench run` process, so
the lock is held exactly as long as that process lives, even when the sweep
itself is killed. The folder holds a ``.gitignore`` that ignores everything
in it, because lock files are never committed.
"""

import fcntl
import os
from pathlib import Path

from mtbench.io import atomic_write_text

LOCKS_FOLDER = ".sweep-locks"


def lock_path(leaderboard_dir: Path, benchmark: str, run_id: str) -> Path:
    """Return the lock file of run ``run_id``."""
    return Path(leaderboard_dir) / LOCKS_FOLDER / benchmark / f"{run_id}.lock"


class RunLock:
    """An exclusive, non-blocking lock on one run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.descriptor: int | None = None

    def acquire(self) -> bool:
        """Take the lock and return True, or return False when another process holds it.

        Raises MtbenchError when the lock folder cannot be created.
        """
        folder = self.path.parent.parent
        if not (folder / ".gitignore").is_file():
            atomic_write_text(folder / ".gitignore", "*\n")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        self.descriptor = descriptor
        return True

    def close(self) -> None:
        """Close this process's descriptor; the lock is released once no process holds the file open."""
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None


def is_locked(path: Path) -> bool:
    """Return whether another process holds the lock ``path`` now."""
    if not path.is_file():
        return False
    lock = RunLock(path)
    if not lock.acquire():
        return True
    lock.close()
    return False

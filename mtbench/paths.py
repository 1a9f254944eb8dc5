"""Default locations of prepared data and downloads.

An environment variable that is set but empty, or only blanks, counts as
unset, so that ``MTBENCH_DATA=`` does not turn the working directory into the
data root.
"""

import os
from pathlib import Path


def _variable(name: str) -> str | None:
    """Return the environment variable ``name``, or None when it is unset, empty or only blanks."""
    value = os.environ.get(name, "")
    return value if value.strip() else None


def mtbench_home() -> Path:
    """Return the folder for mtbench's data and cache: ``$MTBENCH_HOME`` or ``~/.cache/mtbench``."""
    return Path(_variable("MTBENCH_HOME") or Path.home() / ".cache" / "mtbench")


def data_root() -> Path:
    """Return the folder that contains prepared benchmarks: ``$MTBENCH_DATA`` or ``<home>/data``."""
    return Path(_variable("MTBENCH_DATA") or mtbench_home() / "data")


def download_cache() -> Path:
    """Return the folder for downloaded source files: ``<home>/downloads``."""
    return mtbench_home() / "downloads"


def project_root() -> Path:
    """Return the repository root that contains ``datasets/``, ``methods/`` and ``leaderboard/``.

    ``$MTBENCH_ROOT`` wins; otherwise the parent of the installed package, which
    is the repository for an editable install, and else the working directory.
    """
    root = _variable("MTBENCH_ROOT")
    if root is not None:
        return Path(root)
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / "datasets").is_dir():
        return package_parent
    return Path.cwd()

"""Default locations of prepared data and downloads.

An environment variable that is set but empty counts as unset, so that
``MTBENCH_DATA=`` does not turn the working directory into the data root.
"""

import os
from pathlib import Path


def mtbench_home() -> Path:
    """Return the folder for mtbench's data and cache: ``$MTBENCH_HOME`` or ``~/.cache/mtbench``."""
    return Path(os.environ.get("MTBENCH_HOME") or Path.home() / ".cache" / "mtbench")


def data_root() -> Path:
    """Return the folder that contains prepared benchmarks: ``$MTBENCH_DATA`` or ``<home>/data``."""
    return Path(os.environ.get("MTBENCH_DATA") or mtbench_home() / "data")


def download_cache() -> Path:
    """Return the folder for downloaded source files: ``<home>/downloads``."""
    return mtbench_home() / "downloads"


def project_root() -> Path:
    """Return the repository root that contains ``datasets/``, ``methods/`` and ``leaderboard/``.

    ``$MTBENCH_ROOT`` wins; otherwise the parent of the installed package, which
    is the repository for an editable install, and else the working directory.
    """
    if os.environ.get("MTBENCH_ROOT"):
        return Path(os.environ["MTBENCH_ROOT"])
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / "datasets").is_dir():
        return package_parent
    return Path.cwd()

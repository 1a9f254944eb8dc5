"""Loading of the small MATLAB v5 files that come with NYUv2 (splits and class mappings)."""

from pathlib import Path
from typing import Any

from mtbench.errors import MtbenchError


def load_v5_mat(path: Path, option: str) -> dict[str, Any]:
    """Load a MATLAB v5 file with ``scipy.io.loadmat(simplify_cells=True)``.

    Raises MtbenchError naming ``path`` and the command-line ``option`` that
    sets it when the file is missing, is a v7.3 (HDF5) file, or is not a
    MATLAB file.
    """
    import scipy.io
    from scipy.io.matlab import MatReadError

    path = Path(path)
    if not path.is_file():
        raise MtbenchError(f"{path} not found. Pass it with {option} or put it in the folder given with --nyuv2-folder.")
    try:
        return scipy.io.loadmat(path, simplify_cells=True)
    except NotImplementedError as error:
        raise MtbenchError(f"{path} is a MATLAB v7.3 file, but the published file is MATLAB v5. Use the original file.") from error
    # scipy 1.17 raises IndexError, not MatReadError, for a file cut off inside its 128-byte header.
    except (MatReadError, ValueError, TypeError, IndexError, OSError) as error:
        raise MtbenchError(f"{path} is not a readable MATLAB file ({error}). Download it again.") from error

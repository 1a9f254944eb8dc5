"""Reading MATLAB .mat files in both container formats the SUN RGB-D toolbox uses.

MAT v5 files (MATLAB's default ``save`` up to v7) are read with
``scipy.io.loadmat``. MAT v7.3 files are HDF5 files with a 512-byte user
block, read with h5py. In v7.3, axes appear reversed, cell arrays and the
fields of struct arrays are datasets of object references, and a char
array is a uint16 dataset of UTF-16 code units. Because h5py shows MATLAB's
column-major array with reversed axes, its C-order traversal is MATLAB's
linear order.
"""

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io

from mtbench.errors import MtbenchError


def is_hdf5_mat(path: Path) -> bool:
    """Return whether ``path`` is an HDF5 file, as MAT v7.3 files are (MAT v5 files are not)."""
    return h5py.is_hdf5(path)


def load_mat_v5(path: Path, variable_names: list[str]) -> dict[str, Any]:
    """Load ``variable_names`` from a MAT v5 file as ``scipy.io.loadmat(squeeze_me=True, struct_as_record=False)`` returns them.

    Structs become ``mat_struct`` objects, cell arrays of strings become
    object arrays of ``str``, and singleton axes are removed (so a one-element
    array becomes its element). Raises MtbenchError when the file cannot be
    parsed or lacks one of the variables, naming the variables it contains.
    """
    try:
        variables = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False, variable_names=variable_names)
    except (ValueError, TypeError, OSError, NotImplementedError, scipy.io.matlab.MatReadError) as error:
        raise MtbenchError(f"{path} is not a readable MATLAB .mat file ({error}). Replace it with the file from the SUN RGB-D toolbox.") from error

    missing = [name for name in variable_names if name not in variables]
    if missing:
        found = ", ".join(name for name, _, _ in scipy.io.whosmat(path)) or "none"
        raise MtbenchError(f"{path} has no variable {', '.join(missing)} (variables found: {found}). Replace it with the file from the SUN RGB-D toolbox.")
    return variables


def open_mat_v73(path: Path) -> h5py.File:
    """Open a MAT v7.3 file read-only. Raises MtbenchError when it is not an HDF5 file."""
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise MtbenchError(f"{path} is not a MATLAB v7.3 (HDF5) file ({error}). Replace it with the file from the SUN RGB-D toolbox.") from error


def v5_text(value: Any) -> str:
    """Return the text of a char array loaded by ``load_mat_v5``. Raises ValueError for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.size == 0:
        return ""
    if isinstance(value, np.ndarray) and value.dtype.kind == "U" and value.size == 1:
        return str(value.item())
    raise ValueError(f"expected a char array, got {type(value).__name__} {getattr(value, 'dtype', '')}".rstrip())


def v5_text_list(value: Any) -> list[str]:
    """Return the strings of a cell array (or a single string, which ``squeeze_me`` leaves for one element)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, np.ndarray):
        return [v5_text(item) for item in value.ravel()]
    raise ValueError(f"expected a cell array of char arrays, got {type(value).__name__}")


def v73_text(dataset: h5py.Dataset) -> str:
    """Return the text of a v7.3 char array dataset. Raises ValueError when it is not one."""
    if dataset.attrs.get("MATLAB_empty", 0):
        return ""
    values = dataset[()]
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "ui":
        raise ValueError(f"expected a char array, got {getattr(values, 'dtype', type(values).__name__)}")
    return "".join(chr(code) for code in values.ravel())


def v73_text_list(file: h5py.File, dataset: h5py.Dataset) -> list[str]:
    """Return the strings of a v7.3 cell array or struct-array field, in MATLAB's linear order.

    The field of a 1 x 1 struct is stored as the char array itself rather
    than as references, and is returned as one string.
    """
    if dataset.dtype != h5py.ref_dtype:
        return [v73_text(dataset)]
    return [v73_text(dereference(file, reference)) for reference in dataset[()].ravel()]


def dereference(file: h5py.File, reference: h5py.Reference) -> h5py.Dataset:
    """Return the dataset that an object reference points to. Raises ValueError for a null or dangling reference."""
    if not reference:
        raise ValueError("null object reference")
    try:
        target = file[reference]
    except (KeyError, ValueError) as error:
        raise ValueError(f"dangling object reference ({error})") from error
    if not isinstance(target, h5py.Dataset):
        raise ValueError(f"object reference points to a group, {target.name}, not an array")
    return target

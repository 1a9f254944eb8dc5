"""Reader of ``SUNRGBDMeta.mat``: the RGB and depth file of each of the 10335 frames.

The toolbox stores ``SUNRGBDMeta`` as a 1 x N struct array whose fields
include ``rgbpath`` (``.../<scene>/image/<name>.jpg``) and ``depthpath``
(``.../<scene>/depth/<name>.png``, the raw depth), with the absolute paths
of the authors' file system. The preparation scripts of ESANet and
nicr-scene-analysis-datasets read the published file with
``scipy.io.loadmat``, so it is MAT v5. A v7.3 (HDF5) copy, which MATLAB
writes for variables over 2 GB, is read with h5py instead. Only ``rgbpath``
and ``depthpath`` are read. The sensor is the first folder of the path (kv1,
kv2, realsense or xtion), not the ``sensorType`` field.

Entry i of ``SUNRGBDMeta`` and entry i of ``SUNRGBD2Dseg.seglabel`` describe
the same frame.
"""

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import h5py
import numpy as np

from mtbench.data.sunrgbd.layout import relative_sunrgbd_path
from mtbench.data.sunrgbd.matfile import (
    is_hdf5_mat,
    load_mat_v5,
    open_mat_v73,
    v5_text,
    v73_text_list,
)
from mtbench.errors import MtbenchError

META_VARIABLE = "SUNRGBDMeta"
PATH_FIELDS: tuple[str, ...] = ("rgbpath", "depthpath")
REPLACE_HINT = "Replace it with SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat from SUNRGBDtoolbox.zip."


@dataclass(frozen=True)
class MetaRecord:
    """One frame of ``SUNRGBDMeta``, with paths relative to the ``SUNRGBD`` folder."""

    index: int
    rgb_path: PurePosixPath
    depth_path: PurePosixPath

    @property
    def scene(self) -> PurePosixPath:
        """The scene folder, such as ``kv2/kinect2data/<scene>``: the split file lists these."""
        return self.rgb_path.parent.parent

    @property
    def sensor(self) -> str:
        return self.rgb_path.parts[0]

    def depth_path_of(self, depth_source: str) -> PurePosixPath:
        """Return the raw depth file (``depth_source="raw"``) or the in-painted one in ``depth_bfx/`` (``"inpainted"``)."""
        if depth_source == "raw":
            return self.depth_path
        if depth_source == "inpainted":
            return self.depth_path.parent.parent / "depth_bfx" / self.depth_path.name
        raise ValueError(f"unknown depth source {depth_source!r}: expected 'raw' or 'inpainted'")


def read_meta(path: Path) -> list[MetaRecord]:
    """Read the frame list of ``SUNRGBDMeta.mat`` (MAT v5 or v7.3), in file order.

    Raises MtbenchError naming ``path`` when the file cannot be read, lacks
    the variable or a field, the fields have different lengths, or a path
    does not contain a sensor folder.
    """
    path = Path(path)
    columns = _read_v73_columns(path) if is_hdf5_mat(path) else _read_v5_columns(path)

    lengths = {field: len(values) for field, values in columns.items()}
    if len(set(lengths.values())) != 1 or not lengths["rgbpath"]:
        raise MtbenchError(f"{path}: the fields of {META_VARIABLE} have lengths {lengths}, expected equal non-zero lengths. {REPLACE_HINT}")

    records = []
    for index, (rgb_path, depth_path) in enumerate(zip(columns["rgbpath"], columns["depthpath"])):
        try:
            records.append(MetaRecord(index, relative_sunrgbd_path(rgb_path), relative_sunrgbd_path(depth_path)))
        except ValueError as error:
            raise MtbenchError(f"{path}: entry {index + 1} of {META_VARIABLE}: {error}. {REPLACE_HINT}") from error
    return records


def _read_v5_columns(path: Path) -> dict[str, list[str]]:
    structs = load_mat_v5(path, [META_VARIABLE])[META_VARIABLE]
    # squeeze_me turns a 1 x 1 struct array into the struct itself.
    structs = list(structs.ravel()) if isinstance(structs, np.ndarray) else [structs]

    columns: dict[str, list[str]] = {field: [] for field in PATH_FIELDS}
    for index, struct in enumerate(structs):
        for field in PATH_FIELDS:
            columns[field].append(_v5_field_text(path, struct, field, index))
    return columns


def _v5_field_text(path: Path, struct: Any, field: str, index: int) -> str:
    if not hasattr(struct, field):
        found = ", ".join(getattr(struct, "_fieldnames", [])) or "none"
        raise MtbenchError(f"{path}: entry {index + 1} of {META_VARIABLE} has no field {field!r} (fields found: {found}). {REPLACE_HINT}")
    try:
        return v5_text(getattr(struct, field))
    except ValueError as error:
        raise MtbenchError(f"{path}: field {field!r} of entry {index + 1} of {META_VARIABLE}: {error}. {REPLACE_HINT}") from error


def _read_v73_columns(path: Path) -> dict[str, list[str]]:
    with open_mat_v73(path) as file:
        group = file.get(META_VARIABLE)
        if not isinstance(group, h5py.Group):
            raise MtbenchError(f"{path} has no struct {META_VARIABLE!r} (top-level names found: {', '.join(file) or 'none'}). {REPLACE_HINT}")
        columns = {}
        for field in PATH_FIELDS:
            dataset = group.get(field)
            if not isinstance(dataset, h5py.Dataset):
                raise MtbenchError(f"{path}: {META_VARIABLE} has no field {field!r} (fields found: {', '.join(group) or 'none'}). {REPLACE_HINT}")
            try:
                columns[field] = v73_text_list(file, dataset)
            except ValueError as error:
                raise MtbenchError(f"{path}: field {field!r} of {META_VARIABLE}: {error}. {REPLACE_HINT}") from error
    return columns

"""Reader of ``SUNRGBD2Dseg.mat``: the 37-class label image of each frame.

The file is MAT v7.3 (HDF5). Its struct array ``SUNRGBD2Dseg`` is the group
of that name, and its field ``seglabel`` is a dataset of object references
of h5py shape (N, 1), one per frame in ``SUNRGBDMeta.mat`` order. Each
reference points to the frame's label array, stored transposed as
(width, height), with values 0 (void) to 37. The field ``seglabelall``
(the full label set) is not read.
"""

from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from mtbench.data.sunrgbd.classes import MAX_SOURCE_LABEL
from mtbench.data.sunrgbd.matfile import dereference, is_hdf5_mat, open_mat_v73
from mtbench.errors import MtbenchError

SEG_GROUP = "SUNRGBD2Dseg"
SEG_FIELD = "seglabel"
REPLACE_HINT = "Replace it with SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat from SUNRGBDtoolbox.zip."


class SegLabels:
    """The label images of ``SUNRGBD2Dseg.mat``, read one frame at a time. Use it as a context manager.

    Raises MtbenchError naming the file when it is not HDF5 or lacks the
    group ``SUNRGBD2Dseg`` or its dataset of references ``seglabel``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not is_hdf5_mat(self.path):
            raise MtbenchError(f"{self.path} is not a MATLAB v7.3 (HDF5) file, which SUNRGBD2Dseg.mat is. {REPLACE_HINT}")
        self._file = open_mat_v73(self.path)
        try:
            self._references = self._find_references()
        except BaseException:
            self._file.close()
            raise

    def _find_references(self) -> np.ndarray:
        group = self._file.get(SEG_GROUP)
        if not isinstance(group, h5py.Group):
            raise MtbenchError(f"{self.path} has no struct {SEG_GROUP!r} (top-level names found: {', '.join(self._file) or 'none'}). {REPLACE_HINT}")
        dataset = group.get(SEG_FIELD)
        if not isinstance(dataset, h5py.Dataset):
            raise MtbenchError(f"{self.path}: {SEG_GROUP} has no field {SEG_FIELD!r} (fields found: {', '.join(group) or 'none'}). {REPLACE_HINT}")
        if dataset.dtype != h5py.ref_dtype:
            raise MtbenchError(f"{self.path}: {SEG_GROUP}/{SEG_FIELD} has dtype {dataset.dtype}, expected object references (one per frame). {REPLACE_HINT}")
        return dataset[()].ravel()

    def __len__(self) -> int:
        return len(self._references)

    def read(self, index: int) -> np.ndarray:
        """Return the labels of frame ``index`` (0-based) as uint8 (height, width) with values 0..37.

        Raises MtbenchError when the reference is broken, the array is not 2-D,
        or a value is not an integer in 0..37.
        """
        where = f"{self.path}: {SEG_GROUP}/{SEG_FIELD} entry {index + 1}"
        try:
            values = dereference(self._file, self._references[index])[()]
        except ValueError as error:
            raise MtbenchError(f"{where}: {error}. {REPLACE_HINT}") from error
        if not isinstance(values, np.ndarray) or values.ndim != 2 or values.dtype.kind not in "uif":
            raise MtbenchError(f"{where} is not a 2-D numeric label array (got {getattr(values, 'shape', values)!r}). {REPLACE_HINT}")

        problem = _find_label_problem(values)
        if problem is not None:
            raise MtbenchError(f"{where}: {problem}. {REPLACE_HINT}")
        return np.ascontiguousarray(values.T.astype(np.uint8))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "SegLabels":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()


def _find_label_problem(values: np.ndarray) -> str | None:
    if values.size == 0:
        return "the label array is empty"
    if values.dtype.kind == "f" and not (np.isfinite(values).all() and (values == np.round(values)).all()):
        return "labels contain values that are not integers"
    low, high = values.min(), values.max()
    if low < 0 or high > MAX_SOURCE_LABEL:
        return f"labels range from {low:g} to {high:g}, outside 0..{MAX_SOURCE_LABEL}"
    return None

"""Reader of the official labeled NYUv2 file ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3, an HDF5 file).

MATLAB stores arrays column-major, so h5py shows every axis reversed. The
MATLAB H x W x 3 x N ``images`` appear as (N, 3, W, H). The H x W x N
``depths``, ``rawDepths`` and ``labels`` appear as (N, W, H). ``depths`` are the
in-painted depths in metres, ``rawDepths`` the raw Kinect depths (0 where the
sensor failed), ``labels`` the raw class ids 1..894 with 0 = unlabeled.
The official frames are 640 x 480, but nothing here assumes that size.
"""

from pathlib import Path
from types import TracebackType

import numpy as np

from mtbench.errors import MtbenchError

LABELED_MAT_NAME = "nyu_depth_v2_labeled.mat"
DEPTH_DATASETS = ("depths", "rawDepths")


class LabeledMat:
    """The images, depths and raw labels of ``nyu_depth_v2_labeled.mat``, read one image at a time.

    Opening checks the dataset names, axis order and dtypes and raises
    MtbenchError naming the file when they differ from the official file.
    ``read`` checks nothing about the values; the builder does.
    """

    def __init__(self, path: Path, depth_dataset: str = "depths") -> None:
        import h5py

        self.path = Path(path)
        if depth_dataset not in DEPTH_DATASETS:
            raise ValueError(f"depth_dataset must be one of {DEPTH_DATASETS}, got {depth_dataset!r}.")
        if not self.path.is_file():
            raise MtbenchError(f"{self.path} not found. Pass the official {LABELED_MAT_NAME} with --nyuv2-labeled-mat or its folder with --nyuv2-folder.")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise MtbenchError(
                f"{self.path} is not a readable HDF5 file ({error}). The official {LABELED_MAT_NAME} is a MATLAB v7.3 file, "
                "which is HDF5: the file is damaged, truncated or another file. Download it again."
            ) from error
        try:
            self._images = self._dataset("images")
            self._depths = self._dataset(depth_dataset)
            self._labels = self._dataset("labels")
            self._check_layout(depth_dataset)
        except BaseException:
            self._file.close()
            raise

    def _dataset(self, name: str):
        import h5py

        item = self._file.get(name)
        if not isinstance(item, h5py.Dataset):
            found = ", ".join(sorted(self._file.keys())) or "nothing"
            raise MtbenchError(
                f"{self.path} has no dataset '{name}' (it contains: {found}), so it is not the official {LABELED_MAT_NAME}. "
                "Pass the labeled file of NYU Depth V2, not the raw or toolbox files."
            )
        return item

    def _check_layout(self, depth_dataset: str) -> None:
        images = self._images
        if images.ndim != 4 or images.shape[1] != 3:
            raise MtbenchError(
                f"{self.path}: dataset 'images' has shape {images.shape}, expected (N, 3, W, H), the reversed view of MATLAB's "
                "H x W x 3 x N array. The file was not written by MATLAB v7.3 or its axes were reordered."
            )
        count, _, width, height = images.shape
        if width < height:
            raise MtbenchError(
                f"{self.path}: dataset 'images' has shape {images.shape}, so its images would be {width} wide and {height} high. "
                "NYUv2 frames are landscape, so the last two axes are swapped: h5py must show (N, 3, W, H)."
            )
        if images.dtype != np.uint8:
            raise MtbenchError(f"{self.path}: dataset 'images' has dtype {images.dtype}, expected uint8 RGB.")

        for name, dataset, kind in ((depth_dataset, self._depths, "f"), ("labels", self._labels, "iu")):
            if dataset.shape == (count, height, width) and height != width:
                raise MtbenchError(
                    f"{self.path}: dataset '{name}' has shape {dataset.shape}, but h5py must show (N, W, H) = {(count, width, height)}: "
                    "its last two axes are swapped."
                )
            if dataset.shape != (count, width, height):
                raise MtbenchError(f"{self.path}: dataset '{name}' has shape {dataset.shape}, expected (N, W, H) = {(count, width, height)} like 'images'.")
            if dataset.dtype.kind not in kind:
                expected = "floating-point metres" if kind == "f" else "integer class ids"
                raise MtbenchError(f"{self.path}: dataset '{name}' has dtype {dataset.dtype}, expected {expected}.")
        self.count, self.height, self.width = count, height, width

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return image ``index`` (0-based): RGB (H, W, 3) uint8, depth (H, W) as stored, raw labels (H, W) as stored.

        Raises MtbenchError when HDF5 cannot read the image (a damaged or truncated file).
        """
        try:
            image = np.ascontiguousarray(self._images[index].transpose(2, 1, 0))
            depth = np.ascontiguousarray(self._depths[index].T)
            labels = np.ascontiguousarray(self._labels[index].T)
        except OSError as error:
            raise MtbenchError(f"{self.path}: cannot read image {index + 1} ({error}). The file is damaged or truncated; download it again.") from error
        return image, depth, labels

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "LabeledMat":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()

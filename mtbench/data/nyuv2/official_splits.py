"""Reader of the official NYUv2 split file ``splits.mat`` (MATLAB v5): 795 training and 654 test images."""

from pathlib import Path

import numpy as np

from mtbench.data.nyuv2.matlab_v5 import load_v5_mat
from mtbench.errors import MtbenchError

SPLITS_MAT_NAME = "splits.mat"


def read_official_splits(path: Path, num_images: int) -> dict[str, np.ndarray]:
    """Return the 1-based image indices of the official splits as ``{"train": ..., "test": ...}`` (int64, file order).

    ``trainNdxs`` and ``testNdxs`` must be whole numbers in 1..num_images,
    without repeats, and together cover every image once. Raises
    MtbenchError naming ``path`` otherwise (a 0 means 0-based indices).
    """
    path = Path(path)
    contents = load_v5_mat(path, "--nyuv2-splits")
    splits = {}
    for split, key in (("train", "trainNdxs"), ("test", "testNdxs")):
        if key not in contents:
            found = ", ".join(sorted(name for name in contents if not name.startswith("__"))) or "nothing"
            raise MtbenchError(f"{path} has no variable '{key}' (it contains: {found}), so it is not the official {SPLITS_MAT_NAME}.")
        splits[split] = _whole_numbers(np.asarray(contents[key]).ravel(), path, key)

    for split, indices in splits.items():
        if indices.size and indices.min() < 1:
            raise MtbenchError(f"{path}: '{split}' indices start at {indices.min()}, but {SPLITS_MAT_NAME} must contain 1-based MATLAB indices. Use the original file.")
        if indices.size and indices.max() > num_images:
            raise MtbenchError(f"{path}: '{split}' index {indices.max()} exceeds the {num_images} images of the labeled file.")
        if len(np.unique(indices)) != len(indices):
            raise MtbenchError(f"{path}: '{split}' lists an image more than once.")

    overlap = np.intersect1d(splits["train"], splits["test"])
    if overlap.size:
        raise MtbenchError(f"{path}: image {overlap[0]} is in both the training and the test split.")
    if len(splits["train"]) + len(splits["test"]) != num_images:
        raise MtbenchError(
            f"{path}: the splits list {len(splits['train'])} + {len(splits['test'])} images, but the labeled file has {num_images}. "
            "Use the splits.mat that belongs to nyu_depth_v2_labeled.mat."
        )
    return splits


def _whole_numbers(values: np.ndarray, path: Path, key: str) -> np.ndarray:
    if values.dtype.kind not in "iuf" or (values.dtype.kind == "f" and not np.array_equal(values, np.round(values))):
        raise MtbenchError(f"{path}: '{key}' must contain whole-number image indices, got dtype {values.dtype}.")
    return values.astype(np.int64)

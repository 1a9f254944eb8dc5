"""Readers of ``classMapping40.mat`` (894 raw classes to 40) and ``class13Mapping.mat`` (40 classes to 13), and the combined lookup table."""

from pathlib import Path

import numpy as np

from mtbench.data.dense_format import IGNORE_INDEX
from mtbench.data.nyuv2.classes import CLASS_NAMES_13
from mtbench.data.nyuv2.matlab_v5 import load_v5_mat
from mtbench.errors import MtbenchError

CLASS_MAPPING_40_NAME = "classMapping40.mat"
CLASS_MAPPING_13_NAME = "class13Mapping.mat"


def read_map_raw_to_40(path: Path) -> np.ndarray:
    """Return the 40-class id of each raw class id 0..K (int64, length K + 1, entry 0 = void 0) from ``mapClass``.

    ``mapClass`` contains the 40-class id (1..40) of raw ids 1..K (K = 894 in
    the official file). Raises MtbenchError naming ``path`` when the variable
    is missing or a value is not a whole number in 1..40.
    """
    path = Path(path)
    contents = load_v5_mat(path, "--nyuv2-class-mapping40")
    if "mapClass" not in contents:
        raise MtbenchError(f"{path} has no variable 'mapClass', so it is not the published {CLASS_MAPPING_40_NAME}.")
    mapping = _class_ids(np.asarray(contents["mapClass"]).ravel(), 40, path, "mapClass")
    return np.concatenate([[0], mapping])


def read_map_40_to_13(path: Path) -> tuple[np.ndarray, list[str]]:
    """Return the 13-class id of each 40-class id 0..40 (int64, length 41, entry 0 = void 0) and the 13 class names.

    Reads the struct ``classMapping13`` with fields ``labels13`` (40 values
    in 1..13) and ``classNames`` (13 names). Raises MtbenchError naming
    ``path`` when the struct or a field is missing or invalid.
    """
    path = Path(path)
    contents = load_v5_mat(path, "--nyuv2-class-mapping13")
    struct = contents.get("classMapping13")
    if not isinstance(struct, dict) or "labels13" not in struct or "classNames" not in struct:
        raise MtbenchError(
            f"{path} has no struct 'classMapping13' with fields 'labels13' and 'classNames', so it is not the published {CLASS_MAPPING_13_NAME}."
        )
    labels13 = _class_ids(np.asarray(struct["labels13"]).ravel(), 13, path, "classMapping13.labels13")
    if len(labels13) != 40:
        raise MtbenchError(f"{path}: 'labels13' has {len(labels13)} entries, expected one for each of the 40 classes.")

    names = [str(name) for name in np.asarray(struct["classNames"], dtype=object).ravel()]
    if len(names) != len(CLASS_NAMES_13):
        raise MtbenchError(f"{path}: 'classNames' has {len(names)} names, expected {len(CLASS_NAMES_13)}.")
    return np.concatenate([[0], labels13]), names


def _class_ids(values: np.ndarray, num_classes: int, path: Path, name: str) -> np.ndarray:
    if values.dtype.kind not in "iuf" or not np.array_equal(values, np.round(values)):
        raise MtbenchError(f"{path}: '{name}' must contain whole-number class ids, got dtype {values.dtype}.")
    if values.size == 0 or values.min() < 1 or values.max() > num_classes:
        low, high = (values.min(), values.max()) if values.size else ("none", "none")
        raise MtbenchError(f"{path}: '{name}' has class ids from {low} to {high}, expected 1..{num_classes}.")
    return values.astype(np.int64)


def raw_to_segmentation_lookup(map_raw_to_40: np.ndarray, map_40_to_13: np.ndarray) -> np.ndarray:
    """Return the uint8 table that sends each raw class id to its prepared 13-class index (0..12, 255 = void).

    Raw id 0 (unlabeled) becomes 255 and a raw id with 13-class id c >= 1 becomes c - 1.
    """
    ids13 = map_40_to_13[map_raw_to_40]
    return np.where(ids13 == 0, IGNORE_INDEX, ids13 - 1).astype(np.uint8)


def map_raw_labels(labels: np.ndarray, lookup: np.ndarray, where: str) -> np.ndarray:
    """Map raw class ids (H, W) through ``lookup``; raise MtbenchError naming ``where`` for ids outside 0..len(lookup)-1."""
    if labels.size and (labels.min() < 0 or labels.max() >= len(lookup)):
        raise MtbenchError(
            f"{where}: raw labels range from {int(labels.min())} to {int(labels.max())}, but {CLASS_MAPPING_40_NAME} maps ids 0..{len(lookup) - 1}. "
            "The labels and the class mapping do not belong together."
        )
    return lookup[labels]

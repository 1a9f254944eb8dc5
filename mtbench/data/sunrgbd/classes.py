"""The 37 SUN RGB-D classes, the 13 coarse classes, and the lookup tables from source labels.

``SUNRGBD2Dseg.mat`` labels each pixel with 0 (void) or a class id 1..37, in
the order of ``CLASS_NAMES_37`` (the first 37 classes of NYU Depth v2's
40-class set). The 13 coarse classes are those of Couprie et al. and Eigen &
Fergus, shared with NYUv2; ``COARSE_CLASS_OF`` assigns each fine class to one
of them.

Prepared targets use class indices 0..C-1 and ``IGNORE_INDEX`` (255) for
void: source id 0 becomes 255, and fine id c >= 1 becomes c - 1 in
``segmentation37`` and the 0-based index of its coarse class in
``segmentation13``.
"""

import numpy as np

from mtbench.data.dense_format import IGNORE_INDEX

CLASS_NAMES_37: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor_mat",
    "clothes", "ceiling", "books", "fridge", "tv", "paper", "towel", "shower_curtain", "box", "whiteboard",
    "person", "night_stand", "toilet", "sink", "lamp", "bathtub", "bag",
)  # fmt: skip

CLASS_NAMES_13: tuple[str, ...] = (
    "bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa", "table", "tv", "wall", "window",
)  # fmt: skip

# The standard 37-to-13 table, written by name so that a reader can check it at a glance.
COARSE_CLASS_OF: dict[str, str] = {
    "wall": "wall",
    "floor": "floor",
    "cabinet": "furniture",
    "bed": "bed",
    "chair": "chair",
    "sofa": "sofa",
    "table": "table",
    "door": "wall",
    "window": "window",
    "bookshelf": "furniture",
    "picture": "picture",
    "counter": "furniture",
    "blinds": "window",
    "desk": "table",
    "shelves": "furniture",
    "curtain": "window",
    "dresser": "furniture",
    "pillow": "objects",
    "mirror": "objects",
    "floor_mat": "floor",
    "clothes": "objects",
    "ceiling": "ceiling",
    "books": "books",
    "fridge": "furniture",
    "tv": "tv",
    "paper": "objects",
    "towel": "objects",
    "shower_curtain": "objects",
    "box": "objects",
    "whiteboard": "objects",
    "person": "objects",
    "night_stand": "furniture",
    "toilet": "objects",
    "sink": "objects",
    "lamp": "objects",
    "bathtub": "objects",
    "bag": "objects",
}

# Largest class id in SUNRGBD2Dseg.mat, where 0 is void.
MAX_SOURCE_LABEL = len(CLASS_NAMES_37)


def _lookup_table(target_index_of_id: list[int]) -> np.ndarray:
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    table[1 : MAX_SOURCE_LABEL + 1] = target_index_of_id
    return table


# Indexed by a source label 0..37 (the 256 entries cover any uint8). Entry 0 and unused entries are IGNORE_INDEX.
SEGMENTATION37_OF_SOURCE = _lookup_table(list(range(MAX_SOURCE_LABEL)))
SEGMENTATION13_OF_SOURCE = _lookup_table([CLASS_NAMES_13.index(COARSE_CLASS_OF[name]) for name in CLASS_NAMES_37])


def to_segmentation37(source_labels: np.ndarray) -> np.ndarray:
    """Map source labels 0..37 (uint8) to 37-class indices 0..36, void to 255."""
    return SEGMENTATION37_OF_SOURCE[source_labels]


def to_segmentation13(source_labels: np.ndarray) -> np.ndarray:
    """Map source labels 0..37 (uint8) to 13-class indices 0..12, void to 255."""
    return SEGMENTATION13_OF_SOURCE[source_labels]

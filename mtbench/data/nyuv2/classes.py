"""NYUv2 class sets: the 894 raw labels, the 40 classes of ``classMapping40.mat`` and the 13 classes of ``class13Mapping.mat``.

The labeled .mat file annotates 894 raw classes (0 = unlabeled).
``classMapping40.mat`` maps them to 40 classes and ``class13Mapping.mat``
maps those 40 to the 13 classes the multi-task benchmark uses. In every
set, id 0 is void and class ids start at 1.
"""

NUM_RAW_CLASSES = 894

CLASS_NAMES_40: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat",
    "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel", "shower curtain", "box", "whiteboard",
    "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)  # fmt: skip

CLASS_NAMES_13: tuple[str, ...] = (
    "bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa", "table", "tv", "wall", "window",
)  # fmt: skip

# The 13-class id of each 40-class id 1..40 that class13Mapping.mat is reported to contain.
# NOTE: not compared with a real copy of the file; the builder logs a warning and records
# map_40_to_13_matches_published = false when a file differs, and then uses the file's table.
PUBLISHED_MAP_40_TO_13: tuple[int, ...] = (
    12, 5, 6, 1, 4, 9, 10, 12, 13, 6,
    8, 6, 13, 10, 6, 13, 6, 7, 7, 5,
    7, 3, 2, 6, 11, 7, 7, 7, 7, 7,
    7, 6, 7, 7, 7, 7, 7, 7, 6, 7,
)  # fmt: skip

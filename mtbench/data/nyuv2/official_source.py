"""NYUv2 from the four official files: the labeled .mat file, ``splits.mat`` and the two class mappings.

Labels go from the 894 raw classes to 40 (``classMapping40.mat``) to 13
(``class13Mapping.mat``); raw 0 (unlabeled) becomes void. Depth comes from
the in-painted ``depths`` or the raw ``rawDepths`` dataset. The source has no
normals, so the builder computes them from depth with the NYU RGB
intrinsics, scaled when the file's frames are not 640 x 480.
"""

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtbench.data.dense_format import sha256_of_file
from mtbench.data.nyuv2.camera import NYU_RGB_INTRINSICS
from mtbench.data.nyuv2.class_mapping import (
    CLASS_MAPPING_13_NAME,
    CLASS_MAPPING_40_NAME,
    map_raw_labels,
    raw_to_segmentation_lookup,
    read_map_40_to_13,
    read_map_raw_to_40,
)
from mtbench.data.nyuv2.classes import PUBLISHED_MAP_40_TO_13
from mtbench.data.nyuv2.official_mat import LABELED_MAT_NAME, LabeledMat
from mtbench.data.nyuv2.official_splits import SPLITS_MAT_NAME, read_official_splits
from mtbench.data.nyuv2.sample import NyuSample, depth_in_metres
from mtbench.data.nyuv2.source import SOURCE_SPLITS
from mtbench.errors import MtbenchError

OFFICIAL_FILE_NAMES = (LABELED_MAT_NAME, SPLITS_MAT_NAME, CLASS_MAPPING_40_NAME, CLASS_MAPPING_13_NAME)


@dataclass(frozen=True)
class OfficialFiles:
    """Paths of the four official files."""

    labeled_mat: Path
    splits: Path
    class_mapping40: Path
    class_mapping13: Path

    def as_dict(self) -> dict[str, Path]:
        return {
            LABELED_MAT_NAME: self.labeled_mat,
            SPLITS_MAT_NAME: self.splits,
            CLASS_MAPPING_40_NAME: self.class_mapping40,
            CLASS_MAPPING_13_NAME: self.class_mapping13,
        }


def locate_official_files(folder: Path | None, overrides: dict[str, Path | None]) -> OfficialFiles:
    """Return each official file from ``overrides`` (keyed by file name) or else from ``folder``.

    Raises MtbenchError when ``folder`` is missing or empty, or a file is
    found neither way, listing every missing file.
    """
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise MtbenchError(f"NYUv2 folder {folder} not found. Pass the folder that contains {', '.join(OFFICIAL_FILE_NAMES)}.")
        if not any(folder.iterdir()):
            raise MtbenchError(f"NYUv2 folder {folder} is empty. Put {', '.join(OFFICIAL_FILE_NAMES)} there, or add --download.")

    paths: dict[str, Path] = {}
    missing = []
    for name in OFFICIAL_FILE_NAMES:
        path = overrides.get(name) or (folder / name if folder is not None else None)
        if path is None or not Path(path).is_file():
            missing.append(str(path) if path is not None else name)
        else:
            paths[name] = Path(path)
    if missing:
        where = f" in {folder}" if folder is not None else ""
        raise MtbenchError(
            f"Official NYUv2 file(s) not found{where}: {', '.join(missing)}. Pass --nyuv2-folder with all four files "
            f"({', '.join(OFFICIAL_FILE_NAMES)}), name each with its option, or add --download."
        )
    return OfficialFiles(*(paths[name] for name in OFFICIAL_FILE_NAMES))


class OfficialSource:
    """The official files, opened and checked. ``samples`` reads one image at a time."""

    kind = "official"

    def __init__(self, files: OfficialFiles, depth_dataset: str = "depths", log: Callable[[str], None] = print) -> None:
        self.files = files
        self.depth_dataset = depth_dataset
        self._mat = LabeledMat(files.labeled_mat, depth_dataset)
        try:
            self._splits = read_official_splits(files.splits, self._mat.count)
            map_raw_to_40 = read_map_raw_to_40(files.class_mapping40)
            map_40_to_13, self.class_names_in_file = read_map_40_to_13(files.class_mapping13)
        except BaseException:
            self._mat.close()
            raise
        self._lookup = raw_to_segmentation_lookup(map_raw_to_40, map_40_to_13)
        self.matches_published_40_to_13 = tuple(map_40_to_13[1:].tolist()) == PUBLISHED_MAP_40_TO_13
        if not self.matches_published_40_to_13:
            log(f"Warning: {files.class_mapping13} maps the 40 classes to 13 differently from the published table; using the file's table.")
        self.intrinsics = NYU_RGB_INTRINSICS.resized(self._mat.height, self._mat.width)

    def split_sizes(self) -> dict[str, int]:
        return {split: len(self._splits[split]) for split in SOURCE_SPLITS}

    def samples(self, split: str) -> Iterator[NyuSample]:
        for image_id in self._splits[split]:
            where = f"{self.files.labeled_mat}, image {image_id}"
            image, depth, raw_labels = self._mat.read(int(image_id) - 1)
            yield NyuSample(
                image=image,
                segmentation=map_raw_labels(raw_labels, self._lookup, where),
                depth=depth_in_metres(depth, where),
                normal=None,
                intrinsics=self.intrinsics,
                source_index=int(image_id),
            )

    def provenance(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "depth_dataset": self.depth_dataset,
            "image_size": [self._mat.height, self._mat.width],
            "map_40_to_13_matches_published": self.matches_published_40_to_13,
            "intrinsics": dataclasses.asdict(self.intrinsics),
            "files": {name: {"path": str(path), "sha256": sha256_of_file(path), "bytes": path.stat().st_size} for name, path in self.files.as_dict().items()},
        }

    def close(self) -> None:
        self._mat.close()

"""NYUv2 from the preprocessed copy distributed with MTAN, LibMTL and Nash-MTL: one .npy file per image and target.

Layout: ``<root>/{train,val}/{image,label,depth,normal}/{i}.npy`` with
i = 0..794 in ``train`` and 0..653 in ``val``, which is the official test
split. Every array is 288 x 384: ``image`` (H, W, 3) RGB floats in [0, 1],
``label`` (H, W) 13-class indices 0..12 with -1 = void, ``depth`` (H, W, 1)
metres with 0 = invalid, ``normal`` (H, W, 3) unit vectors with zero =
invalid. The normals are kept as supplied, in the copy's own axis convention.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mtbench.data.nyuv2.sample import (
    NyuSample,
    check_same_size,
    depth_in_metres,
    image_from_unit_floats,
    segmentation_from_shifted,
    unit_normals,
)
from mtbench.errors import MtbenchError

FIELDS = ("image", "label", "depth", "normal")
# The copy calls the official test split "val".
FOLDER_OF_SPLIT = {"train": "train", "test": "val"}


def _count_files(folder: Path) -> int:
    """Return n when ``folder`` contains exactly 0.npy .. (n-1).npy, and raise MtbenchError otherwise."""
    if not folder.is_dir():
        raise MtbenchError(f"{folder} not found. The preprocessed NYUv2 copy has {{train,val}}/{{{','.join(FIELDS)}}}/<i>.npy.")
    stems = sorted(int(path.stem) for path in folder.glob("*.npy") if path.stem.isdigit())
    if stems != list(range(len(stems))):
        missing = sorted(set(range(max(stems, default=-1) + 1)) - set(stems))
        raise MtbenchError(f"{folder}: the files must be numbered 0.npy to {len(stems) - 1}.npy without gaps, but {missing[0]}.npy is missing.")
    return len(stems)


class PreprocessedSource:
    """The preprocessed .npy copy in ``root``; ``samples`` reads one image at a time and checks it."""

    kind = "preprocessed"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise MtbenchError(f"Preprocessed NYUv2 folder {self.root} not found. Pass the folder that contains train/ and val/.")
        if not any(self.root.iterdir()):
            raise MtbenchError(f"Preprocessed NYUv2 folder {self.root} is empty. Extract the copy there so that it contains train/ and val/.")
        self._sizes = {split: self._split_size(split) for split in FOLDER_OF_SPLIT}

    def _split_size(self, split: str) -> int:
        counts = {field: _count_files(self.root / FOLDER_OF_SPLIT[split] / field) for field in FIELDS}
        if len(set(counts.values())) != 1:
            listing = ", ".join(f"{field} {count}" for field, count in counts.items())
            raise MtbenchError(f"{self.root / FOLDER_OF_SPLIT[split]}: the subfolders have different numbers of files ({listing}).")
        if counts["image"] == 0:
            raise MtbenchError(f"{self.root / FOLDER_OF_SPLIT[split]} contains no images.")
        return counts["image"]

    def split_sizes(self) -> dict[str, int]:
        return dict(self._sizes)

    def samples(self, split: str) -> Iterator[NyuSample]:
        for index in range(self._sizes[split]):
            arrays = {field: self._load(split, field, index) for field in FIELDS}
            yield convert_preprocessed(arrays, index, f"{self.root / FOLDER_OF_SPLIT[split]} image {index}")

    def _load(self, split: str, field: str, index: int) -> np.ndarray:
        path = self.root / FOLDER_OF_SPLIT[split] / field / f"{index}.npy"
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise MtbenchError(f"{path} is not a readable .npy file ({error}). Replace it with an intact copy.") from error
        if array.dtype.kind not in "fiu":
            raise MtbenchError(f"{path} has dtype {array.dtype}, expected numbers.")
        return array

    def provenance(self) -> dict[str, Any]:
        return {"kind": self.kind, "folder": str(self.root), "counts": {FOLDER_OF_SPLIT[split]: count for split, count in self._sizes.items()}}

    def close(self) -> None:
        pass


def convert_preprocessed(arrays: dict[str, np.ndarray], index: int, where: str) -> NyuSample:
    """Check the channel-last arrays of one image of the preprocessed copy and convert them to a NyuSample.

    Accepts depth as (H, W, 1) or (H, W). Raises MtbenchError naming ``where``
    for a wrong number of axes or channels, NaN in the image, values out of
    range, or depth that is not in metres.
    """
    image, label, depth, normal = (arrays[field] for field in FIELDS)
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    expected = {"image": (image, 3, 3), "label": (label, 2, None), "depth": (depth, 2, None), "normal": (normal, 3, 3)}
    for field, (array, rank, channels) in expected.items():
        if array.ndim != rank or (channels is not None and array.shape[-1] != channels):
            layout = "(H, W)" if rank == 2 else f"(H, W, {channels})"
            raise MtbenchError(f"{where}: '{field}' has shape {array.shape}, expected {layout} channel-last.")
    check_same_size(where, image=image, label=label, depth=depth, normal=normal)

    return NyuSample(
        image=image_from_unit_floats(image, where),
        segmentation=segmentation_from_shifted(label, where),
        depth=depth_in_metres(depth, where),
        normal=unit_normals(normal, where),
        intrinsics=None,
        source_index=index,
    )

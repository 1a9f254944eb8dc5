"""The official train/test split from ``allsplit.mat``, and the validation split carved from train.

``allsplit.mat`` (MAT v5) contains the cell arrays ``alltrain`` (5285 entries)
and ``alltest`` (5050 entries) of scene-folder paths on the authors' file
system, such as ``/n/fs/sun3d/data/SUNRGBD/kv2/kinect2data/<scene>``. A frame
belongs to the split that lists its scene folder, the folder two levels
above its RGB file. Both sides are compared after
``relative_sunrgbd_path``, so prefixes and trailing slashes do not matter.
"""

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import h5py
import numpy as np

from mtbench.data.sunrgbd.layout import relative_sunrgbd_path
from mtbench.data.sunrgbd.matfile import is_hdf5_mat, load_mat_v5, open_mat_v73, v5_text_list, v73_text_list
from mtbench.data.sunrgbd.meta import MetaRecord
from mtbench.errors import MtbenchError

SPLIT_VARIABLES: dict[str, str] = {"train": "alltrain", "test": "alltest"}
REPLACE_HINT = "Replace it with SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat from SUNRGBDtoolbox.zip."
# How many offending scene folders an error message lists.
_LISTED_IN_ERRORS = 3


@dataclass(frozen=True)
class OfficialSplit:
    """The scene folders (relative to ``SUNRGBD/``) of the official train and test splits."""

    train: frozenset[PurePosixPath]
    test: frozenset[PurePosixPath]


def read_official_split(path: Path) -> OfficialSplit:
    """Read ``alltrain`` and ``alltest`` from ``allsplit.mat`` (MAT v5, or v7.3 read with h5py).

    Raises MtbenchError naming ``path`` when the file cannot be read, lacks a
    variable, lists a path without a sensor folder, or lists a scene in
    both splits.
    """
    path = Path(path)
    lists = _read_v73_lists(path) if is_hdf5_mat(path) else _read_v5_lists(path)

    scenes: dict[str, frozenset[PurePosixPath]] = {}
    for split, entries in lists.items():
        try:
            scenes[split] = frozenset(relative_sunrgbd_path(entry) for entry in entries)
        except ValueError as error:
            raise MtbenchError(f"{path}: an entry of {SPLIT_VARIABLES[split]}: {error}. {REPLACE_HINT}") from error

    both = sorted(scenes["train"] & scenes["test"])
    if both:
        raise MtbenchError(f"{path} lists scene folders in both alltrain and alltest ({len(both)} in all), such as {_listing(both)}. {REPLACE_HINT}")
    return OfficialSplit(train=scenes["train"], test=scenes["test"])


def _read_v5_lists(path: Path) -> dict[str, list[str]]:
    variables = load_mat_v5(path, list(SPLIT_VARIABLES.values()))
    lists = {}
    for split, name in SPLIT_VARIABLES.items():
        try:
            lists[split] = v5_text_list(variables[name])
        except ValueError as error:
            raise MtbenchError(f"{path}: variable {name}: {error}. {REPLACE_HINT}") from error
    return lists


def _read_v73_lists(path: Path) -> dict[str, list[str]]:
    lists = {}
    with open_mat_v73(path) as file:
        for split, name in SPLIT_VARIABLES.items():
            dataset = file.get(name)
            if not isinstance(dataset, h5py.Dataset):
                raise MtbenchError(f"{path} has no variable {name} (top-level names found: {', '.join(file) or 'none'}). {REPLACE_HINT}")
            try:
                lists[split] = v73_text_list(file, dataset)
            except ValueError as error:
                raise MtbenchError(f"{path}: variable {name}: {error}. {REPLACE_HINT}") from error
    return lists


def assign_official_split(
    records: Sequence[MetaRecord], split: OfficialSplit, split_path: Path, log: Callable[[str], None]
) -> dict[str, list[int]]:
    """Return the ``MetaRecord.index`` values of the official ``train`` and ``test`` splits, in meta order.

    Raises MtbenchError when a frame's scene folder is in neither split, or
    when two frames share a scene folder, since then the split could not
    tell them apart. Scene folders of the split file without a frame are
    only counted in the log.
    """
    shared = sorted(scene for scene, count in Counter(record.scene for record in records).items() if count > 1)
    if shared:
        raise MtbenchError(
            f"SUNRGBDMeta.mat lists scene folders for more than one frame ({len(shared)} in all), such as {_listing(shared)}, "
            "so allsplit.mat cannot assign its frames. Replace SUNRGBDMeta.mat with the file from SUNRGBDtoolbox.zip."
        )

    assigned: dict[str, list[int]] = {"train": [], "test": []}
    unassigned = []
    for record in records:
        if record.scene in split.train:
            assigned["train"].append(record.index)
        elif record.scene in split.test:
            assigned["test"].append(record.index)
        else:
            unassigned.append(record.scene)
    if unassigned:
        raise MtbenchError(
            f"Frames of SUNRGBDMeta.mat have a scene folder that neither alltrain nor alltest of {split_path} lists "
            f"({len(unassigned)} in all), such as {_listing(unassigned)}. Use SUNRGBDMeta.mat and allsplit.mat from the same SUNRGBDtoolbox.zip."
        )

    unused = len(split.train) + len(split.test) - len(records)
    if unused:
        log(f"SUN RGB-D: ignoring the scene folders of {split_path} without a frame in SUNRGBDMeta.mat ({unused} in all).")
    return assigned


def carve_validation(train: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split ``train`` into (train, val) at random: val gets ``round(fraction * len(train))`` frames.

    ``numpy.random.default_rng(seed)`` draws the val frames, so the same
    seed and train list give the same split. Both lists keep the order of
    ``train``. Raises MtbenchError when ``fraction`` is outside (0, 1) or
    leaves train or val empty.
    """
    if not 0 < fraction < 1:
        raise MtbenchError(f"Invalid --val-fraction {fraction}: use a number between 0 and 1, such as 0.1.")
    val_count = round(fraction * len(train))
    if not 0 < val_count < len(train):
        raise MtbenchError(
            f"--val-fraction {fraction} of {len(train)} training frames gives {val_count} validation frames, "
            "which leaves train or val empty. Choose a fraction that gives at least one frame to each."
        )

    chosen = set(np.random.default_rng(seed).choice(len(train), size=val_count, replace=False).tolist())
    kept = [frame for position, frame in enumerate(train) if position not in chosen]
    val = [frame for position, frame in enumerate(train) if position in chosen]
    return kept, val


def _listing(scenes: Sequence[PurePosixPath]) -> str:
    return ", ".join(str(scene) for scene in scenes[:_LISTED_IN_ERRORS])

"""Building the prepared SUN RGB-D dataset from the published files.

``prepare_sunrgbd`` reads the frame list (``SUNRGBDMeta.mat``), the official
split (``allsplit.mat``) and the labels (``SUNRGBD2Dseg.mat``), and carves a
validation split from train. It then decodes every frame, resizes it to the
benchmark sizes, and writes the dense format of ``mtbench.data.dense_format``
with the fields ``image``, ``segmentation13``, ``segmentation37`` and
``depth``.
"""

import shlex
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtbench.data.dense_format import SPLITS, check_replaceable, write_dense_dataset
from mtbench.data.sunrgbd.classes import CLASS_NAMES_13, CLASS_NAMES_37, SEGMENTATION13_OF_SOURCE, to_segmentation13, to_segmentation37
from mtbench.data.sunrgbd.defaults import (
    DATASET_NAME,
    DEFAULT_MAX_DEPTH,
    DEFAULT_VAL_FRACTION,
    DEPTH_SOURCES,
    IMAGE_SIZE,
    TARGET_SIZE,
)
from mtbench.data.sunrgbd.depth_png import read_depth_png
from mtbench.data.sunrgbd.layout import SourceFiles, find_source_files
from mtbench.data.sunrgbd.meta import MetaRecord, read_meta
from mtbench.data.sunrgbd.resize import resize_depth, resize_image, resize_labels
from mtbench.data.sunrgbd.rgb_image import read_rgb_image
from mtbench.data.sunrgbd.seg_mat import SegLabels
from mtbench.data.sunrgbd.split import assign_official_split, carve_validation, read_official_split
from mtbench.errors import MtbenchError
from mtbench.paths import data_root

# Bump when the same sources and options would give different bytes.
BUILDER_VERSION = 1

_PROGRESS_INTERVAL = 500
# Frames whose missing files an error message lists.
_LISTED_IN_ERRORS = 3


def sunrgbd_folder(root: Path | None = None) -> Path:
    """Return the prepared dataset folder, ``<root>/sunrgbd`` (``root`` defaults to ``data_root()``)."""
    return Path(root if root is not None else data_root()) / DATASET_NAME


def prepare_sunrgbd(
    source_folder: Path,
    out_dir: Path,
    *,
    seed: int = 0,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    depth_source: str = "raw",
    max_depth: float = DEFAULT_MAX_DEPTH,
    image_size: tuple[int, int] = IMAGE_SIZE,
    target_size: tuple[int, int] = TARGET_SIZE,
    log: Callable[[str], None] = print,
) -> Path:
    """Build SUN RGB-D from ``source_folder`` and write it to ``out_dir``; return ``out_dir``.

    ``source_folder`` contains ``SUNRGBD/`` and ``SUNRGBDtoolbox/`` (see
    ``mtbench.data.sunrgbd.layout``). Train and test are the official
    splits, except that ``round(val_fraction * train frames)`` frames drawn
    with ``seed`` form val. Within a split, frames keep the order of
    ``SUNRGBDMeta.mat``. ``depth_source`` picks the raw (``depth/``) or the
    in-painted (``depth_bfx/``) depth, and depth beyond ``max_depth`` metres
    becomes invalid (0). Sizes are (height, width).

    Every source file is read and checked before ``out_dir`` is touched, and
    ``out_dir`` is replaced only once every file is written. All arrays are
    held in memory until then: 3.6 GB for the 10335 frames at the default sizes.
    Raises MtbenchError for missing or invalid sources or options.
    """
    _check_options(seed, depth_source, max_depth, image_size, target_size)
    out_dir = Path(out_dir)
    check_replaceable(out_dir)

    sources = find_source_files(Path(source_folder))
    log(f"SUN RGB-D: reading {sources.meta}")
    records = read_meta(sources.meta)
    official = assign_official_split(records, read_official_split(sources.split), sources.split, log)
    train, val = carve_validation(official["train"], val_fraction, seed)
    frames = {"train": [records[index] for index in train], "val": [records[index] for index in val], "test": [records[index] for index in official["test"]]}
    _check_files_exist(records, sources, depth_source)
    log(
        f"SUN RGB-D: {len(records)} frames, {len(official['train'])} train and {len(official['test'])} test in the official split. "
        f"Validation takes {len(val)} of the training frames (seed {seed})."
    )

    started = time.monotonic()
    with SegLabels(sources.segmentation) as seg_labels:
        if len(seg_labels) != len(records):
            raise MtbenchError(
                f"{sources.segmentation} has {len(seg_labels)} label images, but {sources.meta} lists {len(records)} frames. "
                "Use SUNRGBD2Dseg.mat and SUNRGBDMeta.mat from the same SUNRGBDtoolbox.zip."
            )
        splits = {}
        for split in SPLITS:
            splits[split] = _build_split(split, frames[split], sources, seg_labels, depth_source, max_depth, image_size, target_size, log, started)

    options = {"val_fraction": val_fraction, "depth_source": depth_source, "max_depth": max_depth, "image_size": list(image_size), "target_size": list(target_size)}
    metadata = _metadata(Path(source_folder), sources, seed, options, official, frames)
    return write_dense_dataset(out_dir, splits, metadata, log)


def _check_options(seed: int, depth_source: str, max_depth: float, image_size: Sequence[int], target_size: Sequence[int]) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise MtbenchError(f"Invalid seed {seed!r}: use an integer from 0 to 2**32 - 1.")
    if depth_source not in DEPTH_SOURCES:
        raise MtbenchError(f"Invalid depth source {depth_source!r}: use one of {', '.join(DEPTH_SOURCES)}.")
    if not max_depth > 0:
        raise MtbenchError(f"Invalid maximum depth {max_depth} m: use a positive number of metres, such as {DEFAULT_MAX_DEPTH}.")
    for name, size in (("image size", image_size), ("target size", target_size)):
        if len(size) != 2 or not all(isinstance(length, int) and length > 0 for length in size):
            raise MtbenchError(f"Invalid {name} {size!r}: use two positive integers (height, width).")


def _check_files_exist(records: Sequence[MetaRecord], sources: SourceFiles, depth_source: str) -> None:
    """Raise MtbenchError listing frames whose colour or depth file is absent, before any frame is decoded."""
    missing = []
    for record in records:
        for relative in (record.rgb_path, record.depth_path_of(depth_source)):
            if not (sources.images / relative).is_file():
                missing.append(f"{sources.images / relative} (entry {record.index + 1})")
    if missing:
        raise MtbenchError(
            f"Files that {sources.meta} references are missing from {sources.images} ({len(missing)} in all), such as "
            f"{', '.join(missing[:_LISTED_IN_ERRORS])}. Unzip SUNRGBD.zip again, or use the SUNRGBDMeta.mat of the same release."
        )


def _build_split(
    split: str,
    frames: Sequence[MetaRecord],
    sources: SourceFiles,
    seg_labels: SegLabels,
    depth_source: str,
    max_depth: float,
    image_size: tuple[int, int],
    target_size: tuple[int, int],
    log: Callable[[str], None],
    started: float,
) -> dict[str, np.ndarray]:
    """Decode, check and resize the frames of one split into the arrays of the dense format."""
    count = len(frames)
    arrays = {
        "image": np.empty((count, 3, *image_size), dtype=np.uint8),
        "segmentation13": np.empty((count, *target_size), dtype=np.uint8),
        "segmentation37": np.empty((count, *target_size), dtype=np.uint8),
        "depth": np.empty((count, *target_size), dtype=np.float32),
    }

    for position, record in enumerate(frames):
        rgb, labels, depth = _read_frame(record, sources, seg_labels, depth_source, max_depth)
        target_labels = resize_labels(labels, target_size)
        arrays["image"][position] = resize_image(rgb, image_size)
        arrays["segmentation13"][position] = to_segmentation13(target_labels)
        arrays["segmentation37"][position] = to_segmentation37(target_labels)
        arrays["depth"][position] = resize_depth(depth, target_size)
        if (position + 1) % _PROGRESS_INTERVAL == 0 or position + 1 == count:
            log(f"SUN RGB-D {split}: {position + 1}/{count} frames ({time.monotonic() - started:.0f} s since the start).")
    return arrays


def _read_frame(
    record: MetaRecord, sources: SourceFiles, seg_labels: SegLabels, depth_source: str, max_depth: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return colour (H, W, 3) uint8, labels (H, W) uint8 0..37 and depth (H, W) float32 metres; check that the sizes agree."""
    rgb_path = sources.images / record.rgb_path
    depth_path = sources.images / record.depth_path_of(depth_source)
    rgb = read_rgb_image(rgb_path)
    labels = seg_labels.read(record.index)
    depth = read_depth_png(depth_path, max_depth)

    height, width = rgb.shape[:2]
    for name, array in ((f"label image (entry {record.index + 1} of {seg_labels.path})", labels), (f"depth image {depth_path}", depth)):
        if array.shape != (height, width):
            raise MtbenchError(
                f"Colour image {rgb_path} is {width}x{height} pixels but its {name} is {array.shape[1]}x{array.shape[0]}. "
                "Use SUNRGBD.zip and SUNRGBDtoolbox.zip of the same release."
            )
    return rgb, labels, depth


def _metadata(
    source_folder: Path,
    sources: SourceFiles,
    seed: int,
    options: dict[str, Any],
    official: dict[str, list[int]],
    frames: dict[str, list[MetaRecord]],
) -> dict[str, Any]:
    command = ["mtbench", "prepare", DATASET_NAME, "--sunrgbd-folder", str(source_folder), "--seed", str(seed)]
    command += ["--val-fraction", str(options["val_fraction"]), "--sunrgbd-depth", options["depth_source"], "--sunrgbd-max-depth", str(options["max_depth"])]
    return {
        "dataset": DATASET_NAME,
        "prepare_command": shlex.join(command),
        "builder": {"name": "mtbench.data.sunrgbd", "version": BUILDER_VERSION},
        "source": {
            "name": "SUN RGB-D",
            "folder": str(source_folder),
            "files": {"images": str(sources.images), "meta": str(sources.meta), "segmentation": str(sources.segmentation), "split": str(sources.split)},
        },
        "seed": seed,
        "options": options,
        "class_names": {"segmentation13": list(CLASS_NAMES_13), "segmentation37": list(CLASS_NAMES_37)},
        # Entry c - 1 is the segmentation13 index of segmentation37 class c - 1.
        "segmentation13_of_segmentation37": SEGMENTATION13_OF_SOURCE[1 : len(CLASS_NAMES_37) + 1].tolist(),
        "depth_unit": "metres",
        "depth_invalid_value": 0,
        "resampling": {
            "image": "PIL bilinear (antialiased when shrinking)",
            "segmentation": "nearest source pixel to each target pixel centre",
            "depth": "mean of the valid pixels of each adaptive-pooling window; invalid when under half of the window is valid",
        },
        "official_split_counts": {split: len(indices) for split, indices in official.items()},
        "sensor_counts": {split: dict(sorted(Counter(record.sensor for record in records).items())) for split, records in frames.items()},
        # 0-based positions in SUNRGBDMeta.mat (and SUNRGBD2Dseg.mat) of each split's frames, in stored order.
        "source_indices": {split: [record.index for record in records] for split, records in frames.items()},
    }

"""Building the prepared NYUv2 dataset from any source: splits, resizing, normals, and the atomic write.

Protocol: the official 795 training images are split into train and val
(``carve_validation``), and the 654 official test images form test. Inputs
are resized to the resolution's input size and targets to its target size
(see ``resize``). Normals come from the source when it has them. Otherwise
they are computed from the resized depth, with the intrinsics scaled to the
target size (see ``normals``).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtbench.data.dense_format import check_replaceable, write_dense_dataset
from mtbench.data.nyuv2.classes import CLASS_NAMES_13
from mtbench.data.nyuv2.normals import normals_from_depth
from mtbench.data.nyuv2.resize import MIN_VALID_FRACTION, resize_depth, resize_image, resize_labels, resize_normals
from mtbench.data.nyuv2.sample import NyuSample, check_same_size
from mtbench.data.nyuv2.source import NyuSource
from mtbench.data.nyuv2.validation_split import carve_validation
from mtbench.errors import MtbenchError

DATASET_NAME = "nyuv2"
# Bump when the same source, seed and options would give different bytes.
BUILDER_VERSION = 1
_LOG_EVERY = 100


@dataclass(frozen=True)
class Resolution:
    """A prepared variant: input and target sizes as (height, width), and its folder under the data root."""

    name: str
    input_size: tuple[int, int]
    target_size: tuple[int, int]
    folder_name: str


RESOLUTIONS: dict[str, Resolution] = {
    "320x320": Resolution("320x320", (320, 320), (80, 80), "nyuv2"),
    "288x384": Resolution("288x384", (288, 384), (288, 384), "nyuv2-288x384"),
}
DEFAULT_RESOLUTION = "320x320"

NORMAL_CONVENTIONS = {
    "computed": "computed by mtbench from depth: camera coordinates, x right, y down, z forward, facing the camera (n . P <= 0)",
    "supplied": "as supplied by the source, renormalised; the axis convention is the source's and was not checked against mtbench's",
}


def convert_sample(sample: NyuSample, resolution: Resolution) -> dict[str, np.ndarray]:
    """Resize one sample to ``resolution`` and return its prepared fields (channel-first image and normal)."""
    where = f"image {sample.source_index}"
    arrays = {"image": sample.image, "segmentation": sample.segmentation, "depth": sample.depth}
    if sample.normal is not None:
        arrays["normal"] = sample.normal
    check_same_size(where, **arrays)

    target = resolution.target_size
    depth = resize_depth(sample.depth, target)
    if sample.normal is not None:
        normal = resize_normals(sample.normal, target)
    else:
        normal = normals_from_depth(depth, sample.intrinsics.resized(*target))
    return {
        "image": resize_image(sample.image, resolution.input_size),
        "segmentation": resize_labels(sample.segmentation, target),
        "depth": depth,
        "normal": np.ascontiguousarray(normal.transpose(2, 0, 1)),
    }


def _empty_split(count: int, resolution: Resolution) -> dict[str, np.ndarray]:
    height, width = resolution.input_size
    target_height, target_width = resolution.target_size
    return {
        "image": np.zeros((count, 3, height, width), dtype=np.uint8),
        "segmentation": np.zeros((count, target_height, target_width), dtype=np.uint8),
        "depth": np.zeros((count, target_height, target_width), dtype=np.float32),
        "normal": np.zeros((count, 3, target_height, target_width), dtype=np.float32),
    }


def build_nyuv2(
    source: NyuSource,
    folder: Path,
    resolution: Resolution,
    val_fraction: float,
    seed: int,
    options: dict[str, Any],
    log: Callable[[str], None],
) -> Path:
    """Read every image of ``source``, convert it, and write the dataset to ``folder`` atomically.

    ``options`` (JSON values) are recorded in the manifest. Returns ``folder``.
    Raises MtbenchError for invalid options, for a source that yields fewer
    or more images than it announced, and for every error of the source. The
    old copy in ``folder`` then stays as it was.
    """
    folder = Path(folder)
    check_replaceable(folder)
    sizes = source.split_sizes()
    train_positions, val_positions = carve_validation(sizes["train"], val_fraction, seed)
    log(f"NYUv2 from the {source.kind} source: {len(train_positions)} train, {len(val_positions)} val, {sizes['test']} test images")

    splits = {
        "train": _empty_split(len(train_positions), resolution),
        "val": _empty_split(len(val_positions), resolution),
        "test": _empty_split(sizes["test"], resolution),
    }
    source_indices: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    destination = {int(position): ("val", slot) for slot, position in enumerate(val_positions)}
    destination.update({int(position): ("train", slot) for slot, position in enumerate(train_positions)})

    for source_split in ("train", "test"):
        count = 0
        for position, sample in enumerate(source.samples(source_split)):
            if position >= sizes[source_split]:
                raise MtbenchError(f"The {source.kind} source yields more than the {sizes[source_split]} {source_split} images it announced.")
            split, slot = destination[position] if source_split == "train" else ("test", position)
            for field, array in convert_sample(sample, resolution).items():
                splits[split][field][slot] = array
            # Positions arrive in increasing order and slots follow sorted positions, so appending keeps slot order.
            source_indices[split].append(sample.source_index)
            count = position + 1
            if count % _LOG_EVERY == 0:
                log(f"{source_split}: {count}/{sizes[source_split]} images")
        if count != sizes[source_split]:
            raise MtbenchError(f"The {source.kind} source yielded {count} of the {sizes[source_split]} {source_split} images it announced.")

    metadata = _metadata(source, resolution, val_fraction, seed, options, source_indices)
    return write_dense_dataset(folder, splits, metadata, log)


def _metadata(
    source: NyuSource,
    resolution: Resolution,
    val_fraction: float,
    seed: int,
    options: dict[str, Any],
    source_indices: dict[str, list[int]],
) -> dict[str, Any]:
    normal_origin = "supplied" if source.kind != "official" else "computed"
    command = f"mtbench prepare {DATASET_NAME} --nyuv2-source {source.kind}"
    if resolution.name != DEFAULT_RESOLUTION:
        command += f" --resolution {resolution.name}"
    return {
        "dataset": DATASET_NAME,
        "prepare_command": command,
        "builder": {"name": "mtbench.data.nyuv2", "version": BUILDER_VERSION},
        "source": source.provenance(),
        "seed": seed,
        "val_fraction": val_fraction,
        "resolution": resolution.name,
        "options": options,
        "class_names": {"segmentation": list(CLASS_NAMES_13)},
        "source_indices": source_indices,
        "depth": {
            "unit": "m",
            "invalid": 0,
            "resize": f"validity-weighted area average, valid when valid pixels cover at least {MIN_VALID_FRACTION} of the footprint",
        },
        "normal": {"origin": normal_origin, "convention": NORMAL_CONVENTIONS[normal_origin], "invalid": "zero vector"},
        "segmentation": {"ignore_index": 255, "resize": "nearest (source pixel containing the target pixel centre)"},
        "image_resize": "PIL BILINEAR (antialiased when shrinking)",
    }

"""MultiDigitMNIST: two MNIST digits side by side, one classification task each.

Each 64 x 64 grey image contains an even digit in its left half (task "left") and
an odd digit in its right half (task "right"). Class indices are
``left digit // 2`` and ``(right digit - 1) // 2``, 5 classes per task. Every
(left, right) class pair occurs in one split only (see
``mtbench.data.multidigitmnist_pairs``). Training and validation images draw
their digits from disjoint parts of the MNIST training set, test images from
the MNIST test set.

``prepare_multidigitmnist`` builds the dataset from MNIST arrays and a seed,
and writes it as .npy files with a manifest. ``load_multidigitmnist`` reads
one split back and checks it.
"""

import hashlib
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mtbench.data.multidigitmnist_format import (
    ARRAY_KINDS,
    BUILDER_VERSION,
    DATASET_NAME,
    FORMAT_VERSION,
    IMAGE_SIZE,
    MANIFEST_NAME,
    overall_checksum,
    dataset_checksum,
    load_multidigitmnist,
    read_manifest,
    verify_multidigitmnist,
)
from mtbench.data.multidigitmnist_pairs import (
    LEFT_DIGITS,
    RIGHT_DIGITS,
    SPLITS,
    assign_pairs,
    left_class,
    pair_digits,
    right_class,
)
from mtbench.errors import MtbenchError
from mtbench.io import atomic_directory, atomic_write_bytes, atomic_write_text
from mtbench.paths import data_root

GLYPH_SIZE = 28
HALF_WIDTH = 32
MAX_Y_OFFSET = 35
MAX_X_OFFSET = 3

INSTANCE_SOURCES: dict[str, str] = {
    "train": "MNIST training set",
    "val": "MNIST training set",
    "test": "MNIST test set",
}


class MnistArraysLike(Protocol):
    """The MNIST arrays that the builder reads, as ``mtbench.data.mnist.MnistArrays`` provides them."""

    @property
    def train_images(self) -> np.ndarray: ...

    @property
    def train_labels(self) -> np.ndarray: ...

    @property
    def test_images(self) -> np.ndarray: ...

    @property
    def test_labels(self) -> np.ndarray: ...

    @property
    def source(self) -> str: ...


def multidigitmnist_folder() -> Path:
    """Return the default dataset folder, ``data_root()/"multidigitmnist"``."""
    return data_root() / DATASET_NAME


# ---------------------------------------------------------------------------
# Building


def prepare_multidigitmnist(
    mnist: MnistArraysLike,
    out_dir: Path,
    seed: int = 0,
    images_per_pair: int = 1000,
    log: Callable[[str], Any] = print,
) -> Path:
    """Build MultiDigitMNIST from ``mnist`` and write it to ``out_dir``; return ``out_dir``.

    One ``numpy.random.default_rng(seed)`` makes every random choice, so the
    same seed and MNIST arrays give the same bytes in every file. Each split
    has ``images_per_pair`` images per class pair (16, 4 and 5 pairs for
    train, val and test), in shuffled order. When a split needs more
    instances of a digit than its source has, instances repeat, and the
    manifest records how often.

    ``out_dir`` is replaced as a whole only after every file is written, so an
    interruption leaves the previous dataset or no folder. Raises MtbenchError
    for invalid MNIST arrays or arguments, and when ``out_dir`` exists with
    content but no manifest.json (it is then not a dataset that this function
    wrote, so it is not deleted).
    """
    out_dir = Path(out_dir)
    _validate_arguments(seed, images_per_pair)
    _validate_mnist(mnist)
    _check_replaceable(out_dir)

    rng = np.random.default_rng(seed)
    pairs = assign_pairs(rng)
    pools = _instance_pools(mnist, pairs, images_per_pair, rng)

    # Imported here so that loading the dataset does not import matplotlib.
    from mtbench.data.sample_grid import write_sample_grid

    with atomic_directory(out_dir) as staging:
        files: dict[str, dict[str, Any]] = {}
        instance_reuse: dict[str, dict[str, dict[str, int]]] = {}

        for split in SPLITS:
            log(f"MultiDigitMNIST: building the {split} split ({len(pairs[split])} class pairs x {images_per_pair} images).")
            source_images = mnist.test_images if split == "test" else mnist.train_images
            images, digits, instance_reuse[split] = _build_split(pairs[split], images_per_pair, pools[split], source_images, rng)
            _log_repeats(split, instance_reuse[split], log)

            arrays = {"images": images, "labels": _class_labels(digits), "digits": digits}
            for kind in ARRAY_KINDS:
                name = f"{split}_{kind}.npy"
                files[name] = _write_npy(staging / name, arrays[kind])
            write_sample_grid(images, digits, staging / f"samples_{split}.png", title=f"MultiDigitMNIST {split} (left digit, right digit)")

        manifest = _manifest(mnist.source, seed, images_per_pair, pairs, instance_reuse, files)
        atomic_write_text(staging / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    log(f"MultiDigitMNIST: wrote {out_dir} (checksum {manifest['checksum']}).")
    return out_dir


def _validate_arguments(seed: int, images_per_pair: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MtbenchError(f"Invalid seed {seed!r}: expected a non-negative integer.")
    if isinstance(images_per_pair, bool) or not isinstance(images_per_pair, (int, np.integer)) or images_per_pair < 1:
        raise MtbenchError(f"Invalid images_per_pair {images_per_pair!r}: expected a positive integer.")


def _validate_mnist(mnist: MnistArraysLike) -> None:
    for name in ("train", "test"):
        images = getattr(mnist, f"{name}_images")
        labels = getattr(mnist, f"{name}_labels")
        where = f"MNIST {name} arrays from {mnist.source}"
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (GLYPH_SIZE, GLYPH_SIZE):
            raise MtbenchError(f"Invalid {where}: images must be a uint8 array of shape (N, 28, 28), got {_describe(images)}. Check the MNIST files it was read from.")
        if not isinstance(labels, np.ndarray) or labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise MtbenchError(f"Invalid {where}: labels must be an integer array of shape ({images.shape[0]},), got {_describe(labels)}. Check the MNIST files it was read from.")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise MtbenchError(f"Invalid {where}: labels must lie in 0..9, found {labels.min()}..{labels.max()}. Check the MNIST files it was read from.")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


def _check_replaceable(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise MtbenchError(f"Cannot write MultiDigitMNIST to {out_dir}: it exists and is not a folder. Remove it or choose another folder.")
    if any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).exists():
        raise MtbenchError(
            f"Cannot write MultiDigitMNIST to {out_dir}: the folder is not empty and has no {MANIFEST_NAME}, "
            "so it is not a prepared dataset and would be deleted. Remove it or choose another folder."
        )


def _instance_pools(
    mnist: MnistArraysLike,
    pairs: dict[str, list[tuple[int, int]]],
    images_per_pair: int,
    rng: np.random.Generator,
) -> dict[str, dict[int, np.ndarray]]:
    """Return, per split and digit, the indices of the MNIST instances that split may use.

    Each digit's training-set instances are shuffled and cut into a training
    part and a validation part in proportion to the images that need them, so
    no instance appears in both splits. Test instances are the test set's.
    """
    needed = {split: _digit_counts(pairs[split], images_per_pair) for split in SPLITS}
    pools: dict[str, dict[int, np.ndarray]] = {split: {} for split in SPLITS}

    for digit in range(10):
        instances = rng.permutation(np.flatnonzero(mnist.train_labels == digit))
        train_count = _training_part_size(len(instances), needed["train"][digit], needed["val"][digit], digit, mnist.source)
        pools["train"][digit] = instances[:train_count]
        pools["val"][digit] = instances[train_count:]
        pools["test"][digit] = np.flatnonzero(mnist.test_labels == digit)

    for split in SPLITS:
        for digit in range(10):
            if needed[split][digit] > 0 and len(pools[split][digit]) == 0:
                raise MtbenchError(
                    f"The {INSTANCE_SOURCES[split]} from {mnist.source} has no instance of digit {digit}, "
                    f"which the {split} split needs. Use the complete MNIST."
                )
    return pools


def _digit_counts(pairs: list[tuple[int, int]], images_per_pair: int) -> dict[int, int]:
    counts = dict.fromkeys(range(10), 0)
    for pair in pairs:
        for digit in pair_digits(pair):
            counts[digit] += images_per_pair
    return counts


def _training_part_size(available: int, train_needed: int, val_needed: int, digit: int, source: str) -> int:
    if val_needed == 0:
        return available
    if train_needed == 0:
        return 0
    if available < 2:
        raise MtbenchError(
            f"The MNIST training set from {source} has {available} instance(s) of digit {digit}, "
            "but the train and val splits need at least one each. Use the complete MNIST."
        )
    proportional = round(available * train_needed / (train_needed + val_needed))
    return min(max(proportional, 1), available - 1)


def _build_split(
    pairs: list[tuple[int, int]],
    images_per_pair: int,
    pools: dict[int, np.ndarray],
    source_images: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, int]]]:
    """Return the images (N, 64, 64) uint8, digits (N, 2) uint8 and instance reuse of one split."""
    count = len(pairs) * images_per_pair
    digit_pairs = np.array([pair_digits(pair) for pair in pairs], dtype=np.uint8)
    digits = np.repeat(digit_pairs, images_per_pair, axis=0)[rng.permutation(count)]

    instances = np.empty((count, 2), dtype=np.int64)
    reuse = {str(digit): {"needed": 0, "available": len(pools[digit]), "max_uses": 0} for digit in range(10)}
    for position in range(2):
        for digit in np.unique(digits[:, position]):
            rows = np.flatnonzero(digits[:, position] == digit)
            drawn, max_uses = _draw_instances(pools[int(digit)], len(rows), rng)
            instances[rows, position] = drawn
            reuse[str(digit)].update(needed=len(rows), max_uses=max_uses)

    y_offsets = rng.integers(0, MAX_Y_OFFSET + 1, size=(count, 2))
    x_offsets = rng.integers(0, MAX_X_OFFSET + 1, size=(count, 2))
    images = _compose_images(source_images, instances, y_offsets, x_offsets)
    return images, digits, reuse


def _draw_instances(pool: np.ndarray, needed: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Draw ``needed`` instances from ``pool`` without replacement until it runs out, then start over.

    Returns the drawn indices and the maximum number of times any one is used,
    which is ``ceil(needed / len(pool))``.
    """
    rounds = math.ceil(needed / len(pool))
    drawn = np.concatenate([rng.permutation(pool) for _ in range(rounds)])[:needed]
    max_uses = int(np.unique(drawn, return_counts=True)[1].max()) if needed else 0
    return drawn, max_uses


def _compose_images(source_images: np.ndarray, instances: np.ndarray, y_offsets: np.ndarray, x_offsets: np.ndarray) -> np.ndarray:
    """Paste glyph ``instances[n, i]`` at row ``y_offsets[n, i]``, column ``32 * i + x_offsets[n, i]`` of image n."""
    images = np.zeros((len(instances), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for index in range(len(instances)):
        for position in range(2):
            top = y_offsets[index, position]
            left = HALF_WIDTH * position + x_offsets[index, position]
            images[index, top : top + GLYPH_SIZE, left : left + GLYPH_SIZE] = source_images[instances[index, position]]
    return images


def _class_labels(digits: np.ndarray) -> np.ndarray:
    labels = np.empty(digits.shape, dtype=np.int64)
    labels[:, 0] = left_class(digits[:, 0].astype(np.int64))
    labels[:, 1] = right_class(digits[:, 1].astype(np.int64))
    return labels


def _log_repeats(split: str, reuse: dict[str, dict[str, int]], log: Callable[[str], Any]) -> None:
    source = "the MNIST test set" if split == "test" else "its share of the MNIST training set"
    for digit, record in reuse.items():
        if record["max_uses"] > 1:
            log(
                f"MultiDigitMNIST: the {split} split needs {record['needed']} instances of digit {digit} "
                f"but {source} has {record['available']}, so instances repeat up to {record['max_uses']} times."
            )


# ---------------------------------------------------------------------------
# Storage


def _write_npy(path: Path, array: np.ndarray) -> dict[str, Any]:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    payload = buffer.getvalue()
    # atomic_write_bytes syncs the file and turns a failed write, such as on a full disk, into MtbenchError.
    atomic_write_bytes(path, payload)
    return {
        "sha256": hashlib.sha256(payload).hexdigest(),
        "dtype": str(array.dtype),
        "shape": list(array.shape),
        "bytes": len(payload),
    }


def _manifest(
    mnist_source: str,
    seed: int,
    images_per_pair: int,
    pairs: dict[str, list[tuple[int, int]]],
    instance_reuse: dict[str, dict[str, dict[str, int]]],
    files: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "builder": {"name": DATASET_NAME, "version": BUILDER_VERSION},
        "mnist_source": mnist_source,
        "seed": int(seed),
        "images_per_pair": int(images_per_pair),
        "image_shape": [IMAGE_SIZE, IMAGE_SIZE],
        "tasks": {
            "left": {"digits": list(LEFT_DIGITS), "class_index": "digit // 2"},
            "right": {"digits": list(RIGHT_DIGITS), "class_index": "(digit - 1) // 2"},
        },
        "counts": {split: len(pairs[split]) * int(images_per_pair) for split in SPLITS},
        "pairs": {split: [list(pair_digits(pair)) for pair in pairs[split]] for split in SPLITS},
        "instance_sources": dict(INSTANCE_SOURCES),
        "instance_reuse": instance_reuse,
        "files": files,
        "checksum": overall_checksum({name: record["sha256"] for name, record in files.items()}),
    }


__all__ = [
    "dataset_checksum",
    "load_multidigitmnist",
    "multidigitmnist_folder",
    "prepare_multidigitmnist",
    "read_manifest",
    "verify_multidigitmnist",
]

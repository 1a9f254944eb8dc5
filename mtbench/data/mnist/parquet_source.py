"""MNIST from the Hugging Face dataset ``ylecun/mnist`` (parquet files).

Each split is one parquet file with columns ``image`` (struct {bytes: PNG of
a mode "L" 28x28 image, path: string or null}) and ``label`` (int64). The
schema metadata key ``huggingface`` contains the ``datasets`` features JSON, in
which ``label`` is a ClassLabel with names "0".."9", so label id k is digit k.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from mtbench.data.mnist.arrays import IMAGE_SHAPE, MnistArrays, check_split
from mtbench.errors import MtbenchError

if TYPE_CHECKING:
    import pyarrow

HF_REPO_ID = "ylecun/mnist"
HF_SPLIT_FILES = {
    "train": "mnist/train-00000-of-00001.parquet",
    "test": "mnist/test-00000-of-00001.parquet",
}
DIGIT_NAMES = [str(digit) for digit in range(10)]


def read_hf_parquet(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one split of ``ylecun/mnist`` from the parquet file at ``path``.

    Returns uint8 images of shape (N, 28, 28) and uint8 labels of shape (N,),
    in the file's row order. Raises MtbenchError naming ``path`` when pyarrow
    is missing, the file is not a readable parquet file, its columns or
    features metadata differ from ``ylecun/mnist``, an image is not a
    decodable 28x28 mode "L" PNG, or a label is outside 0..9.
    """
    path = Path(path)
    table = _read_table(path)
    _check_features(table.schema, path)

    images = [_decode_png(row.get("bytes") if row else None, path, index) for index, row in enumerate(table.column("image").to_pylist())]
    labels = np.asarray(table.column("label").to_numpy(zero_copy_only=False))
    if labels.dtype.kind not in "iu":
        raise MtbenchError(f"{path}: column 'label' must contain integers, got {labels.dtype}.")
    if len(labels) > 0 and (int(labels.min()) < 0 or int(labels.max()) > 9):
        raise MtbenchError(f"{path}: labels range from {int(labels.min())} to {int(labels.max())}, but MNIST labels are digits 0..9.")

    image_array = np.stack(images) if images else np.zeros((0, *IMAGE_SHAPE), dtype=np.uint8)
    return image_array, labels.astype(np.uint8)


def find_hf_parquet_files(folder: Path) -> dict[str, Path] | None:
    """Return the train and test parquet files in ``folder``, or None unless both are there.

    A file is looked up at its path in the dataset repository (``mnist/...``,
    where ``hf_hub_download(..., local_dir=folder)`` puts it) and then by its
    bare name directly in ``folder``.
    """
    folder = Path(folder)
    found = {}
    for split, repo_path in HF_SPLIT_FILES.items():
        candidates = [folder / repo_path, folder / Path(repo_path).name]
        existing = [candidate for candidate in candidates if candidate.is_file()]
        if not existing:
            return None
        found[split] = existing[0]
    return found


def read_hf_parquet_folder(folder: Path) -> MnistArrays:
    """Read MNIST from the two parquet files that ``find_hf_parquet_files`` finds in ``folder``."""
    paths = find_hf_parquet_files(folder)
    if paths is None:
        names = " and ".join(HF_SPLIT_FILES.values())
        raise MtbenchError(f"No Hugging Face MNIST parquet files in {folder}: expected {names}.")

    train_images, train_labels = read_hf_parquet(paths["train"])
    test_images, test_labels = read_hf_parquet(paths["test"])
    result = MnistArrays(
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        source=f"Hugging Face {HF_REPO_ID} parquet: {paths['train']}, {paths['test']}",
    )
    check_split(result.train_images, result.train_labels, "training", result.source)
    check_split(result.test_images, result.test_labels, "test", result.source)
    return result


def load_huggingface_mnist(cache_dir: Path, log: Callable[[str], None] = print) -> MnistArrays:
    """Read MNIST from parquet files in ``cache_dir/huggingface``, downloading them first if absent.

    The download uses ``huggingface_hub.hf_hub_download`` from the dataset
    repository ``ylecun/mnist``. Raises MtbenchError when the files are absent
    and huggingface_hub is not installed or the download fails.
    """
    folder = Path(cache_dir) / "huggingface"
    if find_hf_parquet_files(folder) is not None:
        log(f"Using Hugging Face parquet files already in {folder}.")
        return read_hf_parquet_folder(folder)

    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise MtbenchError(
            f"huggingface_hub is not installed and {folder} has no MNIST parquet files. "
            "Run 'pip install huggingface_hub' to allow the download."
        ) from None

    # NOTE: this download path has no automated test, because tests must not reach the Hugging Face Hub.
    log(f"Downloading {HF_REPO_ID} parquet files into {folder}.")
    for repo_path in HF_SPLIT_FILES.values():
        try:
            hf_hub_download(repo_id=HF_REPO_ID, filename=repo_path, repo_type="dataset", local_dir=folder)
        except (OSError, ValueError) as error:
            raise MtbenchError(f"Download of {repo_path} from the Hugging Face dataset {HF_REPO_ID} failed: {error}") from error
    return read_hf_parquet_folder(folder)


def _read_table(path: Path) -> pyarrow.Table:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise MtbenchError(
            f"Reading {path} needs pyarrow, which is not installed. Run 'pip install mtbench[huggingface]'."
        ) from None

    if not path.is_file():
        raise MtbenchError(f"Parquet file {path} not found.")
    try:
        table = pyarrow.parquet.read_table(path)
    except (pyarrow.ArrowException, OSError) as error:
        raise MtbenchError(f"{path} is not a readable parquet file ({error}). Delete it and download it again.") from error

    if "image" not in table.column_names or "label" not in table.column_names:
        raise MtbenchError(f"{path} has columns {table.column_names}, but a ylecun/mnist file has 'image' and 'label'.")

    image_type = table.schema.field("image").type
    if not (pyarrow.types.is_struct(image_type) and image_type.get_field_index("bytes") >= 0):
        raise MtbenchError(f"{path}: column 'image' has type {image_type}, expected struct<bytes: binary, path: string>.")
    return table


def _check_features(schema: pyarrow.Schema, path: Path) -> None:
    """Require the ``datasets`` features metadata that maps label ids to the digit names "0".."9"."""
    metadata = schema.metadata or {}
    if b"huggingface" not in metadata:
        raise MtbenchError(f"{path} lacks the 'huggingface' schema metadata, so it is not a ylecun/mnist parquet file.")

    try:
        features = json.loads(metadata[b"huggingface"])["info"]["features"]
        image_type = features["image"]["_type"]
        label_type, label_names = features["label"]["_type"], features["label"]["names"]
    except (ValueError, KeyError, TypeError) as error:
        raise MtbenchError(f"{path}: the 'huggingface' schema metadata is not the expected features JSON ({error!r}).") from error

    if image_type != "Image" or label_type != "ClassLabel" or label_names != DIGIT_NAMES:
        raise MtbenchError(
            f"{path}: features are image {image_type}, label {label_type} with names {label_names}, but "
            "ylecun/mnist has image Image and label ClassLabel with names '0'..'9'."
        )


def _decode_png(data: bytes | None, path: Path, index: int) -> np.ndarray:
    if data is None:
        raise MtbenchError(f"{path}: row {index} has no image bytes.")

    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()
            mode, size = image.mode, image.size
            pixels = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise MtbenchError(f"{path}: the image in row {index} is not a decodable PNG ({error}).") from error

    if mode != "L" or size != IMAGE_SHAPE:
        raise MtbenchError(f"{path}: the image in row {index} is mode {mode} {size[0]}x{size[1]}, but MNIST images are mode L 28x28.")
    return pixels

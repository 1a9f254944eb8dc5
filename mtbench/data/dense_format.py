"""The prepared format of dense (per-pixel) benchmarks such as NYUv2 and SUN RGB-D.

A prepared folder ``<data_root>/<name>/`` contains, for each split in
``SPLITS``, one ``<split>_<field>.npy`` file per field, and ``manifest.json``.
Fields and their contracts:

- ``image``: uint8, (N, 3, H, W), RGB, already at the benchmark input size.
- ``segmentation`` or any field whose name starts with ``segmentation``
  (``segmentation13``, ``segmentation37``): uint8, (N, h, w), class indices
  0..C-1 and ``IGNORE_INDEX`` (255) for void. C is the number of class names
  the manifest lists for that field.
- ``depth``: float32, (N, h, w), metres, finite and >= 0, 0 = invalid.
- ``normal``: float32, (N, 3, h, w), unit vectors (x, y, z) in camera
  coordinates, the zero vector = invalid.

All target fields of a dataset share one size (h, w). Every split has the
same fields.

The manifest records the dataset name and the command that rebuilds it.
It also records the source, seed and options of the build, the class names
of each segmentation field, and the shape, dtype and sha256 of every file.
Its ``checksum`` is the sha256 of the ``sha256sum`` listing of all .npy
files sorted by name.
"""

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mtbench.errors import MtbenchError
from mtbench.io import atomic_directory, atomic_write_text

FORMAT_NAME = "mtbench-dense"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SPLITS: tuple[str, ...] = ("train", "val", "test")

IGNORE_INDEX = 255
# Largest deviation of a valid normal's length from 1 that loading accepts.
NORMAL_LENGTH_TOLERANCE = 1e-3

_HASH_CHUNK_BYTES = 1 << 24
_CHECK_CHUNK_SAMPLES = 32


def is_segmentation_field(field: str) -> bool:
    """Return whether ``field`` contains class indices (``segmentation``, ``segmentation13``, ...)."""
    return field.startswith("segmentation")


def expected_dtype(field: str) -> np.dtype:
    """Return the dtype of ``field``; raise ValueError for a field the format does not define."""
    if field == "image" or is_segmentation_field(field):
        return np.dtype(np.uint8)
    if field in ("depth", "normal"):
        return np.dtype(np.float32)
    raise ValueError(f"Unknown dense field {field!r}: expected image, segmentation*, depth or normal.")


def _expected_rank(field: str) -> int:
    return 4 if field in ("image", "normal") else 3


def overall_checksum(file_hashes: Mapping[str, str]) -> str:
    """Return the sha256 of the ``sha256sum`` listing of the files, sorted by name.

    Equal to ``LC_ALL=C ls *.npy | xargs sha256sum | sha256sum`` in the dataset folder.
    """
    listing = "".join(f"{file_hashes[name]}  {name}\n" for name in sorted(file_hashes))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def prepare_hint(folder: Path, manifest: Mapping[str, Any] | None = None) -> str:
    """Return the sentence that names the command that rebuilds ``folder``.

    Without a readable manifest the dataset name is the folder name up to its
    first '-', and the rest is the resolution (``nyuv2-288x384`` ->
    ``mtbench prepare nyuv2 --resolution 288x384``).
    """
    if manifest is not None and isinstance(manifest.get("prepare_command"), str):
        command = manifest["prepare_command"]
    else:
        name, _, variant = Path(folder).name.partition("-")
        # The only variant folder is the 288x384 resolution of NYUv2.
        command = f"mtbench prepare {name}" + (f" --resolution {variant}" if variant else "")
    return f"Run `{command}` again to rebuild it."


# ----------------------------------------------------------------------------- writing


def write_dense_dataset(
    folder: Path,
    splits: Mapping[str, Mapping[str, np.ndarray]],
    metadata: Mapping[str, Any],
    log: Callable[[str], None],
) -> Path:
    """Check the arrays against the format and write them with a manifest into ``folder``.

    ``splits`` maps each of ``SPLITS`` to its fields. ``metadata`` must contain
    ``dataset`` (str) and ``class_names`` (a list of names per segmentation
    field, void excluded). It should contain ``prepare_command``, ``source``,
    ``seed`` and ``options``. Every other JSON value is stored as given.
    The folder is replaced only once every file is written, so a failure or a
    kill leaves the old copy (or nothing). Returns ``folder``.

    Raises ValueError when the arrays break the format contract (wrong
    dtype, shape or field set, a class index out of range, invalid depth or
    normals), because the builder must produce valid arrays. Raises
    MtbenchError when ``folder`` is a file, or a non-empty folder without
    ``manifest.json`` (not a prepared dataset, which replacing would delete),
    and when a file cannot be written.
    """
    folder = Path(folder)
    _check_metadata(metadata)
    shapes = _check_splits(splits, metadata["class_names"])
    check_replaceable(folder)

    with atomic_directory(folder) as staging:
        files: dict[str, dict[str, Any]] = {}
        for split in SPLITS:
            for field, array in splits[split].items():
                name = f"{split}_{field}.npy"
                try:
                    np.save(staging / name, np.ascontiguousarray(array), allow_pickle=False)
                except OSError as error:
                    raise MtbenchError(f"Cannot write {folder / name}: {error}. Free disk space or choose another --data-root, then run again.") from error
                files[name] = {"sha256": sha256_of_file(staging / name), "dtype": str(array.dtype), "shape": list(array.shape)}
            count = len(splits[split]["image"])
            log(f"Wrote the {split} split: {count} image{'s' if count != 1 else ''}")

        manifest = _build_manifest(metadata, splits, files, shapes)
        atomic_write_text(staging / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n")
    log(f"Checksum {manifest['checksum']}")
    return folder


def check_replaceable(folder: Path) -> None:
    """Raise MtbenchError unless ``folder`` is absent, empty or a prepared dataset with a manifest."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise MtbenchError(f"Cannot write a dataset to {folder}: it exists and is not a folder. Remove it or choose another --data-root.")
    if any(folder.iterdir()) and not (folder / MANIFEST_NAME).exists():
        raise MtbenchError(
            f"Cannot write a dataset to {folder}: the folder is not empty and has no {MANIFEST_NAME}, "
            "so it is not a prepared dataset and would be deleted. Remove it or choose another --data-root."
        )


def _check_metadata(metadata: Mapping[str, Any]) -> None:
    if not isinstance(metadata.get("dataset"), str) or not metadata["dataset"]:
        raise ValueError("metadata['dataset'] must name the dataset, e.g. 'nyuv2'.")
    class_names = metadata.get("class_names")
    if not isinstance(class_names, Mapping):
        raise ValueError("metadata['class_names'] must map each segmentation field to its class names.")
    for field, names in class_names.items():
        if not is_segmentation_field(field) or not isinstance(names, (list, tuple)) or not 0 < len(names) < IGNORE_INDEX:
            raise ValueError(f"metadata['class_names'][{field!r}] must be a list of 1 to {IGNORE_INDEX - 1} names of a segmentation field.")


def _check_splits(splits: Mapping[str, Mapping[str, np.ndarray]], class_names: Mapping[str, list[str]]) -> dict[str, tuple[int, int]]:
    """Check every array and return the image and target sizes as ``{"image": (H, W), "target": (h, w)}``."""
    if set(splits) != set(SPLITS):
        raise ValueError(f"splits must have exactly the keys {', '.join(SPLITS)}, got {', '.join(sorted(splits))}.")
    fields = set(splits["train"])
    if "image" not in fields or len(fields) < 2:
        raise ValueError(f"Every split needs 'image' and at least one target field, got {', '.join(sorted(fields))}.")
    if {field for field in fields if is_segmentation_field(field)} != set(class_names):
        raise ValueError(f"metadata['class_names'] must list exactly the segmentation fields of the splits, got {', '.join(sorted(class_names))}.")

    sizes: dict[str, tuple[int, int]] = {}
    for split in SPLITS:
        if set(splits[split]) != fields:
            raise ValueError(f"Split {split!r} has the fields {', '.join(sorted(splits[split]))}, but train has {', '.join(sorted(fields))}.")
        count = len(splits[split]["image"])
        for field, array in splits[split].items():
            _check_array_layout(f"{split} {field}", field, array, count)
            kind = "image" if field == "image" else "target"
            size = tuple(array.shape[-2:])
            if sizes.setdefault(kind, size) != size:
                raise ValueError(f"{split} {field} has spatial size {size}, but other {kind} arrays have {sizes[kind]}.")
            problem = find_value_problem(field, array, len(class_names.get(field, ())))
            if problem is not None:
                raise ValueError(f"{split} {field}: {problem}.")
    return sizes


def _check_array_layout(label: str, field: str, array: np.ndarray, count: int) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != expected_dtype(field):
        raise ValueError(f"{label} must be a numpy array of dtype {expected_dtype(field)}, got {getattr(array, 'dtype', type(array).__name__)}.")
    if array.ndim != _expected_rank(field) or len(array) != count:
        raise ValueError(f"{label} has shape {array.shape}, expected {_expected_rank(field)} axes and {count} samples.")
    if field in ("image", "normal") and array.shape[1] != 3:
        raise ValueError(f"{label} has shape {array.shape}, expected 3 channels on axis 1.")


def find_value_problem(field: str, array: np.ndarray, num_classes: int = 0) -> str | None:
    """Return a description of the first value of ``array`` that breaks the contract of ``field``, or None.

    Segmentation: indices in 0..num_classes-1 or IGNORE_INDEX. Depth: finite
    and >= 0. Normal: finite, each vector of length 1 (within
    ``NORMAL_LENGTH_TOLERANCE``) or exactly zero. Images are not checked.
    The array is checked ``_CHECK_CHUNK_SAMPLES`` samples at a time, so
    temporary arrays stay small for memory-mapped files.
    """
    for start in range(0, len(array), _CHECK_CHUNK_SAMPLES):
        problem = _find_value_problem_in_chunk(field, np.asarray(array[start : start + _CHECK_CHUNK_SAMPLES]), num_classes)
        if problem is not None:
            return problem
    return None


def _find_value_problem_in_chunk(field: str, array: np.ndarray, num_classes: int) -> str | None:
    if is_segmentation_field(field):
        bad = (array >= num_classes) & (array != IGNORE_INDEX)
        if bad.any():
            return f"class index {int(array[bad][0])} outside 0..{num_classes - 1} (and {IGNORE_INDEX} = void)"
    elif field == "depth":
        if not np.isfinite(array).all():
            return "depth contains NaN or infinite values"
        if array.size and array.min() < 0:
            return f"depth contains negative values (minimum {float(array.min())} m)"
    elif field == "normal":
        return _find_normal_problem(array)
    return None


def _find_normal_problem(normal: np.ndarray) -> str | None:
    if not np.isfinite(normal).all():
        return "normals contain NaN or infinite values"
    length = np.sqrt(np.square(normal, dtype=np.float64).sum(axis=1))
    bad = (length != 0) & (np.abs(length - 1) > NORMAL_LENGTH_TOLERANCE)
    if bad.any():
        return f"a normal has length {float(length[bad][0]):.6g}, expected 1 or 0 (invalid)"
    return None


def _build_manifest(
    metadata: Mapping[str, Any],
    splits: Mapping[str, Mapping[str, np.ndarray]],
    files: dict[str, dict[str, Any]],
    sizes: dict[str, tuple[int, int]],
) -> dict[str, Any]:
    manifest = dict(metadata)
    manifest.setdefault("prepare_command", f"mtbench prepare {metadata['dataset']}")
    manifest.update(
        format=FORMAT_NAME,
        format_version=FORMAT_VERSION,
        splits=list(SPLITS),
        fields=sorted(splits["train"]),
        counts={split: int(len(splits[split]["image"])) for split in SPLITS},
        image_size=list(sizes["image"]),
        target_size=list(sizes["target"]),
        ignore_index=IGNORE_INDEX,
        class_names={field: list(names) for field, names in metadata["class_names"].items()},
        files=files,
        checksum=overall_checksum({name: record["sha256"] for name, record in files.items()}),
    )
    return manifest


def sha256_of_file(path: Path) -> str:
    """Return the hex sha256 of the file at ``path``, read in 16 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- reading


def read_dense_manifest(folder: Path) -> dict[str, Any]:
    """Read and check ``folder/manifest.json`` without reading the arrays.

    Raises MtbenchError when the folder or manifest is missing or unreadable,
    the manifest is not a dense manifest of this format version, lacks a
    field, or its ``checksum`` disagrees with its per-file hashes.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise MtbenchError(f"Dataset folder {folder} not found. {prepare_hint(folder)}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MtbenchError(f"{path} not found, so {folder} is not a prepared dataset. {prepare_hint(folder)}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise MtbenchError(f"Cannot read {path}: {error}. {prepare_hint(folder)}") from error
    except json.JSONDecodeError as error:
        raise MtbenchError(f"{path} is not valid JSON ({error}). {prepare_hint(folder)}") from error

    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise MtbenchError(f"{path} is not a manifest of the {FORMAT_NAME} format. {prepare_hint(folder)}")
    hint = prepare_hint(folder, manifest)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise MtbenchError(f"{path} has format version {manifest.get('format_version')!r}, but this mtbench reads version {FORMAT_VERSION}. {hint}")
    problem = _find_manifest_problem(manifest)
    if problem is not None:
        raise MtbenchError(f"{path}: {problem}. {hint}")
    return manifest


def _find_manifest_problem(manifest: dict[str, Any]) -> str | None:
    fields, counts, files = manifest.get("fields"), manifest.get("counts"), manifest.get("files")
    if not isinstance(fields, list) or "image" not in fields:
        return "'fields' must be a list that includes 'image'"
    unknown = [field for field in fields if not isinstance(field, str) or not (field in ("image", "depth", "normal") or is_segmentation_field(field))]
    if unknown:
        return f"'fields' lists {unknown[0]!r}, which this mtbench does not know"
    if not isinstance(counts, dict) or not all(isinstance(counts.get(split), int) and counts[split] >= 0 for split in SPLITS):
        return f"'counts' must give a sample count for each of {', '.join(SPLITS)}"
    expected_files = {f"{split}_{field}.npy" for split in SPLITS for field in fields}
    if not isinstance(files, dict) or set(files) != expected_files:
        return f"'files' must list exactly {', '.join(sorted(expected_files))}"
    for name, record in files.items():
        if not isinstance(record, dict) or not isinstance(record.get("sha256"), str) or not isinstance(record.get("shape"), list):
            return f"the entry of {name} lacks its sha256 or shape"
    class_names = manifest.get("class_names")
    if not isinstance(class_names, dict) or set(class_names) != {field for field in fields if is_segmentation_field(field)}:
        return "'class_names' must list the class names of each segmentation field"
    if manifest.get("checksum") != overall_checksum({name: record["sha256"] for name, record in files.items()}):
        return "'checksum' does not match the per-file hashes, so the manifest was edited or damaged"
    return None


def dense_checksum(folder: Path) -> str:
    """Return the dataset checksum recorded in the manifest (no file is hashed)."""
    return read_dense_manifest(folder)["checksum"]


def load_dense_split(folder: Path, split: str, verify: bool = False) -> dict[str, np.ndarray]:
    """Return the fields of one split as read-only memory-mapped arrays.

    Every load checks each file's dtype, shape and size against the manifest
    and the value contract of its field (class indices, finite non-negative
    depth, unit or zero normals), which reads the target files once. With
    ``verify=True`` it also compares each file's sha256 with the manifest.
    The arrays are read-only: copy a batch before changing it in place (for
    example ``torch.from_numpy(np.array(batch))``).

    Raises MtbenchError for an unknown split, a missing or invalid manifest,
    and a missing, truncated, mistyped, misshapen, modified or out-of-range
    file, naming the file and the command that rebuilds the dataset.
    """
    folder = Path(folder)
    if split not in SPLITS:
        raise MtbenchError(f"Unknown split {split!r} of {folder}. Valid splits: {', '.join(SPLITS)}.")
    manifest = read_dense_manifest(folder)
    hint = prepare_hint(folder, manifest)

    arrays: dict[str, np.ndarray] = {}
    for field in manifest["fields"]:
        name = f"{split}_{field}.npy"
        record = manifest["files"][name]
        array = _open_npy(folder / name, field, tuple(record["shape"]), manifest["counts"][split], hint)
        if verify and sha256_of_file(folder / name) != record["sha256"]:
            raise MtbenchError(f"{folder / name} does not match the sha256 in {MANIFEST_NAME}, so it is damaged or was modified. {hint}")
        problem = find_value_problem(field, array, len(manifest["class_names"].get(field, ())))
        if problem is not None:
            raise MtbenchError(f"{folder / name}: {problem}. {hint}")
        arrays[field] = array
    return arrays


def verify_dense_dataset(folder: Path) -> str:
    """Hash every .npy file against the manifest, check every split as ``load_dense_split`` does, and return the checksum."""
    for split in SPLITS:
        load_dense_split(folder, split, verify=True)
    return dense_checksum(folder)


def _open_npy(path: Path, field: str, shape: tuple[int, ...], count: int, hint: str) -> np.ndarray:
    """Memory-map a .npy file and check its header against ``field``, ``shape`` and ``count``.

    ``np.load`` with ``allow_pickle=False`` rejects object arrays, so nothing is unpickled.
    """
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise MtbenchError(f"{path} not found. {hint}") from None
    except (OSError, ValueError) as error:
        raise MtbenchError(f"{path} is not a readable .npy file or is truncated ({error}). {hint}") from error

    if not isinstance(array, np.memmap) or array.dtype != expected_dtype(field) or not array.flags.c_contiguous:
        raise MtbenchError(f"{path} has dtype {array.dtype}, expected {expected_dtype(field)} in C order. {hint}")
    if array.shape != shape or len(array) != count or array.ndim != _expected_rank(field):
        raise MtbenchError(f"{path} has shape {array.shape}, but the manifest gives {shape} with {count} samples. {hint}")
    if path.stat().st_size != array.offset + math.prod(shape) * array.dtype.itemsize:
        raise MtbenchError(f"{path} has a size that does not match its header, so it is damaged. {hint}")
    return array

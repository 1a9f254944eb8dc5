"""Writers of tiny NYUv2 files in each published format, for tests.

- ``write_labeled_mat``: ``nyu_depth_v2_labeled.mat`` as MATLAB v7.3 writes
  it: an HDF5 file behind a 512-byte MATLAB header, every array with its axes
  reversed, a ``MATLAB_class`` attribute on each dataset, and cell arrays of
  strings as object references to uint16 character arrays under ``#refs#``.
- ``write_splits_mat``, ``write_class_mapping40``, ``write_class13_mapping``:
  the MATLAB v5 files, with 1-based indices and class ids.
- ``write_preprocessed_folder``: the .npy copy of MTAN, LibMTL and Nash-MTL.
- ``write_parquet_mirror``: parquet shards shaped like ``tanganke/nyuv2``.

``official_arrays`` and ``preprocessed_arrays`` make hand-built contents
whose prepared values the tests compute by hand.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from mtbench.data.nyuv2.classes import CLASS_NAMES_13, NUM_RAW_CLASSES, PUBLISHED_MAP_40_TO_13

MATLAB_HEADER_BYTES = 512


@dataclass
class OfficialArrays:
    """Contents of a labeled .mat file in MATLAB's view: images (N, H, W, 3), depths and labels (N, H, W)."""

    images: np.ndarray
    depths: np.ndarray
    raw_depths: np.ndarray
    labels: np.ndarray
    train_ids: list[int]
    test_ids: list[int]


def raw_to_40(raw_id: int) -> int:
    """The fixture's 894 -> 40 mapping: raw id r >= 1 goes to 40-class ((r - 1) mod 40) + 1."""
    return (raw_id - 1) % 40 + 1


def prepared_class(raw_id: int) -> int:
    """The prepared segmentation index of a raw id under the fixture mappings: 255 for 0, else the 13-class id minus 1."""
    if raw_id == 0:
        return 255
    return PUBLISHED_MAP_40_TO_13[raw_to_40(raw_id) - 1] - 1


def official_arrays(count: int = 6, height: int = 480, width: int = 640) -> OfficialArrays:
    """Return hand-built contents of ``count`` images of height x width.

    Image n has the constant colour (10 n mod 256, 100, 200). Its depth is a
    fronto-parallel plane at 1 + 0.5 n metres, except for the top-left block
    of height/10 x width/8 pixels, which is 0 (invalid). Its raw labels form
    vertical stripes of width/8 columns with the ids 0, 5, 22, 39, 150, 894,
    40 + n and 1 from left to right. Official train ids are the odd ids and
    id 4, and the others are test ids.
    """
    images = np.zeros((count, height, width, 3), dtype=np.uint8)
    depths = np.zeros((count, height, width), dtype=np.float32)
    labels = np.zeros((count, height, width), dtype=np.uint16)
    stripe = width // 8
    for n in range(count):
        images[n] = (10 * n % 256, 100, 200)
        depths[n] = 1 + 0.5 * n
        depths[n, : height // 10, : width // 8] = 0
        for column, raw_id in enumerate((0, 5, 22, 39, 150, NUM_RAW_CLASSES, 40 + n, 1)):
            labels[n, :, column * stripe : (column + 1) * stripe] = raw_id
    raw_depths = depths.copy()
    raw_depths[:, -1, :] = 0
    ids = list(range(1, count + 1))
    train_ids = [image_id for image_id in ids if image_id % 2 == 1 or image_id == 4]
    test_ids = [image_id for image_id in ids if image_id not in train_ids]
    return OfficialArrays(images, depths, raw_depths, labels, train_ids, test_ids)


def _matlab_header() -> bytes:
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    # 116 bytes of text, 8 bytes of subsystem offset, version 0x0200 and the endian indicator "IM".
    return text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"


def _write_matlab_dataset(file: h5py.File, name: str, matlab_array: np.ndarray, matlab_class: str) -> None:
    """Store ``matlab_array`` (axes in MATLAB order) the way MATLAB v7.3 does: axes reversed."""
    dataset = file.create_dataset(name, data=np.ascontiguousarray(matlab_array.transpose(tuple(reversed(range(matlab_array.ndim))))))
    dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)


def _write_string_cell(file: h5py.File, name: str, strings: list[str]) -> None:
    """Store a K x 1 MATLAB cell of strings: a (1, K) reference dataset to (len, 1) uint16 character arrays."""
    references = file.require_group("#refs#")
    refs = []
    for index, text in enumerate(strings):
        characters = np.array([[ord(character) for character in text]], dtype=np.uint16).T
        item = references.create_dataset(f"{name}_{index}", data=characters)
        item.attrs["MATLAB_class"] = np.bytes_("char")
        item.attrs["MATLAB_int_decode"] = np.int32(2)
        refs.append(item.ref)
    cell = file.create_dataset(name, data=np.array(refs, dtype=h5py.ref_dtype).reshape(1, len(strings)))
    cell.attrs["MATLAB_class"] = np.bytes_("cell")


def write_labeled_mat(path: Path, arrays: OfficialArrays, *, image_dataset: str = "images", axes: str = "matlab", image_dtype=np.uint8) -> Path:
    """Write ``nyu_depth_v2_labeled.mat`` with the contents of ``arrays``.

    The keyword options break the format on purpose. ``image_dataset``
    renames the images. ``axes="swapped"`` swaps height and width, so h5py
    shows (N, 3, H, W) and (N, H, W). ``axes="unreversed"`` stores MATLAB's
    axis order, so h5py shows (H, W, 3, N). ``image_dtype`` changes the image dtype.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = len(arrays.images)

    def matlab_order(array: np.ndarray) -> np.ndarray:
        # MATLAB's H x W x [3 x] N; reversing the axes gives h5py's (N, [3,] W, H).
        moved = np.moveaxis(array, 0, -1)
        if axes == "swapped":
            return np.swapaxes(moved, 0, 1)
        if axes == "unreversed":
            return moved.transpose(tuple(reversed(range(moved.ndim))))
        return moved

    with h5py.File(path, "w", userblock_size=MATLAB_HEADER_BYTES) as file:
        _write_matlab_dataset(file, image_dataset, matlab_order(arrays.images.astype(image_dtype)), np.dtype(image_dtype).name)
        _write_matlab_dataset(file, "depths", matlab_order(arrays.depths), "single")
        _write_matlab_dataset(file, "rawDepths", matlab_order(arrays.raw_depths), "single")
        _write_matlab_dataset(file, "labels", matlab_order(arrays.labels), "uint16")
        _write_matlab_dataset(file, "instances", matlab_order(np.zeros_like(arrays.labels, dtype=np.uint8)), "uint8")
        _write_matlab_dataset(file, "accelData", np.zeros((count, 4), dtype=np.float32), "single")
        _write_string_cell(file, "names", [f"raw class {index}" for index in range(1, NUM_RAW_CLASSES + 1)])
        _write_string_cell(file, "sceneTypes", ["kitchen"] * count)
        _write_string_cell(file, "scenes", [f"kitchen_{index:04d}" for index in range(count)])
    with open(path, "r+b") as handle:
        handle.write(_matlab_header())
    return path


def write_splits_mat(path: Path, train_ids: list[int], test_ids: list[int]) -> Path:
    """Write ``splits.mat``: ``trainNdxs`` and ``testNdxs`` as (n, 1) uint16 column vectors of 1-based ids."""
    scipy.io.savemat(
        path,
        {"trainNdxs": np.array(train_ids, dtype=np.uint16).reshape(-1, 1), "testNdxs": np.array(test_ids, dtype=np.uint16).reshape(-1, 1)},
    )
    return Path(path)


def write_class_mapping40(path: Path, map_class: np.ndarray | None = None) -> Path:
    """Write ``classMapping40.mat``: ``mapClass`` (1, 894) uint8 (default ``raw_to_40``) and ``className`` (1, 40)."""
    if map_class is None:
        map_class = np.array([raw_to_40(raw_id) for raw_id in range(1, NUM_RAW_CLASSES + 1)], dtype=np.uint8)
    names = np.array([f"class {index}" for index in range(1, 41)], dtype=object).reshape(1, 40)
    scipy.io.savemat(path, {"mapClass": np.asarray(map_class).reshape(1, -1), "className": names})
    return Path(path)


def write_class13_mapping(path: Path, labels13: tuple[int, ...] = PUBLISHED_MAP_40_TO_13) -> Path:
    """Write ``class13Mapping.mat``: struct ``classMapping13`` with ``labels13`` (1, 40) uint8 and ``classNames`` (1, 13)."""
    struct = {
        "labels13": np.array(labels13, dtype=np.uint8).reshape(1, -1),
        "classNames": np.array(list(CLASS_NAMES_13), dtype=object).reshape(1, -1),
    }
    scipy.io.savemat(path, {"classMapping13": struct})
    return Path(path)


def write_official_folder(folder: Path, arrays: OfficialArrays) -> Path:
    """Write the four official files into ``folder`` and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_labeled_mat(folder / "nyu_depth_v2_labeled.mat", arrays)
    write_splits_mat(folder / "splits.mat", arrays.train_ids, arrays.test_ids)
    write_class_mapping40(folder / "classMapping40.mat")
    write_class13_mapping(folder / "class13Mapping.mat")
    return folder


# The preprocessed copy and its parquet mirror.

PREPROCESSED_HEIGHT = 288
PREPROCESSED_WIDTH = 384


@dataclass
class PreprocessedArrays:
    """Channel-last contents of the preprocessed copy per split ("train", "val"): lists of per-image arrays."""

    image: dict[str, list[np.ndarray]]
    label: dict[str, list[np.ndarray]]
    depth: dict[str, list[np.ndarray]]
    normal: dict[str, list[np.ndarray]]


def preprocessed_arrays(counts: dict[str, int] | None = None, height: int = PREPROCESSED_HEIGHT, width: int = PREPROCESSED_WIDTH) -> PreprocessedArrays:
    """Return hand-built images for the preprocessed copy (default 4 train, 2 val).

    Image n of a split (k = n, plus 10 in val): colour (k, 2 k, 255 - k) / 255
    as float64; label k mod 13 in the left half and -1 in the right half;
    depth 1 + k / 10 metres with the top-left quarter (height/2 x width/2) at
    0; normal (0.6, 0, -0.8) with the bottom-right quarter at zero.
    """
    counts = counts or {"train": 4, "val": 2}
    result = PreprocessedArrays({}, {}, {}, {})
    for split, count in counts.items():
        offset = 10 if split == "val" else 0
        result.image[split], result.label[split], result.depth[split], result.normal[split] = [], [], [], []
        for n in range(count):
            k = n + offset
            image = np.empty((height, width, 3), dtype=np.float64)
            image[...] = np.array([k, 2 * k, 255 - k]) / 255
            label = np.full((height, width), -1.0, dtype=np.float32)
            label[:, : width // 2] = k % 13
            depth = np.full((height, width, 1), 1 + k / 10, dtype=np.float32)
            depth[: height // 2, : width // 2] = 0
            normal = np.empty((height, width, 3), dtype=np.float32)
            normal[...] = (0.6, 0.0, -0.8)
            normal[height // 2 :, width // 2 :] = 0
            result.image[split].append(image)
            result.label[split].append(label)
            result.depth[split].append(depth)
            result.normal[split].append(normal)
    return result


def write_preprocessed_folder(root: Path, arrays: PreprocessedArrays) -> Path:
    """Write ``root/{train,val}/{image,label,depth,normal}/{i}.npy``."""
    root = Path(root)
    for field in ("image", "label", "depth", "normal"):
        for split, items in getattr(arrays, field).items():
            folder = root / split / field
            folder.mkdir(parents=True, exist_ok=True)
            for index, array in enumerate(items):
                np.save(folder / f"{index}.npy", array)
    return root


def _nested_list_array(values: np.ndarray):
    """Return a pyarrow array of nested variable-size lists, one row per first-axis entry, as ``datasets`` stores ArrayND."""
    import pyarrow as pa

    array = pa.array(np.ascontiguousarray(values).ravel())
    for axis in reversed(range(1, values.ndim)):
        groups = int(np.prod(values.shape[:axis]))
        offsets = pa.array(np.arange(groups + 1, dtype=np.int32) * values.shape[axis])
        array = pa.ListArray.from_arrays(offsets, array)
    return array


def _features_metadata(height: int, width: int) -> bytes:
    features = {
        "image": {"shape": [3, height, width], "dtype": "float32", "_type": "Array3D"},
        "segmentation": {"shape": [height, width], "dtype": "int64", "_type": "Array2D"},
        "depth": {"shape": [1, height, width], "dtype": "float32", "_type": "Array3D"},
        "normal": {"shape": [3, height, width], "dtype": "float32", "_type": "Array3D"},
        "noise": {"shape": [1, height, width], "dtype": "float32", "_type": "Array3D"},
    }
    return json.dumps({"info": {"features": features}}).encode()


def write_parquet_mirror(folder: Path, arrays: PreprocessedArrays, shards: dict[str, int] | None = None, drop_column: str | None = None) -> Path:
    """Write ``folder/data/{train,val}-XXXXX-of-YYYYY.parquet`` with channel-first columns like ``tanganke/nyuv2``.

    ``shards`` gives the number of shard files per split (default 2 train, 1 val).
    ``drop_column`` leaves out one column, to break the format.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = shards or {"train": 2, "val": 1}
    data = Path(folder) / "data"
    data.mkdir(parents=True, exist_ok=True)
    for split, shard_count in shards.items():
        images = np.stack(arrays.image[split]).astype(np.float32).transpose(0, 3, 1, 2)
        height, width = images.shape[2:]
        columns = {
            "image": images,
            "segmentation": np.stack(arrays.label[split]).astype(np.int64),
            "depth": np.stack(arrays.depth[split]).transpose(0, 3, 1, 2),
            "normal": np.stack(arrays.normal[split]).transpose(0, 3, 1, 2),
            "noise": np.zeros((len(images), 1, height, width), dtype=np.float32),
        }
        if drop_column is not None:
            del columns[drop_column]
        for shard, rows in enumerate(np.array_split(np.arange(len(images)), shard_count)):
            table = pa.table({name: _nested_list_array(values[rows]) for name, values in columns.items()})
            table = table.replace_schema_metadata({b"huggingface": _features_metadata(height, width)})
            pq.write_table(table, data / f"{split}-{shard:05d}-of-{shard_count:05d}.parquet")
    return Path(folder)

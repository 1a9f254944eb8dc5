"""NYUv2 from ``tanganke/nyuv2``, the Hugging Face mirror of the preprocessed copy, read from local parquet files.

Layout of the dataset repository: ``data/train-XXXXX-of-YYYYY.parquet`` (795
rows) and ``data/val-XXXXX-of-YYYYY.parquet`` (654 rows, the official test
split). Columns, stored by the ``datasets`` library as nested lists
(Array2D/Array3D features), channel-first: ``image`` float32 (3, 288, 384) in
[0, 1], ``segmentation`` int64 (288, 384) with -1 = void, ``depth`` float32
(1, 288, 384) in metres, ``normal`` float32 (3, 288, 384), and ``noise``,
which mtbench ignores. Rows are assumed to follow the file numbering of the
.npy copy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtbench.data.dense_format import sha256_of_file
from mtbench.data.nyuv2.preprocessed_npy import FOLDER_OF_SPLIT, convert_preprocessed
from mtbench.data.nyuv2.sample import NyuSample
from mtbench.errors import MtbenchError

if TYPE_CHECKING:
    import pyarrow

HF_REPO_ID = "tanganke/nyuv2"
# Column name and number of leading (channel) axes before (H, W).
COLUMNS = {"image": 1, "segmentation": 0, "depth": 1, "normal": 1}
_SHARD_NAME = re.compile(r"^(?P<split>train|val)-(?P<index>\d+)-of-(?P<total>\d+)\.parquet$")
_BATCH_ROWS = 16


def import_pyarrow():
    """Return the pyarrow modules (pyarrow, pyarrow.parquet), or raise MtbenchError naming the install command when pyarrow is missing."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise MtbenchError(
            "Reading the Hugging Face copy of NYUv2 needs pyarrow, which is not installed. Run `pip install mtbench[huggingface]`."
        ) from error
    return pyarrow, pyarrow.parquet


def find_shards(folder: Path) -> dict[str, list[Path]]:
    """Return the parquet shards of each split ("train", "test") in ``folder/data`` or ``folder``, in shard order.

    Raises MtbenchError when the folder is missing or empty, a split has no
    shard, or a shard of the ``-of-`` count is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MtbenchError(f"Hugging Face NYUv2 folder {folder} not found. Pass the folder of {HF_REPO_ID} that contains data/*.parquet.")
    if not any(folder.iterdir()):
        raise MtbenchError(f"Hugging Face NYUv2 folder {folder} is empty. Download {HF_REPO_ID} into it with `huggingface-cli download {HF_REPO_ID} --repo-type dataset --local-dir {folder}`.")
    data = folder / "data" if (folder / "data").is_dir() else folder

    shards: dict[str, list[Path]] = {}
    for split, prefix in FOLDER_OF_SPLIT.items():
        matches = [(match, path) for path in data.glob(f"{prefix}-*.parquet") if (match := _SHARD_NAME.match(path.name))]
        if not matches:
            raise MtbenchError(f"{data} has no {prefix}-XXXXX-of-YYYYY.parquet files, so it is not a copy of {HF_REPO_ID}.")
        totals = {int(match["total"]) for match, _ in matches}
        by_index = {int(match["index"]): path for match, path in matches}
        if len(totals) != 1 or sorted(by_index) != list(range(max(totals))):
            missing = sorted(set(range(max(totals))) - set(by_index))
            detail = f"shard {missing[0]} of {max(totals)} is missing" if missing else "the shard names disagree on the number of shards"
            raise MtbenchError(f"{data}: {detail} for the {prefix} split. Download the dataset again.")
        shards[split] = [by_index[index] for index in sorted(by_index)]
    return shards


class ParquetMirrorSource:
    """The parquet files of ``tanganke/nyuv2`` in a local folder, read a few rows at a time."""

    kind = "huggingface"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        _, self._parquet = import_pyarrow()
        self._shards = find_shards(self.folder)
        self._sizes = {split: sum(self._row_count(path) for path in paths) for split, paths in self._shards.items()}

    def _row_count(self, path: Path) -> int:
        try:
            metadata = self._parquet.ParquetFile(path).metadata
        except Exception as error:  # pyarrow raises ArrowInvalid, OSError and others for damaged files
            raise MtbenchError(f"{path} is not a readable parquet file ({error}). Download it again.") from error
        names = set(metadata.schema.to_arrow_schema().names)
        missing = [column for column in COLUMNS if column not in names]
        if missing:
            raise MtbenchError(f"{path} lacks the column(s) {', '.join(missing)} (it has {', '.join(sorted(names))}), so it is not a file of {HF_REPO_ID}.")
        return metadata.num_rows

    def split_sizes(self) -> dict[str, int]:
        return dict(self._sizes)

    def samples(self, split: str) -> Iterator[NyuSample]:
        index = 0
        for path in self._shards[split]:
            batches = self._parquet.ParquetFile(path).iter_batches(batch_size=_BATCH_ROWS, columns=list(COLUMNS))
            for batch in batches:
                columns = {name: decode_nested_column(batch.column(name), COLUMNS[name], path, name) for name in COLUMNS}
                for row in range(batch.num_rows):
                    arrays = {
                        "image": columns["image"][row].transpose(1, 2, 0),
                        "label": columns["segmentation"][row],
                        "depth": columns["depth"][row].transpose(1, 2, 0),
                        "normal": columns["normal"][row].transpose(1, 2, 0),
                    }
                    yield convert_preprocessed(arrays, index, f"{path} row {row} of its batch (image {index} of {FOLDER_OF_SPLIT[split]})")
                    index += 1

    def provenance(self) -> dict[str, Any]:
        files = {path.name: {"sha256": sha256_of_file(path), "bytes": path.stat().st_size} for paths in self._shards.values() for path in paths}
        return {"kind": self.kind, "repository": HF_REPO_ID, "folder": str(self.folder), "files": files}

    def close(self) -> None:
        pass


def decode_nested_column(column: pyarrow.Array, channel_axes: int, path: Path, name: str) -> np.ndarray:
    """Turn a column of nested lists (``datasets`` ArrayND storage) into one array (rows, [C,] H, W).

    Every list at one nesting level must have the same length. Raises
    MtbenchError naming ``path`` and the column ``name`` for nulls, ragged
    lists or a wrong nesting depth.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    values = column.storage if isinstance(column.type, pa.ExtensionType) else column
    rows = len(values)
    shape: list[int] = []
    for _ in range(channel_axes + 2):
        if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type) or pa.types.is_fixed_size_list(values.type)):
            raise MtbenchError(f"{path}: column '{name}' has {len(shape)} nested list levels, expected {channel_axes + 2}.")
        if values.null_count:
            raise MtbenchError(f"{path}: column '{name}' contains missing (null) values. Download the file again.")
        lengths = np.asarray(pc.list_value_length(values))
        if lengths.size and (lengths != lengths[0]).any():
            raise MtbenchError(f"{path}: column '{name}' has lists of different lengths ({lengths.min()} to {lengths.max()}), so its arrays are ragged.")
        shape.append(int(lengths[0]) if lengths.size else 0)
        values = values.flatten()
    if values.null_count:
        raise MtbenchError(f"{path}: column '{name}' contains missing (null) values. Download the file again.")
    return values.to_numpy(zero_copy_only=False).reshape(rows, *shape)

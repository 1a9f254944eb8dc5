import hashlib
import json

import numpy as np
import pytest

from mtbench.data import dense_format
from mtbench.data.dense_format import (
    IGNORE_INDEX,
    dense_checksum,
    load_dense_split,
    read_dense_manifest,
    verify_dense_dataset,
    write_dense_dataset,
)
from mtbench.errors import MtbenchError


def make_split(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(seed)
    segmentation = generator.integers(0, 3, size=(count, 2, 2), dtype=np.uint8)
    segmentation[:, 0, 0] = IGNORE_INDEX
    normal = np.zeros((count, 3, 2, 2), dtype=np.float32)
    normal[:, 2] = -1
    normal[:, :, 1, 1] = 0
    return {
        "image": generator.integers(0, 256, size=(count, 3, 4, 4), dtype=np.uint8),
        "segmentation": segmentation,
        "depth": np.full((count, 2, 2), 1.5, dtype=np.float32),
        "normal": normal,
    }


def make_splits() -> dict[str, dict[str, np.ndarray]]:
    return {"train": make_split(3, seed=1), "val": make_split(1, seed=2), "test": make_split(2, seed=3)}


METADATA = {"dataset": "toy", "class_names": {"segmentation": ["a", "b", "c"]}, "seed": 0}


def silent(message: str) -> None:
    pass


@pytest.fixture
def prepared(tmp_path):
    splits = make_splits()
    folder = write_dense_dataset(tmp_path / "toy", splits, METADATA, silent)
    return folder, splits


def test_round_trip_values(prepared):
    folder, splits = prepared
    for split in ("train", "val", "test"):
        loaded = load_dense_split(folder, split, verify=True)
        assert set(loaded) == {"image", "segmentation", "depth", "normal"}
        for field, array in splits[split].items():
            assert loaded[field].dtype == array.dtype
            np.testing.assert_array_equal(loaded[field], array)


def test_loaded_arrays_are_read_only_memory_maps(prepared):
    folder, _ = prepared
    image = load_dense_split(folder, "train")["image"]
    assert isinstance(image, np.memmap)
    with pytest.raises(ValueError):
        image[0, 0, 0, 0] = 1


def test_manifest_fields(prepared):
    folder, _ = prepared
    manifest = read_dense_manifest(folder)
    assert manifest["format"] == "mtbench-dense"
    assert manifest["format_version"] == 1
    assert manifest["dataset"] == "toy"
    assert manifest["prepare_command"] == "mtbench prepare toy"
    assert manifest["counts"] == {"train": 3, "val": 1, "test": 2}
    assert manifest["fields"] == ["depth", "image", "normal", "segmentation"]
    assert manifest["image_size"] == [4, 4]
    assert manifest["target_size"] == [2, 2]
    assert manifest["ignore_index"] == 255
    assert manifest["class_names"] == {"segmentation": ["a", "b", "c"]}
    assert manifest["seed"] == 0
    assert manifest["files"]["train_normal.npy"]["shape"] == [3, 3, 2, 2]
    assert manifest["files"]["val_depth.npy"]["dtype"] == "float32"


def test_checksum_is_sha256sum_listing(prepared):
    folder, _ = prepared
    names = sorted(path.name for path in folder.glob("*.npy"))
    listing = "".join(f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}\n" for name in names)
    expected = hashlib.sha256(listing.encode()).hexdigest()
    assert len(names) == 12
    assert dense_checksum(folder) == expected
    assert verify_dense_dataset(folder) == expected


def test_verify_detects_modified_file(prepared):
    folder, _ = prepared
    path = folder / "test_depth.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    load_dense_split(folder, "test")
    with pytest.raises(MtbenchError, match="test_depth.npy does not match the sha256"):
        verify_dense_dataset(folder)


def test_load_rejects_wrong_dtype(prepared):
    folder, _ = prepared
    np.save(folder / "val_segmentation.npy", np.zeros((1, 2, 2), dtype=np.int64))
    with pytest.raises(MtbenchError, match=r"val_segmentation.npy has dtype int64.*mtbench prepare toy"):
        load_dense_split(folder, "val")


def test_load_rejects_wrong_shape(prepared):
    folder, _ = prepared
    np.save(folder / "val_depth.npy", np.zeros((2, 2, 2), dtype=np.float32))
    with pytest.raises(MtbenchError, match=r"val_depth.npy has shape \(2, 2, 2\)"):
        load_dense_split(folder, "val")


def test_load_rejects_truncated_file(prepared):
    folder, _ = prepared
    path = folder / "train_image.npy"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(MtbenchError, match="train_image.npy"):
        load_dense_split(folder, "train")


def test_load_rejects_out_of_range_class(prepared):
    folder, _ = prepared
    segmentation = np.zeros((1, 2, 2), dtype=np.uint8)
    segmentation[0, 1, 1] = 3
    np.save(folder / "val_segmentation.npy", segmentation)
    with pytest.raises(MtbenchError, match="class index 3 outside 0..2"):
        load_dense_split(folder, "val")


def test_load_rejects_negative_depth(prepared):
    folder, _ = prepared
    np.save(folder / "val_depth.npy", np.full((1, 2, 2), -1, dtype=np.float32))
    with pytest.raises(MtbenchError, match="negative"):
        load_dense_split(folder, "val")


def test_load_rejects_non_unit_normal(prepared):
    folder, _ = prepared
    np.save(folder / "val_normal.npy", np.full((1, 3, 2, 2), 0.5, dtype=np.float32))
    with pytest.raises(MtbenchError, match="length 0.866"):
        load_dense_split(folder, "val")


def test_unknown_split(prepared):
    folder, _ = prepared
    with pytest.raises(MtbenchError, match="Unknown split 'validation'"):
        load_dense_split(folder, "validation")


def test_missing_folder_names_prepare_command(tmp_path):
    with pytest.raises(MtbenchError, match="mtbench prepare nyuv2`"):
        read_dense_manifest(tmp_path / "nyuv2")


def test_missing_variant_folder_names_its_resolution(tmp_path):
    with pytest.raises(MtbenchError, match="mtbench prepare nyuv2 --resolution 288x384`"):
        read_dense_manifest(tmp_path / "nyuv2-288x384")


def test_missing_manifest(tmp_path):
    (tmp_path / "nyuv2").mkdir()
    with pytest.raises(MtbenchError, match="manifest.json not found"):
        read_dense_manifest(tmp_path / "nyuv2")


def test_edited_manifest(prepared):
    folder, _ = prepared
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["val_depth.npy"]["sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(MtbenchError, match="'checksum' does not match"):
        read_dense_manifest(folder)


def test_other_format_version(prepared):
    folder, _ = prepared
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 2
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(MtbenchError, match="format version 2"):
        read_dense_manifest(folder)


@pytest.mark.parametrize(
    ("split", "field", "array", "message"),
    [
        ("val", "segmentation", np.full((1, 2, 2), 3, dtype=np.uint8), "class index 3"),
        ("val", "depth", np.full((1, 2, 2), np.nan, dtype=np.float32), "NaN"),
        ("val", "normal", np.full((1, 3, 2, 2), 1, dtype=np.float32), "length 1.73"),
        ("val", "depth", np.ones((1, 2, 2), dtype=np.float64), "dtype float32"),
        ("test", "image", np.zeros((2, 4, 4, 3), dtype=np.uint8), "3 channels"),
        ("test", "depth", np.ones((2, 3, 3), dtype=np.float32), "spatial size"),
        ("train", "depth", np.ones((2, 2, 2), dtype=np.float32), "3 samples"),
    ],
)
def test_write_rejects_invalid_arrays(tmp_path, split, field, array, message):
    splits = make_splits()
    splits[split][field] = array
    with pytest.raises(ValueError, match=message):
        write_dense_dataset(tmp_path / "toy", splits, METADATA, silent)
    assert not (tmp_path / "toy").exists()


def test_write_rejects_missing_field(tmp_path):
    splits = make_splits()
    del splits["test"]["normal"]
    with pytest.raises(ValueError, match="Split 'test' has the fields"):
        write_dense_dataset(tmp_path / "toy", splits, METADATA, silent)


def test_write_requires_class_names(tmp_path):
    with pytest.raises(ValueError, match="class_names"):
        write_dense_dataset(tmp_path / "toy", make_splits(), {"dataset": "toy", "class_names": {}}, silent)


def test_failed_write_keeps_old_copy(prepared, monkeypatch):
    folder, _ = prepared
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    real_save = np.save
    calls = []

    def failing_save(path, array, **options):
        calls.append(path)
        if len(calls) == 5:
            raise OSError("disk failure")
        real_save(path, array, **options)

    monkeypatch.setattr(dense_format.np, "save", failing_save)
    with pytest.raises(MtbenchError, match="disk failure"):
        write_dense_dataset(folder, make_splits(), {**METADATA, "seed": 7}, silent)

    after = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert after == before
    assert [path.name for path in folder.parent.iterdir()] == ["toy"]


def test_rewrite_replaces_old_copy(prepared):
    folder, _ = prepared
    write_dense_dataset(folder, make_splits(), {**METADATA, "seed": 7}, silent)
    assert read_dense_manifest(folder)["seed"] == 7


def test_refuses_to_replace_unrelated_folder(tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "notes.txt").write_text("keep me")
    with pytest.raises(MtbenchError, match="not empty and has no manifest.json"):
        write_dense_dataset(tmp_path / "toy", make_splits(), METADATA, silent)
    assert (tmp_path / "toy" / "notes.txt").read_text() == "keep me"


def test_unknown_field_in_manifest(prepared):
    folder, _ = prepared
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["fields"].append("albedo")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(MtbenchError, match="'albedo', which this mtbench does not know"):
        read_dense_manifest(folder)

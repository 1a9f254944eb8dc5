import shutil

import h5py
import numpy as np
import pytest
import scipy.io

from mtbench.cli.main import main
from mtbench.data.dense_format import load_dense_split, read_dense_manifest, verify_dense_dataset
from mtbench.data.nyuv2.class_mapping import raw_to_segmentation_lookup, read_map_40_to_13, read_map_raw_to_40
from mtbench.data.nyuv2.classes import CLASS_NAMES_13, NUM_RAW_CLASSES
from mtbench.data.nyuv2.official_mat import LabeledMat
from mtbench.data.nyuv2.official_splits import read_official_splits
from nyuv2_fixtures import (
    official_arrays,
    prepared_class,
    write_class13_mapping,
    write_class_mapping40,
    write_labeled_mat,
    write_official_folder,
    write_splits_mat,
)

STRIPE_IDS = (0, 5, 22, 39, 150, NUM_RAW_CLASSES, None, 1)


def prepare(capsys, *arguments) -> tuple[int, str]:
    """Run `mtbench prepare nyuv2` and return its exit status and standard error."""
    return prepare_with_output(capsys, *arguments)[::2]


def prepare_with_output(capsys, *arguments) -> tuple[int, str, str]:
    status = main(["prepare", "nyuv2", *map(str, arguments)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def official_folder(tmp_path_factory):
    return write_official_folder(tmp_path_factory.mktemp("official"), official_arrays())


@pytest.fixture(scope="module")
def prepared_root(official_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    status = main(["prepare", "nyuv2", "--nyuv2-folder", str(official_folder), "--data-root", str(root), "--val-fraction", "0.25", "--seed", "0"])
    assert status == 0
    return root


@pytest.fixture
def small_folder(tmp_path):
    """Official files with 3 images of 12 x 16 pixels, for the error cases."""
    arrays = official_arrays(count=3, height=12, width=16)
    return write_official_folder(tmp_path / "small", arrays), arrays


# Readers.


def test_labeled_mat_reads_matlab_layout(official_folder):
    arrays = official_arrays()
    with LabeledMat(official_folder / "nyu_depth_v2_labeled.mat") as labeled:
        assert (labeled.count, labeled.height, labeled.width) == (6, 480, 640)
        image, depth, labels = labeled.read(2)
    np.testing.assert_array_equal(image, arrays.images[2])
    np.testing.assert_array_equal(depth, arrays.depths[2])
    np.testing.assert_array_equal(labels, arrays.labels[2])


def test_labeled_mat_reads_raw_depths(official_folder):
    with LabeledMat(official_folder / "nyu_depth_v2_labeled.mat", depth_dataset="rawDepths") as labeled:
        _, depth, _ = labeled.read(0)
    assert (depth[-1] == 0).all()
    assert depth[-2, -1] == 1.0


def test_splits_are_one_based(official_folder):
    splits = read_official_splits(official_folder / "splits.mat", num_images=6)
    np.testing.assert_array_equal(splits["train"], [1, 3, 4, 5])
    np.testing.assert_array_equal(splits["test"], [2, 6])


def test_label_lookup_hand_values(official_folder):
    map_raw_to_40 = read_map_raw_to_40(official_folder / "classMapping40.mat")
    map_40_to_13, names = read_map_40_to_13(official_folder / "class13Mapping.mat")
    lookup = raw_to_segmentation_lookup(map_raw_to_40, map_40_to_13)
    assert names == list(CLASS_NAMES_13)
    assert len(lookup) == 895
    # Raw 0 is void; raw 5 -> 40-class 5 (chair) -> 13-class 4 (chair) -> index 3;
    # raw 22 -> ceiling (22) -> 3 -> index 2; raw 41 -> wall (1) -> 12 -> index 11.
    assert lookup[0] == 255
    assert lookup[5] == 3
    assert lookup[22] == 2
    assert lookup[41] == 11


# The prepared dataset.


def test_prepared_counts_and_shapes(prepared_root):
    folder = prepared_root / "nyuv2"
    manifest = read_dense_manifest(folder)
    assert manifest["counts"] == {"train": 3, "val": 1, "test": 2}
    assert manifest["image_size"] == [320, 320]
    assert manifest["target_size"] == [80, 80]
    assert manifest["class_names"] == {"segmentation": list(CLASS_NAMES_13)}
    test = load_dense_split(folder, "test")
    assert test["image"].shape == (2, 3, 320, 320)
    assert test["segmentation"].shape == (2, 80, 80)
    assert test["depth"].shape == (2, 80, 80)
    assert test["normal"].shape == (2, 3, 80, 80)


def test_test_split_is_official_test_images(prepared_root):
    manifest = read_dense_manifest(prepared_root / "nyuv2")
    assert manifest["source_indices"]["test"] == [2, 6]
    assert sorted(manifest["source_indices"]["train"] + manifest["source_indices"]["val"]) == [1, 3, 4, 5]
    assert len(manifest["source_indices"]["val"]) == 1


def test_prepared_segmentation_values(prepared_root):
    segmentation = load_dense_split(prepared_root / "nyuv2", "test")["segmentation"]
    # Test image 0 is image id 2 (fixture n = 1), so its seventh stripe has raw id 41.
    expected = [prepared_class(raw_id if raw_id is not None else 41) for raw_id in STRIPE_IDS]
    assert expected == [255, 3, 2, 5, 6, 9, 11, 11]
    for stripe, value in enumerate(expected):
        assert (segmentation[0, :, 10 * stripe : 10 * (stripe + 1)] == value).all()


def test_prepared_depth_values(prepared_root):
    depth = load_dense_split(prepared_root / "nyuv2", "test")["depth"]
    # Image id 6 (fixture n = 5) is a plane at 1 + 0.5 * 5 = 3.5 m with an invalid top-left block of 48 x 80 pixels.
    assert (depth[1, :8, :10] == 0).all()
    assert (depth[1, 8:, :] == 3.5).all()
    assert (depth[1, :, 10:] == 3.5).all()


def test_prepared_normals(prepared_root):
    normal = load_dense_split(prepared_root / "nyuv2", "test")["normal"]
    assert (normal[:, :, :8, :10] == 0).all()
    np.testing.assert_array_equal(normal[0, :, 40, 40], [0, 0, -1])
    np.testing.assert_array_equal(normal[1, :, 8, 10], [0, 0, -1])
    manifest = read_dense_manifest(prepared_root / "nyuv2")
    assert manifest["normal"]["origin"] == "computed"


def test_prepared_images(prepared_root):
    image = load_dense_split(prepared_root / "nyuv2", "test")["image"]
    np.testing.assert_array_equal(image[0, :, 0, 0], [10, 100, 200])
    np.testing.assert_array_equal(image[1, :, 319, 319], [50, 100, 200])


def test_manifest_records_source_checksums(prepared_root, official_folder):
    import hashlib

    manifest = read_dense_manifest(prepared_root / "nyuv2")
    files = manifest["source"]["files"]
    assert set(files) == {"nyu_depth_v2_labeled.mat", "splits.mat", "classMapping40.mat", "class13Mapping.mat"}
    assert files["splits.mat"]["sha256"] == hashlib.sha256((official_folder / "splits.mat").read_bytes()).hexdigest()
    assert manifest["source"]["map_40_to_13_matches_published"] is True
    assert manifest["prepare_command"] == "mtbench prepare nyuv2 --nyuv2-source official"
    assert verify_dense_dataset(prepared_root / "nyuv2") == manifest["checksum"]


def test_same_seed_same_bytes(prepared_root, official_folder, tmp_path, capsys):
    status, _ = prepare(capsys, "--nyuv2-folder", official_folder, "--data-root", tmp_path, "--val-fraction", "0.25", "--seed", "0")
    assert status == 0
    assert read_dense_manifest(tmp_path / "nyuv2")["checksum"] == read_dense_manifest(prepared_root / "nyuv2")["checksum"]


def test_288x384_variant(small_folder, tmp_path, capsys):
    folder, arrays = small_folder
    status, _ = prepare(capsys, "--nyuv2-folder", folder, "--data-root", tmp_path, "--resolution", "288x384", "--val-fraction", "0.5")
    assert status == 0
    manifest = read_dense_manifest(tmp_path / "nyuv2-288x384")
    assert manifest["image_size"] == [288, 384]
    assert manifest["target_size"] == [288, 384]
    assert manifest["prepare_command"].endswith("--resolution 288x384")
    assert not (tmp_path / "nyuv2").exists()


def test_failed_prepare_keeps_old_copy(small_folder, tmp_path, capsys):
    folder, arrays = small_folder
    root = tmp_path / "data"
    assert prepare(capsys, "--nyuv2-folder", folder, "--data-root", root, "--val-fraction", "0.5")[0] == 0
    before = {path.name: path.read_bytes() for path in (root / "nyuv2").iterdir()}

    arrays.depths[2, 3, 3] = 2500.0
    write_labeled_mat(folder / "nyu_depth_v2_labeled.mat", arrays)
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", root, "--val-fraction", "0.5", "--seed", "5")
    assert status == 2
    assert "millimetres" in err
    assert {path.name: path.read_bytes() for path in (root / "nyuv2").iterdir()} == before
    assert sorted(path.name for path in root.iterdir()) == ["nyuv2"]


# Errors a user can fix.


def test_missing_labeled_file(small_folder, tmp_path, capsys):
    folder, _ = small_folder
    (folder / "nyu_depth_v2_labeled.mat").unlink()
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", tmp_path / "data")
    assert status == 2
    assert "not found" in err
    assert "nyu_depth_v2_labeled.mat" in err
    assert "Traceback" not in err


def test_missing_split_file(small_folder, tmp_path, capsys):
    folder, _ = small_folder
    (folder / "splits.mat").unlink()
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", tmp_path / "data")
    assert status == 2
    assert "splits.mat" in err
    assert "--download" in err


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    status, err = prepare(capsys, "--nyuv2-folder", tmp_path / "empty", "--data-root", tmp_path / "data")
    assert status == 2
    assert "is empty" in err


def test_wrong_dataset_name(small_folder, capsys):
    folder, arrays = small_folder
    write_labeled_mat(folder / "nyu_depth_v2_labeled.mat", arrays, image_dataset="rgb")
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "has no dataset 'images'" in err
    assert "rgb" in err


def test_swapped_height_and_width(small_folder, capsys):
    folder, arrays = small_folder
    write_labeled_mat(folder / "nyu_depth_v2_labeled.mat", arrays, axes="swapped")
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "swapped" in err
    assert "(3, 3, 12, 16)" in err


def test_unreversed_axes(small_folder, capsys):
    folder, arrays = small_folder
    write_labeled_mat(folder / "nyu_depth_v2_labeled.mat", arrays, axes="unreversed")
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "(12, 16, 3, 3)" in err
    assert "(N, 3, W, H)" in err


def test_wrong_image_dtype(small_folder, capsys):
    folder, arrays = small_folder
    write_labeled_mat(folder / "nyu_depth_v2_labeled.mat", arrays, image_dtype=np.float64)
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "dtype float64, expected uint8" in err


def test_wrong_depth_dtype(small_folder, capsys):
    folder, _ = small_folder
    with h5py.File(folder / "nyu_depth_v2_labeled.mat", "r+") as file:
        depths = file["depths"][...]
        del file["depths"]
        file.create_dataset("depths", data=depths.astype(np.uint16))
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "'depths' has dtype uint16" in err


def test_out_of_range_labels(small_folder, capsys):
    folder, arrays = small_folder
    arrays.labels[1, 0, 0] = 900
    write_labeled_mat(folder / "nyu_depth_v2_labeled.mat", arrays)
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data", "--val-fraction", "0.5")
    assert status == 2
    assert "image 2" in err
    assert "0 to 900" in err


def test_depth_in_millimetres(small_folder, capsys):
    folder, arrays = small_folder
    arrays.depths *= 1000
    write_labeled_mat(folder / "nyu_depth_v2_labeled.mat", arrays)
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data", "--val-fraction", "0.5")
    assert status == 2
    assert "millimetres" in err
    assert "image 1" in err


def test_not_an_hdf5_file(small_folder, capsys):
    folder, _ = small_folder
    shutil.copy(folder / "splits.mat", folder / "nyu_depth_v2_labeled.mat")
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "not a readable HDF5 file" in err


def test_zero_based_splits(small_folder, capsys):
    folder, _ = small_folder
    write_splits_mat(folder / "splits.mat", [0, 1], [2])
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "1-based" in err


def test_splits_missing_an_image(small_folder, capsys):
    folder, _ = small_folder
    write_splits_mat(folder / "splits.mat", [1, 3], [2, 2])
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "more than once" in err


def test_splits_wrong_variable(small_folder, capsys):
    folder, _ = small_folder
    scipy.io.savemat(folder / "splits.mat", {"train": np.array([[1, 3]]), "test": np.array([[2]])})
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "no variable 'trainNdxs'" in err


def test_class_mapping_out_of_range(small_folder, capsys):
    folder, _ = small_folder
    write_class_mapping40(folder / "classMapping40.mat", np.full(NUM_RAW_CLASSES, 41, dtype=np.uint8))
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "expected 1..40" in err


def test_other_40_to_13_table_is_reported(small_folder, capsys):
    folder, _ = small_folder
    write_class13_mapping(folder / "class13Mapping.mat", labels13=(7,) * 40)
    status, out, _ = prepare_with_output(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data", "--val-fraction", "0.5")
    assert status == 0
    assert "Warning" in out
    manifest = read_dense_manifest(folder.parent / "data" / "nyuv2")
    assert manifest["source"]["map_40_to_13_matches_published"] is False


def test_existing_unrelated_folder_is_kept(small_folder, capsys):
    folder, _ = small_folder
    target = folder.parent / "data" / "nyuv2"
    target.mkdir(parents=True)
    (target / "mine.txt").write_text("keep")
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data", "--val-fraction", "0.5")
    assert status == 2
    assert "not empty" in err
    assert (target / "mine.txt").read_text() == "keep"


def test_truncated_split_file(small_folder, capsys):
    folder, _ = small_folder
    (folder / "splits.mat").write_bytes((folder / "splits.mat").read_bytes()[:100])
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "splits.mat is not a readable MATLAB file" in err


def test_split_file_in_v73_format(small_folder, capsys):
    folder, _ = small_folder
    shutil.copy(folder / "nyu_depth_v2_labeled.mat", folder / "splits.mat")
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "is a MATLAB v7.3 file" in err


def test_truncated_labeled_file(small_folder, capsys):
    folder, _ = small_folder
    path = folder / "nyu_depth_v2_labeled.mat"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    status, err = prepare(capsys, "--nyuv2-folder", folder, "--data-root", folder.parent / "data", "--val-fraction", "0.5")
    assert status == 2
    assert "nyu_depth_v2_labeled.mat" in err
    assert "Traceback" not in err

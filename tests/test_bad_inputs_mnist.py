"""Bad MNIST sources for `mtbench prepare multidigitmnist`, and damaged MultiDigitMNIST files for `mtbench run`.

Every prepare test starts from a data root that already contains a prepared
MultiDigitMNIST and checks that the failed command leaves it byte for byte
and still verified.
"""

import gzip
import shutil
import struct

import numpy as np
import pytest

from mnist_fixtures import idx_labels_bytes, random_mnist, write_idx_folder
from test_bad_inputs import assert_dataset_intact, assert_user_error, isolated_paths, prepared_root, run_cli, tree_digest  # noqa: F401

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"


def prepare_from(capsys, folder, data_root, *options):
    return run_cli(capsys, "prepare", "multidigitmnist", "--mnist-source", "folder", "--mnist-folder", folder, "--data-root", data_root, *options)


@pytest.fixture
def idx_folder(tmp_path):
    """Four valid raw IDX files of 12 training and 6 test images."""
    folder = tmp_path / "mnist"
    write_idx_folder(folder, random_mnist())
    return folder


@pytest.fixture
def gzip_folder(tmp_path):
    """Four valid .gz IDX files of 12 training and 6 test images."""
    folder = tmp_path / "mnist-gz"
    write_idx_folder(folder, random_mnist(), compressed=True)
    return folder


def test_truncated_idx_file(capsys, idx_folder, prepared_root):
    digest = tree_digest(prepared_root)
    path = idx_folder / TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:500])

    result = prepare_from(capsys, idx_folder, prepared_root)
    assert_user_error(result, f"{path} is truncated", "needs 9424 bytes, but the file has 500")
    assert_dataset_intact(prepared_root, digest)


def test_idx_file_with_trailing_bytes(capsys, idx_folder, prepared_root):
    digest = tree_digest(prepared_root)
    path = idx_folder / TRAIN_LABELS
    path.write_bytes(path.read_bytes() + b"\x00\x00\x00")

    result = prepare_from(capsys, idx_folder, prepared_root)
    assert_user_error(result, f"{path} has 3 trailing bytes")
    assert_dataset_intact(prepared_root, digest)


def test_truncated_gzip_file(capsys, gzip_folder, prepared_root):
    digest = tree_digest(prepared_root)
    path = gzip_folder / f"{TRAIN_IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:-20])

    result = prepare_from(capsys, gzip_folder, prepared_root)
    assert_user_error(result, f"{path} is not a valid gzip file (truncated or corrupt")
    assert_dataset_intact(prepared_root, digest)


def test_corrupt_gzip_file(capsys, gzip_folder, prepared_root):
    digest = tree_digest(prepared_root)
    path = gzip_folder / f"{TRAIN_LABELS}.gz"
    data = bytearray(path.read_bytes())
    # The last 8 bytes are the CRC-32 and length of the content: a wrong CRC fails decompression.
    data[-8] ^= 0xFF
    path.write_bytes(bytes(data))

    result = prepare_from(capsys, gzip_folder, prepared_root)
    assert_user_error(result, f"{path} is not a valid gzip file (truncated or corrupt", "CRC")
    assert_dataset_intact(prepared_root, digest)


def test_gz_name_on_raw_file(capsys, idx_folder, prepared_root):
    digest = tree_digest(prepared_root)
    path = idx_folder / TRAIN_IMAGES
    path.rename(idx_folder / f"{TRAIN_IMAGES}.gz")

    result = prepare_from(capsys, idx_folder, prepared_root)
    assert_user_error(result, f"{path}.gz is named .gz but is not gzip-compressed")
    assert_dataset_intact(prepared_root, digest)


def test_gzip_content_without_gz_name(capsys, idx_folder, prepared_root):
    digest = tree_digest(prepared_root)
    path = idx_folder / TRAIN_IMAGES
    path.write_bytes(gzip.compress(path.read_bytes()))

    result = prepare_from(capsys, idx_folder, prepared_root)
    assert_user_error(result, f"{path} looks gzip-compressed, name it .gz")
    assert_dataset_intact(prepared_root, digest)


def test_wrong_magic_number(capsys, idx_folder, prepared_root):
    digest = tree_digest(prepared_root)
    # A label file where the image file belongs.
    shutil.copy(idx_folder / TRAIN_LABELS, idx_folder / TRAIN_IMAGES)

    result = prepare_from(capsys, idx_folder, prepared_root)
    assert_user_error(result, f"{idx_folder / TRAIN_IMAGES} has IDX magic number 2049, expected 2051")
    assert_dataset_intact(prepared_root, digest)


def test_label_out_of_range(capsys, idx_folder, prepared_root):
    digest = tree_digest(prepared_root)
    labels = np.zeros(12, dtype=np.uint8)
    labels[7] = 12
    (idx_folder / TRAIN_LABELS).write_bytes(idx_labels_bytes(labels))

    result = prepare_from(capsys, idx_folder, prepared_root)
    assert_user_error(result, f"{idx_folder / TRAIN_LABELS}: label 12 at index 7 is out of range")
    assert_dataset_intact(prepared_root, digest)


def test_image_and_label_counts_differ(capsys, idx_folder, prepared_root):
    digest = tree_digest(prepared_root)
    (idx_folder / TRAIN_LABELS).write_bytes(idx_labels_bytes(np.zeros(11, dtype=np.uint8)))

    result = prepare_from(capsys, idx_folder, prepared_root)
    assert_user_error(result, "contains 12 images but", f"{idx_folder / TRAIN_LABELS} contains 11 labels")
    assert_dataset_intact(prepared_root, digest)


def test_negative_size_in_idx_header(capsys, idx_folder, prepared_root):
    digest = tree_digest(prepared_root)
    (idx_folder / TRAIN_LABELS).write_bytes(struct.pack(">Ii", 0x00000801, -5))

    result = prepare_from(capsys, idx_folder, prepared_root)
    assert_user_error(result, f"{idx_folder / TRAIN_LABELS} has a corrupt IDX header: negative size")
    assert_dataset_intact(prepared_root, digest)


def test_incomplete_mnist(capsys, idx_folder, prepared_root):
    digest = tree_digest(prepared_root)
    result = prepare_from(capsys, idx_folder, prepared_root)
    assert_user_error(result, "has 12 training and 6 test images, but the full MNIST has 60000 and 10000", str(idx_folder))
    assert_dataset_intact(prepared_root, digest)


def test_empty_mnist_folder(capsys, tmp_path, prepared_root):
    digest = tree_digest(prepared_root)
    (tmp_path / "empty").mkdir()

    result = prepare_from(capsys, tmp_path / "empty", prepared_root)
    assert_user_error(result, "MNIST IDX files not found", f"{tmp_path / 'empty'} has none of them")
    assert_dataset_intact(prepared_root, digest)


def test_mnist_folder_is_a_file(capsys, idx_folder, prepared_root):
    digest = tree_digest(prepared_root)
    result = prepare_from(capsys, idx_folder / TRAIN_IMAGES, prepared_root)
    assert_user_error(result, f"--mnist-folder {idx_folder / TRAIN_IMAGES} is not a folder")
    assert_dataset_intact(prepared_root, digest)


def test_images_per_pair_zero(capsys, idx_folder, prepared_root):
    digest = tree_digest(prepared_root)
    result = prepare_from(capsys, idx_folder, prepared_root, "--images-per-pair", "0")
    assert_user_error(result, "Invalid --images-per-pair 0")
    assert_dataset_intact(prepared_root, digest)


# A prepared dataset damaged after `mtbench prepare`.


def run_equal(capsys, data_root, leaderboard):
    return run_cli(capsys, "run", "--method", "equal", "--epochs", "1", "--width", "4", "--data-root", data_root, "--leaderboard-dir", leaderboard, "--device", "cpu")


def test_prepared_file_checksum_mismatch(capsys, prepared_root, tmp_path):
    path = prepared_root / "multidigitmnist" / "train_images.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))

    result = run_equal(capsys, prepared_root, tmp_path / "leaderboard")
    assert_user_error(result, f"{path} does not match the sha256 in manifest.json", "mtbench prepare multidigitmnist")
    assert bytes(data) == path.read_bytes()
    assert not (tmp_path / "leaderboard" / "results" / "multidigitmnist.jsonl").exists()


def test_prepared_file_truncated(capsys, prepared_root, tmp_path):
    path = prepared_root / "multidigitmnist" / "test_labels.npy"
    path.write_bytes(path.read_bytes()[:-16])

    result = run_equal(capsys, prepared_root, tmp_path / "leaderboard")
    assert_user_error(result, f"{path} has 1904 data bytes, expected 1920: the file is truncated or damaged")
    assert not (tmp_path / "leaderboard" / "results" / "multidigitmnist.jsonl").exists()


def test_prepared_manifest_edited(capsys, prepared_root, tmp_path):
    manifest = prepared_root / "multidigitmnist" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"seed": 0', '"seed": 0, "note": "edited"').replace('"checksum": "', '"checksum": "0', 1))

    result = run_equal(capsys, prepared_root, tmp_path / "leaderboard")
    assert_user_error(result, f"{manifest}: 'checksum' does not match the per-file hashes")
    assert not (tmp_path / "leaderboard" / "results" / "multidigitmnist.jsonl").exists()

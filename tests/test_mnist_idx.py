import gzip
import struct

import numpy as np
import pytest

from mnist_fixtures import idx_images_bytes, idx_labels_bytes, random_mnist, write_idx_folder, write_torchvision_raw
from mtbench.data.mnist.idx import find_idx_files, read_idx_folder, read_idx_images, read_idx_labels
from mtbench.errors import MtbenchError


def assert_same_arrays(actual, expected):
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        value = getattr(actual, field)
        assert value.dtype == np.uint8, field
        np.testing.assert_array_equal(value, getattr(expected, field), err_msg=field)


def test_fixture_headers_are_idx():
    images = np.zeros((2, 28, 28), dtype=np.uint8)

    assert idx_images_bytes(images)[:16] == bytes.fromhex("00000803" "00000002" "0000001c" "0000001c")
    assert len(idx_images_bytes(images)) == 16 + 2 * 784
    assert idx_labels_bytes(np.array([3, 9], dtype=np.uint8)) == bytes.fromhex("00000801" "00000002" "03" "09")


def test_read_hand_written_images(tmp_path):
    pixels = bytearray(2 * 784)
    pixels[0] = 7
    pixels[784 + 27 * 28 + 27] = 200
    path = tmp_path / "images"
    path.write_bytes(struct.pack(">4i", 2051, 2, 28, 28) + bytes(pixels))

    images = read_idx_images(path)

    assert images.shape == (2, 28, 28)
    assert images.dtype == np.uint8
    assert images[0, 0, 0] == 7
    assert images[1, 27, 27] == 200
    assert int(images.sum()) == 207
    assert images.flags.writeable


def test_read_hand_written_labels(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(bytes.fromhex("00000801" "00000003" "03" "09" "00"))

    labels = read_idx_labels(path)

    assert labels.dtype == np.uint8
    assert labels.tolist() == [3, 9, 0]


def test_read_empty_label_file(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(struct.pack(">2i", 2049, 0))

    assert read_idx_labels(path).shape == (0,)


@pytest.mark.parametrize("compressed", [False, True])
def test_folder_round_trip(tmp_path, compressed):
    arrays = random_mnist()
    write_idx_folder(tmp_path, arrays, compressed=compressed)

    result = read_idx_folder(tmp_path)

    assert_same_arrays(result, arrays)
    assert str(tmp_path) in result.source


def test_folder_accepts_torchvision_layout(tmp_path):
    arrays = random_mnist()
    raw_folder = write_torchvision_raw(tmp_path, arrays)

    result = read_idx_folder(tmp_path)

    assert_same_arrays(result, arrays)
    assert str(raw_folder) in result.source


def test_raw_file_wins_over_gz(tmp_path):
    write_idx_folder(tmp_path, random_mnist(seed=1), compressed=True)
    write_idx_folder(tmp_path, random_mnist(seed=2), compressed=False)

    paths = find_idx_files(tmp_path)

    assert all(path.suffix != ".gz" for path in paths.values())
    assert_same_arrays(read_idx_folder(tmp_path), random_mnist(seed=2))


def test_mixed_raw_and_gz_files(tmp_path):
    arrays = random_mnist()
    paths = write_idx_folder(tmp_path, arrays, compressed=True)
    raw_labels = paths["test", "labels"].with_suffix("")
    raw_labels.write_bytes(gzip.decompress(paths["test", "labels"].read_bytes()))
    paths["test", "labels"].unlink()

    assert_same_arrays(read_idx_folder(tmp_path), arrays)


def test_missing_file_lists_names(tmp_path):
    paths = write_idx_folder(tmp_path, random_mnist())
    paths["test", "labels"].unlink()

    with pytest.raises(MtbenchError) as error:
        read_idx_folder(tmp_path)

    assert f"{tmp_path} lacks t10k-labels-idx1-ubyte and" in str(error.value)
    assert f"{tmp_path / 'MNIST' / 'raw'} has none of them" in str(error.value)


def test_missing_folder(tmp_path):
    with pytest.raises(MtbenchError, match="does not exist"):
        read_idx_folder(tmp_path / "absent")


def test_missing_single_file(tmp_path):
    with pytest.raises(MtbenchError, match="not found"):
        read_idx_images(tmp_path / "train-images-idx3-ubyte")


def test_wrong_magic_names_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_labels_bytes(np.array([1, 2], dtype=np.uint8)))

    with pytest.raises(MtbenchError) as error:
        read_idx_images(path)

    message = str(error.value)
    assert str(path) in message
    assert "2049" in message
    assert "2051" in message
    assert "gzip" not in message


def test_gzip_data_under_raw_name(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    # gzip as published for MNIST: the header stores the original file name, so the flags byte is 0x08.
    with path.open("wb") as raw_handle:
        with gzip.GzipFile(filename="train-images-idx3-ubyte", mode="wb", fileobj=raw_handle, mtime=0) as handle:
            handle.write(idx_images_bytes(np.zeros((1, 28, 28), dtype=np.uint8)))

    with pytest.raises(MtbenchError) as error:
        read_idx_images(path)

    message = str(error.value)
    assert "529205256" in message
    assert "looks gzip-compressed, name it .gz" in message
    assert str(path) in message


def test_uncompressed_data_under_gz_name(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(idx_labels_bytes(np.array([1], dtype=np.uint8)))

    with pytest.raises(MtbenchError, match="not gzip-compressed"):
        read_idx_labels(path)


def test_truncated_payload(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_images_bytes(np.zeros((2, 28, 28), dtype=np.uint8))[:-1])

    with pytest.raises(MtbenchError) as error:
        read_idx_images(path)

    message = str(error.value)
    assert "truncated" in message
    assert str(16 + 2 * 784) in message
    assert str(16 + 2 * 784 - 1) in message


def test_truncated_header(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(struct.pack(">i", 2049) + b"\x00\x00")

    with pytest.raises(MtbenchError, match="truncated"):
        read_idx_labels(path)


def test_empty_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"")

    with pytest.raises(MtbenchError, match="truncated"):
        read_idx_labels(path)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(idx_labels_bytes(np.array([1, 2], dtype=np.uint8)) + b"\x00\x00\x00")

    with pytest.raises(MtbenchError) as error:
        read_idx_labels(path)

    assert "3 trailing bytes" in str(error.value)
    assert str(path) in str(error.value)


def test_negative_size_in_header(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(struct.pack(">2i", 2049, -1))

    with pytest.raises(MtbenchError, match="negative size"):
        read_idx_labels(path)


def test_wrong_image_size(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">4i", 2051, 1, 27, 28) + bytes(27 * 28))

    with pytest.raises(MtbenchError, match="27x28"):
        read_idx_images(path)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    compressed = gzip.compress(idx_images_bytes(np.ones((3, 28, 28), dtype=np.uint8)))
    path.write_bytes(compressed[: len(compressed) // 2])

    with pytest.raises(MtbenchError) as error:
        read_idx_images(path)

    assert "not a valid gzip file" in str(error.value)
    assert str(path) in str(error.value)


def test_corrupt_gzip_checksum(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    compressed = bytearray(gzip.compress(idx_labels_bytes(np.arange(10, dtype=np.uint8))))
    # The CRC-32 of the uncompressed data occupies bytes -8..-5 of a gzip member.
    compressed[-8] ^= 0xFF
    path.write_bytes(bytes(compressed))

    with pytest.raises(MtbenchError, match="not a valid gzip file"):
        read_idx_labels(path)


def test_label_above_nine(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(idx_labels_bytes(np.array([1, 9, 10, 3], dtype=np.uint8)))

    with pytest.raises(MtbenchError) as error:
        read_idx_labels(path)

    assert "label 10 at index 2" in str(error.value)
    assert str(path) in str(error.value)


def test_count_mismatch_names_both_files(tmp_path):
    arrays = random_mnist()
    paths = write_idx_folder(tmp_path, arrays)
    paths["train", "labels"].write_bytes(idx_labels_bytes(arrays.train_labels[:-1]))

    with pytest.raises(MtbenchError) as error:
        read_idx_folder(tmp_path)

    message = str(error.value)
    assert str(paths["train", "images"]) in message
    assert str(paths["train", "labels"]) in message
    assert "12 images" in message
    assert "11 labels" in message

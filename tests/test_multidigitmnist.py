"""Tests of the MultiDigitMNIST builder, its storage and its loader, on tiny synthetic MNIST.

Every synthetic glyph is 28 x 28 random values in 1..255, so the non-zero
box of each image half gives the pasted position exactly and the pixels of
that box identify the glyph instance.
"""

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mtbench.data.multidigitmnist as multidigitmnist
from mtbench.data.multidigitmnist import (
    dataset_checksum,
    load_multidigitmnist,
    prepare_multidigitmnist,
    read_manifest,
    verify_multidigitmnist,
)
from mtbench.data.multidigitmnist_pairs import assign_pairs
from mtbench.data.sample_grid import write_sample_grid
from mtbench.errors import MtbenchError

SPLITS = ("train", "val", "test")
IMAGES_PER_PAIR = 3
TRAIN_PER_DIGIT = 40
TEST_PER_DIGIT = 20


@dataclass(frozen=True)
class FakeMnist:
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def make_mnist(train_counts: list[int], test_counts: list[int], seed: int = 123) -> FakeMnist:
    """Return MNIST-like arrays with the given number of glyphs per digit, labels interleaved."""
    rng = np.random.default_rng(seed)

    def split(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
        labels = np.concatenate([np.full(count, digit, dtype=np.uint8) for digit, count in enumerate(counts)])
        labels = labels[rng.permutation(len(labels))]
        images = rng.integers(1, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        return images, labels

    train_images, train_labels = split(train_counts)
    test_images, test_labels = split(test_counts)
    return FakeMnist(train_images, train_labels, test_images, test_labels, "synthetic MNIST for tests")


def quiet(message: str) -> None:
    pass


def file_hashes(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def load_digits(folder: Path, split: str) -> np.ndarray:
    return np.load(folder / f"{split}_digits.npy")


def locate_glyph(image: np.ndarray, position: int) -> tuple[int, int, np.ndarray]:
    """Return (y, x, glyph) of the non-zero 28 x 28 box in half ``position`` (0 left, 1 right)."""
    half = image[:, 32 * position : 32 * position + 32]
    rows = np.flatnonzero(half.any(axis=1))
    cols = np.flatnonzero(half.any(axis=0))
    assert rows[-1] - rows[0] + 1 == 28
    assert cols[-1] - cols[0] + 1 == 28
    y, x = int(rows[0]), int(cols[0])
    return y, x, half[y : y + 28, x : x + 28]


def glyph_index(images: np.ndarray) -> dict[bytes, int]:
    return {glyph.tobytes(): index for index, glyph in enumerate(images)}


def recover_instances(folder: Path, split: str, mnist: FakeMnist) -> np.ndarray:
    """Return (N, 2) indices of the glyphs used, into the training set or (for test) the test set."""
    images, _ = load_multidigitmnist(folder, split)
    source = mnist.test_images if split == "test" else mnist.train_images
    lookup = glyph_index(source)
    instances = np.empty((len(images), 2), dtype=np.int64)
    for index, image in enumerate(images):
        for position in range(2):
            _, _, glyph = locate_glyph(image, position)
            instances[index, position] = lookup[glyph.tobytes()]
    return instances


@pytest.fixture(scope="module")
def mnist() -> FakeMnist:
    return make_mnist([TRAIN_PER_DIGIT] * 10, [TEST_PER_DIGIT] * 10)


@pytest.fixture(scope="module")
def dataset(mnist: FakeMnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "multidigitmnist"
    return prepare_multidigitmnist(mnist, folder, seed=7, images_per_pair=IMAGES_PER_PAIR, log=quiet)


@pytest.fixture
def dataset_copy(dataset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "multidigitmnist"
    shutil.copytree(dataset, copy)
    return copy


# ---------------------------------------------------------------------------
# Content


def test_split_sizes(dataset: Path) -> None:
    expected = {"train": 48, "val": 12, "test": 15}
    for split, count in expected.items():
        images, labels = load_multidigitmnist(dataset, split)
        assert images.shape == (count, 64, 64)
        assert images.dtype == np.uint8
        assert labels.shape == (count, 2)
        assert labels.dtype == np.int64
        assert load_digits(dataset, split).shape == (count, 2)
    assert read_manifest(dataset)["counts"] == expected


def test_every_pair_in_one_split(dataset: Path) -> None:
    manifest_pairs = read_manifest(dataset)["pairs"]
    seen: dict[tuple[int, int], str] = {}
    for split in SPLITS:
        observed = {tuple(int(digit) for digit in row) for row in load_digits(dataset, split)}
        assert observed == {tuple(pair) for pair in manifest_pairs[split]}
        for pair in observed:
            assert pair not in seen
            seen[pair] = split
    assert len(seen) == 25
    assert [len(manifest_pairs[split]) for split in SPLITS] == [16, 4, 5]


def test_each_pair_has_images_per_pair(dataset: Path) -> None:
    for split in SPLITS:
        _, counts = np.unique(load_digits(dataset, split), axis=0, return_counts=True)
        assert set(counts.tolist()) == {IMAGES_PER_PAIR}


def test_test_pairs_form_permutation(dataset: Path) -> None:
    test_pairs = read_manifest(dataset)["pairs"]["test"]
    assert sorted(left for left, _ in test_pairs) == [0, 2, 4, 6, 8]
    assert sorted(right for _, right in test_pairs) == [1, 3, 5, 7, 9]


@pytest.mark.parametrize("seed", range(40))
def test_assign_pairs_rules(seed: int) -> None:
    pairs = assign_pairs(np.random.default_rng(seed))
    assert sorted(left for left, _ in pairs["test"]) == [0, 1, 2, 3, 4]
    assert sorted(right for _, right in pairs["test"]) == [0, 1, 2, 3, 4]
    assert len({left for left, _ in pairs["val"]}) == 4
    assert len({right for _, right in pairs["val"]}) == 4
    assert len(pairs["train"]) == 16
    assert {left for left, _ in pairs["train"]} == set(range(5))
    assert {right for _, right in pairs["train"]} == set(range(5))
    everything = pairs["train"] + pairs["val"] + pairs["test"]
    assert sorted(everything) == [(left, right) for left in range(5) for right in range(5)]


def test_assign_pairs_depends_on_seed() -> None:
    assignments = {str(assign_pairs(np.random.default_rng(seed))) for seed in range(10)}
    assert len(assignments) > 1


def test_left_even_right_odd(dataset: Path) -> None:
    for split in SPLITS:
        digits = load_digits(dataset, split)
        assert set(digits[:, 0].tolist()) <= {0, 2, 4, 6, 8}
        assert set(digits[:, 1].tolist()) <= {1, 3, 5, 7, 9}


def test_labels_match_digits(dataset: Path) -> None:
    for split in SPLITS:
        _, labels = load_multidigitmnist(dataset, split)
        digits = load_digits(dataset, split).astype(np.int64)
        np.testing.assert_array_equal(labels[:, 0], digits[:, 0] // 2)
        np.testing.assert_array_equal(labels[:, 1], (digits[:, 1] - 1) // 2)
        assert labels.min() >= 0
        assert labels.max() <= 4


def test_glyphs_pasted_at_valid_positions(dataset: Path, mnist: FakeMnist) -> None:
    for split in SPLITS:
        images, _ = load_multidigitmnist(dataset, split)
        digits = load_digits(dataset, split)
        source_images = mnist.test_images if split == "test" else mnist.train_images
        source_labels = mnist.test_labels if split == "test" else mnist.train_labels
        lookup = glyph_index(source_images)
        for image, digit_pair in zip(images, digits):
            rebuilt = np.zeros((64, 64), dtype=np.uint8)
            for position in range(2):
                y, x, glyph = locate_glyph(image, position)
                assert 0 <= y <= 35
                assert 0 <= x <= 3
                instance = lookup[glyph.tobytes()]
                assert source_labels[instance] == digit_pair[position]
                rebuilt[y : y + 28, 32 * position + x : 32 * position + x + 28] = glyph
            # Nothing but the two glyphs is non-zero.
            np.testing.assert_array_equal(image, rebuilt)


def test_positions_vary(dataset: Path) -> None:
    images, _ = load_multidigitmnist(dataset, "train")
    positions = {locate_glyph(image, 1)[:2] for image in images}
    assert len(positions) > 10


def test_border_lines_are_zero(dataset: Path) -> None:
    for split in SPLITS:
        images, _ = load_multidigitmnist(dataset, split)
        assert not images[:, :, 31].any()
        assert not images[:, :, 63].any()
        assert not images[:, 63, :].any()


def test_train_val_instances_disjoint(dataset: Path, mnist: FakeMnist) -> None:
    train = set(recover_instances(dataset, "train", mnist).ravel().tolist())
    val = set(recover_instances(dataset, "val", mnist).ravel().tolist())
    assert train.isdisjoint(val)


def test_test_digits_from_test_set(dataset: Path, mnist: FakeMnist) -> None:
    images, _ = load_multidigitmnist(dataset, "test")
    training_glyphs = glyph_index(mnist.train_images)
    test_glyphs = glyph_index(mnist.test_images)
    for image in images:
        for position in range(2):
            glyph = locate_glyph(image, position)[2].tobytes()
            assert glyph in test_glyphs
            assert glyph not in training_glyphs


def test_no_repeats_when_enough_instances(dataset: Path, mnist: FakeMnist) -> None:
    for split in SPLITS:
        instances = recover_instances(dataset, split, mnist).ravel()
        assert len(np.unique(instances)) == len(instances)
        for record in read_manifest(dataset)["instance_reuse"][split].values():
            assert record["max_uses"] == (1 if record["needed"] else 0)


def test_training_instances_partitioned(dataset: Path) -> None:
    reuse = read_manifest(dataset)["instance_reuse"]
    for digit in map(str, range(10)):
        assert reuse["train"][digit]["available"] + reuse["val"][digit]["available"] == TRAIN_PER_DIGIT
        assert reuse["test"][digit]["available"] == TEST_PER_DIGIT


def test_repeat_statistics(tmp_path: Path) -> None:
    # Five test instances of digit 5 for 10 images: each is used twice.
    # Four test instances of digit 3 for 10 images: ceil(10 / 4) = 3 uses at most.
    test_counts = [TEST_PER_DIGIT] * 10
    test_counts[5] = 5
    test_counts[3] = 4
    mnist = make_mnist([TRAIN_PER_DIGIT] * 10, test_counts)
    messages: list[str] = []
    folder = prepare_multidigitmnist(mnist, tmp_path / "multidigitmnist", seed=1, images_per_pair=10, log=messages.append)

    reuse = read_manifest(folder)["instance_reuse"]["test"]
    assert reuse["5"] == {"needed": 10, "available": 5, "max_uses": 2}
    assert reuse["3"] == {"needed": 10, "available": 4, "max_uses": 3}
    assert reuse["1"] == {"needed": 10, "available": TEST_PER_DIGIT, "max_uses": 1}

    instances = recover_instances(folder, "test", mnist)
    digits = load_digits(folder, "test")
    fives = instances[:, 1][digits[:, 1] == 5]
    threes = instances[:, 1][digits[:, 1] == 3]
    assert sorted(np.unique(fives, return_counts=True)[1].tolist()) == [2, 2, 2, 2, 2]
    assert sorted(np.unique(threes, return_counts=True)[1].tolist()) == [2, 2, 3, 3]
    assert any("digit 5" in message and "up to 2 times" in message for message in messages)


def test_repeat_statistics_in_training_splits(tmp_path: Path) -> None:
    train_counts = [TRAIN_PER_DIGIT] * 10
    train_counts[4] = 5
    mnist = make_mnist(train_counts, [TEST_PER_DIGIT] * 10)
    folder = prepare_multidigitmnist(mnist, tmp_path / "multidigitmnist", seed=2, images_per_pair=IMAGES_PER_PAIR, log=quiet)

    reuse = read_manifest(folder)["instance_reuse"]
    assert reuse["train"]["4"]["available"] + reuse["val"]["4"]["available"] == 5
    for split in ("train", "val"):
        record = reuse[split]["4"]
        if record["needed"]:
            assert record["max_uses"] == math.ceil(record["needed"] / record["available"])
            instances = recover_instances(folder, split, mnist)
            fours = instances[:, 0][load_digits(folder, split)[:, 0] == 4]
            assert np.unique(fours, return_counts=True)[1].max() == record["max_uses"]


def test_samples_png_written(dataset: Path) -> None:
    for split in SPLITS:
        with Image.open(dataset / f"samples_{split}.png") as image:
            assert image.format == "PNG"
            assert image.width > 400


# ---------------------------------------------------------------------------
# Determinism and atomic writes


def test_same_seed_same_bytes(mnist: FakeMnist, dataset: Path, tmp_path: Path) -> None:
    again = prepare_multidigitmnist(mnist, tmp_path / "again", seed=7, images_per_pair=IMAGES_PER_PAIR, log=quiet)
    assert file_hashes(again) == file_hashes(dataset)
    assert dataset_checksum(again) == dataset_checksum(dataset)


def test_different_seed_different_bytes(mnist: FakeMnist, dataset: Path, tmp_path: Path) -> None:
    other = prepare_multidigitmnist(mnist, tmp_path / "other", seed=8, images_per_pair=IMAGES_PER_PAIR, log=quiet)
    assert dataset_checksum(other) != dataset_checksum(dataset)
    assert file_hashes(other)["train_images.npy"] != file_hashes(dataset)["train_images.npy"]


def test_checksum_is_sha256sum_listing(dataset: Path) -> None:
    listing = "".join(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n" for path in sorted(dataset.glob("*.npy"))
    )
    assert dataset_checksum(dataset) == hashlib.sha256(listing.encode()).hexdigest()
    assert verify_multidigitmnist(dataset) == dataset_checksum(dataset)


def test_manifest_records_provenance(dataset: Path) -> None:
    manifest = read_manifest(dataset)
    assert manifest["format_version"] == 1
    assert manifest["builder"]["name"] == "multidigitmnist"
    assert manifest["mnist_source"] == "synthetic MNIST for tests"
    assert manifest["seed"] == 7
    assert manifest["images_per_pair"] == IMAGES_PER_PAIR
    assert len(manifest["files"]) == 9


def fail_on_split(monkeypatch: pytest.MonkeyPatch, failing_split_index: int) -> None:
    original = multidigitmnist._build_split
    calls = []

    def build_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) > failing_split_index:
            raise RuntimeError("simulated interruption")
        return original(*args, **kwargs)

    monkeypatch.setattr(multidigitmnist, "_build_split", build_then_fail)


def test_interrupted_prepare_keeps_old_dataset(mnist: FakeMnist, dataset_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = file_hashes(dataset_copy)
    fail_on_split(monkeypatch, failing_split_index=1)

    with pytest.raises(RuntimeError, match="simulated interruption"):
        prepare_multidigitmnist(mnist, dataset_copy, seed=99, images_per_pair=IMAGES_PER_PAIR, log=quiet)

    assert file_hashes(dataset_copy) == before
    assert [path.name for path in dataset_copy.parent.iterdir()] == ["multidigitmnist"]
    verify_multidigitmnist(dataset_copy)


def test_interrupted_first_prepare_leaves_nothing(mnist: FakeMnist, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fail_on_split(monkeypatch, failing_split_index=2)

    with pytest.raises(RuntimeError, match="simulated interruption"):
        prepare_multidigitmnist(mnist, tmp_path / "multidigitmnist", seed=0, images_per_pair=IMAGES_PER_PAIR, log=quiet)

    assert list(tmp_path.iterdir()) == []


def test_prepare_replaces_old_dataset(mnist: FakeMnist, dataset_copy: Path) -> None:
    old_checksum = dataset_checksum(dataset_copy)
    prepare_multidigitmnist(mnist, dataset_copy, seed=11, images_per_pair=IMAGES_PER_PAIR, log=quiet)
    assert dataset_checksum(dataset_copy) != old_checksum
    assert read_manifest(dataset_copy)["seed"] == 11


def test_prepare_keeps_foreign_folder(mnist: FakeMnist, tmp_path: Path) -> None:
    folder = tmp_path / "multidigitmnist"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")

    with pytest.raises(MtbenchError, match="not empty"):
        prepare_multidigitmnist(mnist, folder, images_per_pair=IMAGES_PER_PAIR, log=quiet)

    assert (folder / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------
# Invalid input to the builder


@pytest.mark.parametrize("images_per_pair", [0, -1, 1.5, True])
def test_prepare_rejects_images_per_pair(mnist: FakeMnist, tmp_path: Path, images_per_pair) -> None:
    with pytest.raises(MtbenchError, match="images_per_pair"):
        prepare_multidigitmnist(mnist, tmp_path / "out", images_per_pair=images_per_pair, log=quiet)


def test_prepare_rejects_negative_seed(mnist: FakeMnist, tmp_path: Path) -> None:
    with pytest.raises(MtbenchError, match="seed"):
        prepare_multidigitmnist(mnist, tmp_path / "out", seed=-1, log=quiet)


def test_prepare_rejects_wrong_mnist_dtype(mnist: FakeMnist, tmp_path: Path) -> None:
    broken = FakeMnist(mnist.train_images.astype(np.float32), mnist.train_labels, mnist.test_images, mnist.test_labels, "float MNIST")
    with pytest.raises(MtbenchError, match="float MNIST"):
        prepare_multidigitmnist(broken, tmp_path / "out", images_per_pair=IMAGES_PER_PAIR, log=quiet)


def test_prepare_rejects_missing_digit(tmp_path: Path) -> None:
    test_counts = [TEST_PER_DIGIT] * 10
    test_counts[7] = 0
    mnist = make_mnist([TRAIN_PER_DIGIT] * 10, test_counts)
    with pytest.raises(MtbenchError, match="digit 7"):
        prepare_multidigitmnist(mnist, tmp_path / "out", images_per_pair=IMAGES_PER_PAIR, log=quiet)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# Load errors


def save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array)


def test_load_unknown_split(dataset: Path) -> None:
    with pytest.raises(MtbenchError, match="train, val, test"):
        load_multidigitmnist(dataset, "validation")


def test_load_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(MtbenchError, match="nowhere.*mtbench prepare multidigitmnist"):
        load_multidigitmnist(tmp_path / "nowhere", "train")


def test_load_missing_manifest(dataset_copy: Path) -> None:
    (dataset_copy / "manifest.json").unlink()
    with pytest.raises(MtbenchError, match="manifest.json.*mtbench prepare multidigitmnist"):
        load_multidigitmnist(dataset_copy, "train")


def test_load_invalid_json_manifest(dataset_copy: Path) -> None:
    (dataset_copy / "manifest.json").write_text("{not json")
    with pytest.raises(MtbenchError, match="manifest.json is not valid JSON"):
        load_multidigitmnist(dataset_copy, "train")


def test_load_wrong_format_version(dataset_copy: Path) -> None:
    manifest = json.loads((dataset_copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (dataset_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(MtbenchError, match="manifest.json has format version 99"):
        load_multidigitmnist(dataset_copy, "train")


def test_load_edited_manifest_checksum(dataset_copy: Path) -> None:
    manifest = json.loads((dataset_copy / "manifest.json").read_text())
    manifest["files"]["val_images.npy"]["sha256"] = "0" * 64
    (dataset_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(MtbenchError, match="manifest.json.*checksum"):
        load_multidigitmnist(dataset_copy, "train")


def test_load_missing_npy(dataset_copy: Path) -> None:
    (dataset_copy / "val_labels.npy").unlink()
    with pytest.raises(MtbenchError, match="val_labels.npy not found"):
        load_multidigitmnist(dataset_copy, "val")


@pytest.mark.parametrize("verify", [True, False])
def test_load_truncated_npy(dataset_copy: Path, verify: bool) -> None:
    path = dataset_copy / "train_images.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(MtbenchError, match="train_images.npy.*truncated"):
        load_multidigitmnist(dataset_copy, "train", verify=verify)


def test_load_npy_header_cut(dataset_copy: Path) -> None:
    path = dataset_copy / "test_images.npy"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(MtbenchError, match="test_images.npy is not a valid .npy file"):
        load_multidigitmnist(dataset_copy, "test")


def test_load_not_npy(dataset_copy: Path) -> None:
    (dataset_copy / "test_labels.npy").write_bytes(b"hello, not an array")
    with pytest.raises(MtbenchError, match="test_labels.npy is not a valid .npy file"):
        load_multidigitmnist(dataset_copy, "test")


def test_load_unreadable_npy(dataset_copy: Path) -> None:
    path = dataset_copy / "test_labels.npy"
    path.unlink()
    path.mkdir()
    with pytest.raises(MtbenchError, match="Cannot read .*test_labels.npy"):
        load_multidigitmnist(dataset_copy, "test")


def test_load_wrong_dtype(dataset_copy: Path) -> None:
    labels = np.load(dataset_copy / "train_labels.npy")
    save_npy(dataset_copy / "train_labels.npy", labels.astype(np.int32))
    with pytest.raises(MtbenchError, match="train_labels.npy has dtype int32, expected int64"):
        load_multidigitmnist(dataset_copy, "train")


def test_load_wrong_shape(dataset_copy: Path) -> None:
    images = np.load(dataset_copy / "val_images.npy")
    save_npy(dataset_copy / "val_images.npy", images[:, :32, :])
    with pytest.raises(MtbenchError, match=r"val_images.npy has shape \(12, 32, 64\)"):
        load_multidigitmnist(dataset_copy, "val")


def test_load_labels_out_of_range(dataset_copy: Path) -> None:
    labels = np.load(dataset_copy / "test_labels.npy")
    labels[0, 1] = 5
    save_npy(dataset_copy / "test_labels.npy", labels)
    with pytest.raises(MtbenchError, match="test_labels.npy has labels outside 0..4"):
        load_multidigitmnist(dataset_copy, "test", verify=False)
    with pytest.raises(MtbenchError, match="test_labels.npy does not match the sha256"):
        load_multidigitmnist(dataset_copy, "test", verify=True)


def test_load_modified_pixels(dataset_copy: Path) -> None:
    path = dataset_copy / "train_images.npy"
    payload = bytearray(path.read_bytes())
    payload[-1] ^= 0xFF
    path.write_bytes(bytes(payload))

    with pytest.raises(MtbenchError, match="train_images.npy does not match the sha256"):
        load_multidigitmnist(dataset_copy, "train")
    images, _ = load_multidigitmnist(dataset_copy, "train", verify=False)
    assert images[-1, -1, -1] == 0xFF


def test_verify_finds_modified_digits(dataset_copy: Path) -> None:
    digits = np.load(dataset_copy / "val_digits.npy")
    digits[0, 0] = 2 if digits[0, 0] != 2 else 4
    save_npy(dataset_copy / "val_digits.npy", digits)
    load_multidigitmnist(dataset_copy, "val")
    with pytest.raises(MtbenchError, match="val_digits.npy does not match the sha256"):
        verify_multidigitmnist(dataset_copy)


def test_loaded_arrays_are_writable(dataset: Path) -> None:
    images, labels = load_multidigitmnist(dataset, "val")
    assert images.flags.writeable
    assert labels.flags.writeable


# ---------------------------------------------------------------------------
# Sample grid


def test_sample_grid_png(tmp_path: Path) -> None:
    images = np.zeros((5, 64, 64), dtype=np.uint8)
    labels = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
    path = tmp_path / "grid.png"
    write_sample_grid(images, labels, path, "five samples", rows=2, cols=3)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (390, 330)
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_sample_grid_rejects_mismatch(tmp_path: Path) -> None:
    with pytest.raises(MtbenchError, match="4 images but labels of shape"):
        write_sample_grid(np.zeros((4, 8, 8), dtype=np.uint8), np.zeros((3, 2)), tmp_path / "grid.png", "bad")


def test_images_shuffled_within_split(dataset: Path) -> None:
    # In block order the 16 training pairs of 3 images would change pair 15 times.
    digits = load_digits(dataset, "train")
    changes = int(np.any(digits[1:] != digits[:-1], axis=1).sum())
    assert changes > 25

"""Properties that hold for every input: batching-independent metrics and disjoint dataset splits.

Metrics: scoring a set in one batch, or in any order cut into any batches,
gives the same scores. Counts (accuracy, the confusion matrix, delta1 and the
angle thresholds) must match exactly. Sums of floats may differ in the last
bits, because addition in another order rounds differently.

Splits: MultiDigitMNIST class pairs, and the validation images carved from
the NYUv2 and SUN RGB-D training splits, never overlap another split, for any
seed and validation fraction.
"""

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtbench.cli.main import main
from mtbench.data.dense_format import read_dense_manifest
from mtbench.data.multidigitmnist_pairs import NUM_CLASSES, PAIRS_PER_SPLIT, SPLITS, assign_pairs
from mtbench.data.nyuv2.validation_split import carve_validation as carve_nyuv2_validation
from mtbench.data.nyuv2.validation_split import validation_count
from mtbench.data.sunrgbd.split import carve_validation as carve_sunrgbd_validation
from mtbench.errors import MtbenchError
from mtbench.metrics.classification import MultiTaskAccuracy
from mtbench.metrics.depth import DepthMetrics
from mtbench.metrics.normals import NormalMetrics
from mtbench.metrics.segmentation import SegmentationMetrics
from nyuv2_fixtures import official_arrays, write_official_folder
from sunrgbd_fixtures import write_sunrgbd_sources

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FLOAT_SUMS = {"rel": 1e-9, "abs": 1e-12}


@st.composite
def sample_count_and_batches(draw, max_count: int = 24) -> tuple[int, list[np.ndarray]]:
    """Draw a sample count N and a cut of a permutation of range(N) into consecutive batches."""
    count = draw(st.integers(min_value=1, max_value=max_count))
    order = np.array(draw(st.permutations(range(count))))
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=count - 1), max_size=count - 1)) if count > 1 else [])
    return count, np.split(order, cuts)


def scores_in_batches(metric, predicted: torch.Tensor, target: torch.Tensor, batches: list[np.ndarray]) -> dict[str, float]:
    for rows in batches:
        index = torch.from_numpy(rows)
        metric.update(predicted[index], target[index])
    return metric.compute()


def assert_same_scores(batched: dict[str, float], whole: dict[str, float], exact: set[str]) -> None:
    assert batched.keys() == whole.keys()
    for name, value in whole.items():
        if name in exact:
            assert batched[name] == value, name
        else:
            assert batched[name] == pytest.approx(value, **FLOAT_SUMS), name


# Metrics.


@FEW
@given(sample_count_and_batches(), st.integers(min_value=0, max_value=2**32 - 1))
def test_accuracy_ignores_batching_and_order(count_and_batches, seed):
    count, batches = count_and_batches
    generator = torch.Generator().manual_seed(seed)
    outputs = {task: torch.randn(count, 5, generator=generator) for task in ("left", "right")}
    targets = {task: torch.randint(0, 5, (count,), generator=generator) for task in ("left", "right")}

    whole = MultiTaskAccuracy(["left", "right"])
    whole.update(outputs, targets)
    batched = MultiTaskAccuracy(["left", "right"])
    for rows in batches:
        index = torch.from_numpy(rows)
        batched.update({task: output[index] for task, output in outputs.items()}, {task: target[index] for task, target in targets.items()})

    assert batched.compute() == whole.compute()


@FEW
@given(sample_count_and_batches(), st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=1, max_value=6))
def test_segmentation_ignores_batching_and_order(count_and_batches, seed, num_classes):
    count, batches = count_and_batches
    generator = torch.Generator().manual_seed(seed)
    predicted = torch.randint(0, num_classes, (count, 3, 4), generator=generator)
    target = torch.randint(0, num_classes, (count, 3, 4), generator=generator)
    target[torch.rand(count, 3, 4, generator=generator) < 0.3] = 255
    target[0, 0, 0] = 0

    whole = SegmentationMetrics(num_classes)
    whole.update(predicted, target)
    batched = SegmentationMetrics(num_classes)
    assert_same_scores(scores_in_batches(batched, predicted, target, batches), whole.compute(), exact={"pixel_accuracy"})
    assert torch.equal(batched.confusion, whole.confusion)


@FEW
@given(sample_count_and_batches(), st.integers(min_value=0, max_value=2**32 - 1))
def test_depth_errors_ignore_batching_and_order(count_and_batches, seed):
    count, batches = count_and_batches
    generator = torch.Generator().manual_seed(seed)
    # Predictions in [-1, 9) metres include non-positive ones, which never meet delta1.
    predicted = torch.rand(count, 3, 4, generator=generator) * 10 - 1
    target = torch.rand(count, 3, 4, generator=generator) * 10
    target[torch.rand(count, 3, 4, generator=generator) < 0.3] = 0
    target[0, 0, 0] = 2.5

    whole = DepthMetrics()
    whole.update(predicted, target)
    batched = DepthMetrics()
    assert_same_scores(scores_in_batches(batched, predicted, target, batches), whole.compute(), exact={"delta1"})


@FEW
@given(sample_count_and_batches(), st.integers(min_value=0, max_value=2**32 - 1))
def test_normal_errors_ignore_batching_and_order(count_and_batches, seed):
    count, batches = count_and_batches
    generator = torch.Generator().manual_seed(seed)
    predicted = torch.randn(count, 3, 2, 3, generator=generator)
    predicted[:, :, 0, 0] = 0
    target = torch.randn(count, 3, 2, 3, generator=generator)
    target[:, :, 1, 2] = 0

    whole = NormalMetrics()
    whole.update(predicted, target)
    batched = NormalMetrics()
    exact = {"median_angle_error", "within_11_25", "within_22_5", "within_30"}
    assert_same_scores(scores_in_batches(batched, predicted, target, batches), whole.compute(), exact=exact)


# MultiDigitMNIST class pairs.

ALL_PAIRS = {(left, right) for left in range(NUM_CLASSES) for right in range(NUM_CLASSES)}


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_pair_splits_partition_all_pairs(seed):
    pairs = assign_pairs(np.random.default_rng(seed))

    for split in SPLITS:
        assert len(pairs[split]) == len(set(pairs[split])) == PAIRS_PER_SPLIT[split]
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(pairs[first]) & set(pairs[second]), (first, second)
    assert set().union(*(set(pairs[split]) for split in SPLITS)) == ALL_PAIRS


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_pair_splits_cover_classes(seed):
    pairs = assign_pairs(np.random.default_rng(seed))

    for task in (0, 1):
        test_classes = [pair[task] for pair in pairs["test"]]
        assert sorted(test_classes) == list(range(NUM_CLASSES))
        val_classes = [pair[task] for pair in pairs["val"]]
        assert len(set(val_classes)) == len(val_classes)
        train_classes = [pair[task] for pair in pairs["train"]]
        assert min(train_classes.count(label) for label in range(NUM_CLASSES)) >= 3


# Validation carved from the official training splits.


@st.composite
def official_split_ids(draw, max_train: int = 40) -> tuple[list[int], list[int]]:
    """Draw disjoint lists of official train and test image ids in arbitrary order."""
    train_count = draw(st.integers(min_value=1, max_value=max_train))
    test_count = draw(st.integers(min_value=0, max_value=10))
    ids = draw(st.permutations(range(1, train_count + test_count + 1)))
    return list(ids[:train_count]), list(ids[train_count:])


@settings(max_examples=200, deadline=None)
@given(official_split_ids(), st.floats(min_value=0.0, max_value=1.0), st.integers(min_value=0, max_value=2**32 - 1))
def test_nyuv2_validation_disjoint_from_train_and_test(split_ids, fraction, seed):
    train_ids, test_ids = split_ids
    try:
        train_positions, val_positions = carve_nyuv2_validation(len(train_ids), fraction, seed)
    except MtbenchError:
        count = math.floor(fraction * len(train_ids) + 0.5)
        assert not 0 < fraction < 1 or count in (0, len(train_ids))
        return

    train = [train_ids[position] for position in train_positions]
    val = [train_ids[position] for position in val_positions]
    assert len(val) == validation_count(len(train_ids), fraction)
    assert len(set(train)) == len(train)
    assert len(set(val)) == len(val)
    assert not set(val) & set(train)
    assert not set(val) & set(test_ids)
    assert set(train) | set(val) == set(train_ids)


@settings(max_examples=200, deadline=None)
@given(official_split_ids(), st.floats(min_value=0.0, max_value=1.0), st.integers(min_value=0, max_value=2**32 - 1))
def test_sunrgbd_validation_disjoint_from_train_and_test(split_ids, fraction, seed):
    train_ids, test_ids = split_ids
    try:
        train, val = carve_sunrgbd_validation(train_ids, fraction, seed)
    except MtbenchError:
        assert not 0 < fraction < 1 or round(fraction * len(train_ids)) in (0, len(train_ids))
        return

    assert len(val) == round(fraction * len(train_ids))
    assert not set(val) & set(train)
    assert not set(val) & set(test_ids)
    assert sorted(train + val) == sorted(train_ids)
    # Both keep the order of the official list.
    assert train == [frame for frame in train_ids if frame in set(train)]
    assert val == [frame for frame in train_ids if frame in set(val)]


# The same properties on the prepared datasets, through `mtbench prepare`.


@pytest.fixture(scope="module")
def dense_sources(tmp_path_factory):
    """Official NYUv2 files of 6 images (train ids 1, 3, 4, 5; test ids 2, 6) and a 6-frame SUN RGB-D tree."""
    base = tmp_path_factory.mktemp("sources")
    arrays = official_arrays(count=6, height=12, width=16)
    return write_official_folder(base / "nyu", arrays), arrays, write_sunrgbd_sources(base / "sun")


def prepared_source_indices(arguments: list[str], folder_name: str) -> dict[str, list[int]]:
    with tempfile.TemporaryDirectory() as root:
        assert main([*arguments, "--data-root", root]) == 0
        return read_dense_manifest(Path(root) / folder_name)["source_indices"]


def assert_partition(indices: dict[str, list[int]], train: list[int], test: list[int]) -> None:
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(indices[first]) & set(indices[second]), (first, second)
    assert sorted(indices["train"] + indices["val"]) == sorted(train)
    assert sorted(indices["test"]) == sorted(test)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), fraction=st.floats(min_value=0.13, max_value=0.86))
def test_prepared_nyuv2_splits_disjoint(dense_sources, capsys, seed, fraction):
    folder, arrays, _ = dense_sources
    arguments = ["prepare", "nyuv2", "--nyuv2-folder", str(folder), "--seed", str(seed), "--val-fraction", repr(fraction)]
    indices = prepared_source_indices(arguments, "nyuv2")
    capsys.readouterr()
    assert_partition(indices, arrays.train_ids, arrays.test_ids)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), fraction=st.floats(min_value=0.13, max_value=0.86))
def test_prepared_sunrgbd_splits_disjoint(dense_sources, capsys, seed, fraction):
    _, _, sources = dense_sources
    arguments = ["prepare", "sunrgbd", "--sunrgbd-folder", str(sources.folder), "--seed", str(seed), "--val-fraction", repr(fraction)]
    indices = prepared_source_indices(arguments, "sunrgbd")
    capsys.readouterr()
    official = {split: [index for index, frame in enumerate(sources.frames) if frame.split == split] for split in ("train", "test")}
    assert_partition(indices, official["train"], official["test"])

import doctest
import math
import subprocess
import sys

import pytest
import torch

from mtbench.metrics import depth, normals, segmentation
from mtbench.metrics.dense import METRIC_DIRECTIONS, TASK_METRICS, DenseEvaluator, task_metric_names
from mtbench.metrics.depth import DepthMetrics
from mtbench.metrics.normals import NormalMetrics
from mtbench.metrics.segmentation import SegmentationMetrics

IGNORED = 255


@pytest.mark.parametrize("module", [depth, normals, segmentation])
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.attempted > 0
    assert result.failed == 0


# Absolute errors 2, 1, 1, 1: mean 5/4 = 1.25, RMSE sqrt((4 + 1 + 1 + 1) / 4) = sqrt(7/4) = 1.3229.
@pytest.mark.parametrize("batches", [[[2.0], [1.0, 1.0, 1.0]], [[1.0, 1.0, 1.0], [2.0]], [[2.0, 1.0, 1.0, 1.0]], [[1.0], [2.0], [1.0], [1.0]]])
def test_depth_errors_independent_of_batching(batches):
    metrics = DepthMetrics()
    for errors in batches:
        target = torch.ones(len(errors))
        metrics.update(target + torch.tensor(errors), target)
    scores = metrics.compute()
    assert scores["rmse"] == pytest.approx(math.sqrt(7 / 4))
    assert scores["rmse"] == pytest.approx(1.3229, abs=1e-4)
    assert scores["abs_error"] == pytest.approx(1.25)


def test_depth_skips_invalid_pixels():
    # Valid pixels: true 2 predicted 3 and true 4 predicted 3; errors 1 and 1, relative 1/2 and 1/4.
    metrics = DepthMetrics()
    metrics.update(torch.tensor([0.5, 3.0, 3.0]), torch.tensor([0.0, 2.0, 4.0]))
    scores = metrics.compute()
    assert scores["abs_error"] == pytest.approx(1.0)
    assert scores["abs_rel"] == pytest.approx(0.375)
    assert scores["rmse"] == pytest.approx(1.0)


def test_depth_delta1_threshold_is_strict():
    # Ratios 1.2 (inside), exactly 1.25 (outside) and a prediction of 0 (outside).
    metrics = DepthMetrics()
    metrics.update(torch.tensor([2.4, 5.0, 0.0]), torch.tensor([2.0, 4.0, 1.0]))
    assert metrics.compute()["delta1"] == pytest.approx(1 / 3)


def test_depth_without_valid_pixel_raises():
    metrics = DepthMetrics()
    metrics.update(torch.tensor([1.0, 2.0]), torch.zeros(2))
    with pytest.raises(ValueError, match="at least one valid pixel"):
        metrics.compute()


def test_depth_shape_mismatch_raises():
    with pytest.raises(ValueError, match="one shape"):
        DepthMetrics().update(torch.ones(2, 3), torch.ones(3, 2))


def test_segmentation_ignored_pixel_counts_nowhere():
    metrics = SegmentationMetrics(num_classes=2)
    metrics.update(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 1, IGNORED, 1]))
    assert metrics.compute() == {"miou": 1.0, "pixel_accuracy": 1.0}


def test_segmentation_absent_class_left_out():
    metrics = SegmentationMetrics(num_classes=3)
    metrics.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert metrics.compute()["miou"] == 1.0


def test_segmentation_false_positive_class():
    # Class 0: intersection 1, union 2 -> 0.5. Class 2: predicted once, never true -> 0. Class 1 is absent.
    metrics = SegmentationMetrics(num_classes=3)
    metrics.update(torch.tensor([0, 2]), torch.tensor([0, 0]))
    scores = metrics.compute()
    assert scores["miou"] == pytest.approx(0.25)
    assert scores["pixel_accuracy"] == pytest.approx(0.5)


def test_segmentation_over_whole_set_not_batch_mean():
    # Batches score 1.0 and 0.25 alone (mean 0.625). Together: class 0 has intersection 2 and
    # union 3, class 1 1/1, class 2 0/1, so mIoU = (2/3 + 1 + 0) / 3 = 5/9.
    batches = [(torch.tensor([0, 1]), torch.tensor([0, 1])), (torch.tensor([0, 2]), torch.tensor([0, 0]))]
    for order in (batches, batches[::-1]):
        metrics = SegmentationMetrics(num_classes=3)
        for predicted, target in order:
            metrics.update(predicted, target)
        assert metrics.compute()["miou"] == pytest.approx(5 / 9)
        assert metrics.compute()["pixel_accuracy"] == pytest.approx(3 / 4)


def test_segmentation_all_ignored_raises():
    metrics = SegmentationMetrics(num_classes=3)
    metrics.update(torch.tensor([0, 1]), torch.tensor([IGNORED, IGNORED]))
    with pytest.raises(ValueError, match="labelled pixel"):
        metrics.compute()


@pytest.mark.parametrize(("predicted", "target"), [([0, 3], [0, 1]), ([0, 1], [0, 3]), ([0, 1], [0, -1])])
def test_segmentation_index_out_of_range_raises(predicted, target):
    with pytest.raises(ValueError, match="must lie in 0..2"):
        SegmentationMetrics(num_classes=3).update(torch.tensor(predicted), torch.tensor(target))


def test_normals_mean_and_median_angle():
    # Angles 0 and 90 degrees: mean and median 45, mean cosine (1 + 0) / 2.
    metrics = NormalMetrics()
    predicted = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    target = torch.tensor([[0.0, 0.0, 1.0], [0.7071, -0.7071, 0.0]])
    metrics.update(predicted, target)
    scores = metrics.compute()
    assert scores["mean_angle_error"] == pytest.approx(45.0)
    assert scores["median_angle_error"] == pytest.approx(45.0)
    assert scores["within_11_25"] == pytest.approx(0.5)
    assert scores["within_30"] == pytest.approx(0.5)
    assert scores["mean_cosine"] == pytest.approx(0.5)


def test_normals_prediction_length_ignored():
    metrics = NormalMetrics()
    metrics.update(torch.tensor([[0.0, 0.0, 0.5]]), torch.tensor([[0.0, 0.0, 1.0]]))
    assert metrics.compute()["mean_angle_error"] == pytest.approx(0.0, abs=1e-6)


def test_normals_zero_prediction_is_90_degrees():
    metrics = NormalMetrics()
    metrics.update(torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 1.0]]))
    scores = metrics.compute()
    assert all(math.isfinite(value) for value in scores.values())
    assert scores["mean_angle_error"] == pytest.approx(90.0)
    assert scores["mean_cosine"] == 0.0


def test_normals_skip_zero_ground_truth():
    metrics = NormalMetrics()
    metrics.update(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    assert metrics.count == 1
    assert metrics.compute()["mean_angle_error"] == pytest.approx(0.0, abs=1e-6)


def test_normals_median_exact_over_batches():
    # Angles 0 | 90, 60 in two batches: median 60 (not a per-batch median), mean 50.
    up = [0.0, 0.0, 1.0]
    metrics = NormalMetrics()
    metrics.update(torch.tensor([up]), torch.tensor([up]))
    metrics.update(torch.tensor([[1.0, 0.0, 0.0], [math.sin(math.pi / 3), 0.0, 0.5]]), torch.tensor([up, up]))
    scores = metrics.compute()
    assert scores["median_angle_error"] == pytest.approx(60.0, abs=1e-4)
    assert scores["mean_angle_error"] == pytest.approx(50.0, abs=1e-4)
    assert scores["within_22_5"] == pytest.approx(1 / 3)


def test_normals_images_with_channel_axis():
    predicted = torch.zeros(2, 3, 4, 4)
    predicted[:, 2] = 1.0
    metrics = NormalMetrics()
    metrics.update(predicted, predicted.clone())
    assert metrics.count == 32
    assert metrics.compute()["within_11_25"] == 1.0


def make_batch() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One 1 x 2 image: segmentation right everywhere, depth right on one of two pixels, normals off by 90 degrees on one."""
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 1, 0, 0] = 5.0
    logits[0, 2, 0, 1] = 5.0
    normal_target = torch.zeros(1, 3, 1, 2)
    normal_target[0, 2] = 1.0
    normal_output = normal_target.clone()
    normal_output[0, :, 0, 1] = torch.tensor([1.0, 0.0, 0.0])
    outputs = {"segmentation": logits, "depth": torch.tensor([[[[2.0, 9.0]]]]), "normal": normal_output}
    targets = {"segmentation": torch.tensor([[[1, 2]]], dtype=torch.uint8), "depth": torch.tensor([[[2.0, 3.0]]]), "normal": normal_target}
    return outputs, targets


def test_evaluator_names_and_mean_task_score():
    evaluator = DenseEvaluator({"segmentation": "segmentation", "depth": "depth", "normal": "normal"}, {"segmentation": 3})
    evaluator.update(*make_batch())
    scores = evaluator.compute()

    expected = set(task_metric_names("segmentation", "segmentation") + task_metric_names("depth", "depth") + task_metric_names("normal", "normal"))
    assert set(scores) == expected | {"mean_task_score"}
    # Scores: mIoU 1, delta1 1/2, within 22.5 degrees 1/2.
    assert scores["segmentation_miou"] == 1.0
    assert scores["depth_delta1"] == 0.5
    assert scores["normal_within_22_5"] == 0.5
    assert scores["mean_task_score"] == pytest.approx(2 / 3)


def test_evaluator_single_task_has_no_mean():
    evaluator = DenseEvaluator({"depth": "depth"})
    outputs, targets = make_batch()
    evaluator.update(outputs, targets)
    assert "mean_task_score" not in evaluator.compute()


def test_evaluator_rejects_depth_without_channel_axis():
    evaluator = DenseEvaluator({"depth": "depth"})
    with pytest.raises(ValueError, match=r"\(N, 1, h, w\)"):
        evaluator.update({"depth": torch.ones(1, 1, 2)}, {"depth": torch.ones(1, 1, 2)})


def test_evaluator_needs_class_count():
    with pytest.raises(ValueError, match="number of classes"):
        DenseEvaluator({"segmentation": "segmentation"})


def test_every_metric_has_direction():
    for kind, metrics in TASK_METRICS.items():
        for metric in metrics:
            assert METRIC_DIRECTIONS[metric] in ("higher", "lower"), (kind, metric)
    assert METRIC_DIRECTIONS["rmse"] == "lower"
    assert METRIC_DIRECTIONS["miou"] == "higher"
    assert METRIC_DIRECTIONS["mean_task_score"] == "higher"


def test_directions_importable_without_torch():
    code = "import sys, mtbench.metrics.dense, mtbench.benchmarks.definition; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

import numpy as np
import pytest
import torch

from mtbench.metrics.gradient_cosine import CosineTracker, pairwise_cosines


def test_pairwise_two_tasks():
    cosines = pairwise_cosines(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    assert cosines.tolist() == pytest.approx([2**-0.5])


def test_pairwise_identical_and_opposite():
    assert pairwise_cosines(torch.tensor([[1.0, 2.0], [2.0, 4.0]])).item() == pytest.approx(1.0)
    assert pairwise_cosines(torch.tensor([[1.0, 2.0], [-1.0, -2.0]])).item() == pytest.approx(-1.0)


def test_pairwise_zero_gradient_is_zero_not_nan():
    cosines = pairwise_cosines(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    assert cosines.item() == 0.0


def test_pairwise_three_tasks_order():
    cosines = pairwise_cosines(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    assert cosines.tolist() == pytest.approx([0.0, -1.0, 0.0])


def test_pairwise_single_task_is_empty():
    assert pairwise_cosines(torch.tensor([[1.0, 2.0]])).numel() == 0


def test_tracker_epoch_and_run_summaries():
    tracker = CosineTracker()
    tracker.start_epoch()
    tracker.update(torch.tensor([0.5]))
    tracker.update(torch.tensor([-0.5]))
    tracker.start_epoch()
    tracker.update(torch.tensor([1.0]))
    first_mean, first_std = tracker.epoch_summary(0)
    assert first_mean == pytest.approx(0.0)
    assert first_std == pytest.approx(np.std([0.5, -0.5], ddof=1))
    run_mean, run_std = tracker.run_summary()
    assert run_mean == pytest.approx(1.0 / 3.0)
    assert run_std == pytest.approx(np.std([0.5, -0.5, 1.0], ddof=1))
    assert tracker.steps().shape == (3, 1)


def test_tracker_without_pairs_gives_none():
    tracker = CosineTracker()
    tracker.start_epoch()
    assert tracker.epoch_summary() == (None, None)
    assert tracker.run_summary() == (None, None)

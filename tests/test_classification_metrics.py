import pytest
import torch

from mtbench.metrics.classification import Accuracy, MultiTaskAccuracy, harmonic_mean


def test_harmonic_mean_values():
    assert harmonic_mean([0.5, 1.0]) == pytest.approx(2.0 / 3.0)
    assert harmonic_mean([0.0, 0.8]) == 0.0
    assert harmonic_mean([0.9]) == pytest.approx(0.9)


def test_harmonic_mean_rejects_bad_input():
    with pytest.raises(ValueError):
        harmonic_mean([])
    with pytest.raises(ValueError):
        harmonic_mean([-0.1, 0.5])


def test_accuracy_accumulates_over_batches():
    accuracy = Accuracy()
    accuracy.update(torch.tensor([[2.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    accuracy.update(torch.tensor([[0.0, 3.0]]), torch.tensor([1]))
    assert accuracy.compute() == pytest.approx(2.0 / 3.0)


def test_accuracy_class_absent_from_batch():
    accuracy = Accuracy()
    accuracy.update(torch.tensor([[0.0, 0.0, 5.0]]), torch.tensor([2]))
    assert accuracy.compute() == 1.0


def test_accuracy_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="logits"):
        Accuracy().update(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))


def test_accuracy_compute_without_update():
    with pytest.raises(ValueError, match="before any update"):
        Accuracy().compute()


def test_multitask_accuracy_names_and_harmonic():
    metric = MultiTaskAccuracy(["left", "right"])
    logits = {"left": torch.tensor([[1.0, 0.0], [1.0, 0.0]]), "right": torch.tensor([[1.0, 0.0], [0.0, 1.0]])}
    metric.update(logits, {"left": torch.tensor([0, 1]), "right": torch.tensor([0, 1])})
    scores = metric.compute()
    assert scores["left_accuracy"] == 0.5
    assert scores["right_accuracy"] == 1.0
    assert scores["harmonic_accuracy"] == pytest.approx(2.0 / 3.0)


def test_single_task_has_no_harmonic():
    metric = MultiTaskAccuracy(["left"])
    metric.update({"left": torch.tensor([[1.0, 0.0]])}, {"left": torch.tensor([0])})
    assert metric.compute() == {"left_accuracy": 1.0}

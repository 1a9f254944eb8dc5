"""Classification metrics: per-task accuracy and the harmonic mean over tasks.

Accuracy accumulates counts over the whole evaluation set (``update``) and is
computed once at the end (``compute``), so the score does not depend on how
the set was cut into batches. Both metrics are higher-is-better.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for annotations: the leaderboard imports harmonic_mean without loading PyTorch.
    import torch

HIGHER_IS_BETTER = {"accuracy": True, "harmonic_accuracy": True}


def harmonic_mean(values: Sequence[float]) -> float:
    """Return K / sum_k (1 / a_k) for the K values; a zero value gives 0.0.

    (0.5, 1.0) gives 2/3 and (0.0, 0.8) gives 0.0. Raises ValueError for an
    empty or negative input.
    """
    values = [float(value) for value in values]
    if not values:
        raise ValueError("harmonic_mean needs at least one value.")
    if any(value < 0 for value in values):
        raise ValueError(f"harmonic_mean is defined for non-negative values, got {values}.")
    if any(value == 0 for value in values):
        return 0.0
    return len(values) / sum(1.0 / value for value in values)


class Accuracy:
    """Fraction of samples whose arg-max prediction equals the target class."""

    def __init__(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        if logits.ndim != 2 or targets.ndim != 1 or logits.shape[0] != targets.shape[0]:
            raise ValueError(
                f"Accuracy expects logits (N, C) and targets (N,), got {tuple(logits.shape)} and {tuple(targets.shape)}."
            )
        self.correct += int((logits.argmax(dim=1) == targets).sum())
        self.total += int(targets.shape[0])

    def compute(self) -> float:
        if self.total == 0:
            raise ValueError("Accuracy.compute() called before any update().")
        return self.correct / self.total


class MultiTaskAccuracy:
    """Accuracy per task, named ``<task>_accuracy``, and ``harmonic_accuracy`` over two or more tasks."""

    def __init__(self, tasks: Sequence[str]) -> None:
        self.tasks = list(tasks)
        self.per_task = {task: Accuracy() for task in self.tasks}

    def update(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> None:
        for task in self.tasks:
            self.per_task[task].update(outputs[task], targets[task])

    def statistics(self) -> torch.Tensor:
        """Return the additive counts (correct, total per task) as a float64 vector, to sum over processes."""
        import torch

        counts = [[metric.correct, metric.total] for metric in self.per_task.values()]
        return torch.tensor(counts, dtype=torch.float64).flatten()

    def load_statistics(self, statistics: torch.Tensor) -> None:
        """Replace the counts with ``statistics`` from :meth:`statistics`, e.g. summed over processes."""
        for index, metric in enumerate(self.per_task.values()):
            metric.correct = int(statistics[2 * index])
            metric.total = int(statistics[2 * index + 1])

    def compute(self) -> dict[str, float]:
        scores = {f"{task}_accuracy": metric.compute() for task, metric in self.per_task.items()}
        if len(self.tasks) > 1:
            scores["harmonic_accuracy"] = harmonic_mean(list(scores.values()))
        return scores

"""The evaluator of dense (per-pixel) benchmarks: one metric set per task, named ``<task>_<metric>``.

Task kinds and their metrics (see the modules for definitions):

- ``segmentation`` (:mod:`mtbench.metrics.segmentation`): ``miou``, ``pixel_accuracy``;
- ``depth`` (:mod:`mtbench.metrics.depth`): ``rmse``, ``abs_error``, ``abs_rel``, ``delta1``;
- ``normal`` (:mod:`mtbench.metrics.normals`): ``mean_cosine``, ``mean_angle_error``,
  ``median_angle_error``, ``within_11_25``, ``within_22_5``, ``within_30``.

With two or more tasks the evaluator adds ``mean_task_score``: the mean over
tasks of one score per task that lies in [0, 1] and is higher-is-better, so
that tasks with different units can be averaged without single-task
baselines. The score is ``TASK_SCORES[kind]``: mIoU for segmentation, delta1
(the fraction of pixels within a factor 1.25 of the true depth) for depth,
and the fraction of normals within 22.5 degrees for normals.

This module imports PyTorch only when an evaluator is built, so the
leaderboard can read ``METRIC_DIRECTIONS`` without loading it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MEAN_TASK_SCORE = "mean_task_score"

TASK_METRICS: dict[str, tuple[str, ...]] = {
    "segmentation": ("miou", "pixel_accuracy"),
    "depth": ("rmse", "abs_error", "abs_rel", "delta1"),
    "normal": ("mean_cosine", "mean_angle_error", "median_angle_error", "within_11_25", "within_22_5", "within_30"),
}

TASK_SCORES: dict[str, str] = {"segmentation": "miou", "depth": "delta1", "normal": "within_22_5"}

# Whether each metric improves upwards or downwards. A metric in a record is
# named "<task>_<metric>" (such as "depth_rmse") and takes the direction of its suffix.
METRIC_DIRECTIONS: dict[str, str] = {
    "miou": "higher",
    "pixel_accuracy": "higher",
    "rmse": "lower",
    "abs_error": "lower",
    "abs_rel": "lower",
    "delta1": "higher",
    "mean_cosine": "higher",
    "mean_angle_error": "lower",
    "median_angle_error": "lower",
    "within_11_25": "higher",
    "within_22_5": "higher",
    "within_30": "higher",
    MEAN_TASK_SCORE: "higher",
}


def task_metric_names(task: str, kind: str) -> list[str]:
    """Return the record names (``<task>_<metric>``) of the metrics of a task of ``kind``."""
    if kind not in TASK_METRICS:
        raise ValueError(f"Unknown dense task kind {kind!r}: expected one of {', '.join(TASK_METRICS)}.")
    return [f"{task}_{metric}" for metric in TASK_METRICS[kind]]


def task_score_name(task: str, kind: str) -> str:
    """Return the record name of the [0, 1] higher-is-better score of a task, such as ``depth_delta1``."""
    if kind not in TASK_SCORES:
        raise ValueError(f"Unknown dense task kind {kind!r}: expected one of {', '.join(TASK_SCORES)}.")
    return f"{task}_{TASK_SCORES[kind]}"


class DenseEvaluator:
    """Per-task dense metrics over a whole evaluation set, with the Evaluator interface of the trainer.

    ``task_kinds`` maps each task to its kind; ``num_classes`` gives the class
    count of every segmentation task. ``update`` takes the model outputs
    (segmentation logits (N, C, h, w), depth (N, 1, h, w) in metres, normals
    (N, 3, h, w)) and the targets (class indices (N, h, w) with
    ``ignore_index`` for void, depth (N, h, w) with 0 = invalid, normals
    (N, 3, h, w) with the zero vector = invalid).
    """

    def __init__(self, task_kinds: Mapping[str, str], num_classes: Mapping[str, int] | None = None, ignore_index: int = 255) -> None:
        # Imported here so that importing this module does not load PyTorch.
        from mtbench.metrics.depth import DepthMetrics
        from mtbench.metrics.normals import NormalMetrics
        from mtbench.metrics.segmentation import SegmentationMetrics

        if not task_kinds:
            raise ValueError("DenseEvaluator needs at least one task.")
        self.task_kinds = dict(task_kinds)
        self.metrics: dict[str, SegmentationMetrics | DepthMetrics | NormalMetrics] = {}
        for task, kind in self.task_kinds.items():
            if kind == "segmentation":
                if num_classes is None or task not in num_classes:
                    raise ValueError(f"DenseEvaluator needs the number of classes of segmentation task {task!r}.")
                self.metrics[task] = SegmentationMetrics(num_classes[task], ignore_index)
            elif kind == "depth":
                self.metrics[task] = DepthMetrics()
            elif kind == "normal":
                self.metrics[task] = NormalMetrics()
            else:
                raise ValueError(f"Unknown dense task kind {kind!r} of task {task!r}: expected one of {', '.join(TASK_METRICS)}.")

    def update(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> None:
        """Add one batch of every task's outputs and targets; raise ValueError for mismatched shapes."""
        for task, kind in self.task_kinds.items():
            output, target = outputs[task], targets[task]
            if kind == "segmentation":
                predicted = output.argmax(dim=1)
            elif kind == "depth":
                if output.ndim != target.ndim + 1 or output.shape[1] != 1:
                    raise ValueError(f"Depth output of task {task!r} must be (N, 1, h, w) for targets {tuple(target.shape)}, got {tuple(output.shape)}.")
                predicted = output[:, 0]
            else:
                predicted = output
            self.metrics[task].update(predicted, target)

    def compute(self) -> dict[str, float]:
        """Return every ``<task>_<metric>``, and ``mean_task_score`` for two or more tasks."""
        scores: dict[str, float] = {}
        for task, metric in self.metrics.items():
            scores.update({f"{task}_{name}": value for name, value in metric.compute().items()})
        if len(self.task_kinds) > 1:
            task_scores = [scores[task_score_name(task, kind)] for task, kind in self.task_kinds.items()]
            scores[MEAN_TASK_SCORE] = sum(task_scores) / len(task_scores)
        return scores

"""Relative improvement of a multi-task model over single-task models, delta_m, in percent.

For metric k with multi-task value M_k and single-task value S_k, the signed
relative change is

    r_k = s_k * (M_k - S_k) / S_k * 100,  s_k = +1 if higher is better, -1 if lower is better,

so r_k > 0 means the multi-task model is better on k.

- ``delta_m_task_averaged``, the leaderboard's delta_m: the mean of r_k over
  the metrics of each task, then the mean over tasks, so a task with many
  metrics (such as surface normals) weighs as much as a task with one.
  Positive means better than single-task models.
- ``delta_m_metric_averaged``: the variant that "Multi-Task Learning as a
  Bargaining Game" (Nash-MTL, Navon et al., 2022) and "FAMO: Fast Adaptive
  Multitask Optimization" (Liu et al., 2023) report, as their public
  evaluation code computes it (``delta_fn`` in AvivNavon/nash-mtl
  experiments/nyuv2/utils.py and Cranial-XIX/FAMO
  experiments/cityscapes/utils.py):
  (1/K) sum_k (-1)^{d_k} (M_k - S_k) / S_k * 100 over all K metrics, with
  d_k = 1 if higher is better and 0 otherwise. That equals minus the mean of
  r_k over metrics, so in that convention negative means better.

Example: single-task mIoU 0.40 (higher is better), absolute error 0.50 and
relative error 0.20 (both lower is better); multi-task 0.44, 0.45 and 0.22.
Then r = +10, +10 and -10. With segmentation = {mIoU} and depth = {absolute,
relative}, the task-averaged delta_m is (10 + 0) / 2 = +5.00 and the
metric-averaged variant is -(10 + 10 - 10) / 3 = -3.33.
"""

from collections.abc import Iterable, Mapping, Sequence

from mtbench.leaderboard.directions import HIGHER, LOWER

DELTA_M_FORMULA = (
    "delta_m = mean over tasks t of (mean over the metrics k of t of s_k (M_k - S_k) / S_k) x 100, "
    "s_k = +1 if higher is better and -1 if lower is better; positive means better than single-task models"
)
DELTA_M_METRIC_AVERAGED_FORMULA = (
    "delta_m (Nash-MTL, FAMO) = (1/K) sum over all K metrics of (-1)^d_k (M_k - S_k) / S_k x 100, "
    "d_k = 1 if higher is better and 0 otherwise; negative means better than single-task models"
)


def signed_relative_change(value: float, baseline: float, direction: str) -> float | None:
    """Return r = s (value - baseline) / baseline * 100, positive when ``value`` is better; None for a zero baseline.

    Raises ValueError for a direction other than "higher" or "lower".
    """
    if direction not in (HIGHER, LOWER):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}.")
    if baseline == 0:
        return None
    sign = 1.0 if direction == HIGHER else -1.0
    return sign * (value - baseline) / baseline * 100.0


def _changes(
    values: Mapping[str, float], baseline: Mapping[str, float], metrics: Iterable[str], directions: Mapping[str, str]
) -> list[float] | None:
    changes = []
    for metric in metrics:
        change = signed_relative_change(values[metric], baseline[metric], directions[metric])
        if change is None:
            return None
        changes.append(change)
    return changes


def delta_m_task_averaged(
    values: Mapping[str, float],
    baseline: Mapping[str, float],
    task_metrics: Mapping[str, Sequence[str]],
    directions: Mapping[str, str],
) -> float | None:
    """Return delta_m in percent: r_k averaged within each task, then over tasks; positive means better.

    ``task_metrics`` maps each task to its metric names, which must be keys of
    ``values``, ``baseline`` and ``directions``. Returns None when a baseline
    value is zero, because the relative change is then undefined. Raises
    ValueError when ``task_metrics`` is empty or a task has no metric.
    """
    if not task_metrics or any(not metrics for metrics in task_metrics.values()):
        raise ValueError(f"delta_m needs at least one metric for every task, got {dict(task_metrics)!r}.")
    task_means = []
    for metrics in task_metrics.values():
        changes = _changes(values, baseline, metrics, directions)
        if changes is None:
            return None
        task_means.append(sum(changes) / len(changes))
    return sum(task_means) / len(task_means)


def delta_m_metric_averaged(
    values: Mapping[str, float], baseline: Mapping[str, float], metrics: Sequence[str], directions: Mapping[str, str]
) -> float | None:
    """Return the Nash-MTL and FAMO delta_m in percent: minus the mean of r_k over all metrics; negative means better.

    Returns None when a baseline value is zero. Raises ValueError for an empty ``metrics``.
    """
    if not metrics:
        raise ValueError("delta_m needs at least one metric.")
    changes = _changes(values, baseline, metrics, directions)
    if changes is None:
        return None
    return -sum(changes) / len(changes)


def group_metrics_by_task(metrics: Iterable[str], tasks: Sequence[str]) -> dict[str, list[str]]:
    """Return, for each task with a metric, its metrics: the names "<task>_<metric>", in ``tasks`` order.

    A name matching several tasks goes to the longest task name. Metrics of no
    task, such as "harmonic_accuracy", are left out.
    """
    groups: dict[str, list[str]] = {}
    for metric in sorted(metrics):
        owners = [task for task in tasks if metric.startswith(f"{task}_")]
        if owners:
            groups.setdefault(max(owners, key=len), []).append(metric)
    return {task: groups[task] for task in tasks if task in groups}

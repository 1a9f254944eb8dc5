"""Direction of every metric: whether a higher or a lower value is better.

Ranks, the selection on validation and the relative improvement over
single-task models (delta_m) all depend on it. A metric named
"<task>_<metric>", such as "left_accuracy" or "depth_rmse", takes the
direction of "<metric>".

The table below covers the classification metrics and the usual names of
dense-prediction metrics. When ``mtbench.metrics.dense`` exists, its
``METRIC_DIRECTIONS`` is merged over this table, so the module that computes
a metric also decides its direction. To add a metric elsewhere, add its name
to ``METRIC_DIRECTIONS`` here.
"""

import functools
import importlib

from mtbench.errors import MtbenchError

HIGHER = "higher"
LOWER = "lower"

METRIC_DIRECTIONS: dict[str, str] = {
    # Classification.
    "accuracy": HIGHER,
    "harmonic_accuracy": HIGHER,
    "loss": LOWER,
    # Semantic segmentation.
    "miou": HIGHER,
    "pixel_accuracy": HIGHER,
    # Depth: errors in metres or relative to the true depth.
    "abs_err": LOWER,
    "rel_err": LOWER,
    "absolute_error": LOWER,
    "relative_error": LOWER,
    "abs_rel": LOWER,
    "rmse": LOWER,
    # Surface normals: angle errors in degrees, and the share of pixels within a threshold.
    "mean_angle_error": LOWER,
    "median_angle_error": LOWER,
    "angle_mean": LOWER,
    "angle_median": LOWER,
    "within_11_25": HIGHER,
    "within_22_5": HIGHER,
    "within_30": HIGHER,
}

DENSE_METRICS_MODULE = "mtbench.metrics.dense"


@functools.lru_cache(maxsize=1)
def metric_directions() -> dict[str, str]:
    """Return the direction table: METRIC_DIRECTIONS updated with the dense metrics module's table, keys in lower case.

    Raises MtbenchError when the dense metrics module maps a metric to anything
    other than "higher" or "lower".
    """
    directions = {name.lower(): direction for name, direction in METRIC_DIRECTIONS.items()}
    try:
        dense = importlib.import_module(DENSE_METRICS_MODULE)
    except ModuleNotFoundError as error:
        if error.name != DENSE_METRICS_MODULE:
            raise
        return directions

    for name, direction in getattr(dense, "METRIC_DIRECTIONS", {}).items():
        if direction not in (HIGHER, LOWER):
            raise MtbenchError(
                f"{DENSE_METRICS_MODULE}.METRIC_DIRECTIONS maps '{name}' to {direction!r}; use \"higher\" or \"lower\"."
            )
        directions[name.lower()] = direction
    return directions


def known_direction(name: str) -> str | None:
    """Return "higher" or "lower" for metric ``name``, or None when no entry matches.

    An exact entry wins; otherwise the longest entry that ``name`` ends with
    after an underscore, so "depth_abs_rel" matches "abs_rel" and not "rel".
    """
    directions = metric_directions()
    lowered = name.lower()
    if lowered in directions:
        return directions[lowered]
    suffixes = [known for known in directions if lowered.endswith(f"_{known}")]
    if not suffixes:
        return None
    return directions[max(suffixes, key=len)]


def metric_direction(name: str) -> str:
    """Return "higher" or "lower": the direction in which metric ``name`` improves.

    Raises MtbenchError for a metric that matches no entry, naming where to add it.
    """
    direction = known_direction(name)
    if direction is None:
        known = ", ".join(sorted(metric_directions()))
        raise MtbenchError(
            f"Unknown metric '{name}': its direction is not known. Known metrics: {known}. "
            f"Add it to METRIC_DIRECTIONS in {DENSE_METRICS_MODULE} or mtbench/leaderboard/directions.py."
        )
    return direction

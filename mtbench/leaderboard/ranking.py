"""Ranks of leaderboard rows on one metric, and the mean rank over several metrics.

Ranks follow standard competition ranking ("1224"): tied values share the
best rank of their group, and the next value skips the places they took.
Values count as tied when they agree to a relative tolerance of 1e-9, so
means computed in a different order still tie.
"""

import math
from collections.abc import Mapping, Sequence

from mtbench.leaderboard.directions import HIGHER, LOWER

RELATIVE_TOLERANCE = 1e-9


def competition_ranks(values: Mapping[str, float | None], direction: str) -> dict[str, int]:
    """Return the rank (1 = best) of each key whose value is not None.

    ``direction`` is "higher" or "lower". Example: {"a": 0.9, "b": 0.8, "c":
    0.9, "d": 0.7} with "higher" gives {"a": 1, "c": 1, "b": 3, "d": 4}.
    Raises ValueError for another direction.
    """
    if direction not in (HIGHER, LOWER):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}.")
    present = sorted(
        ((key, value) for key, value in values.items() if value is not None),
        key=lambda item: (-item[1] if direction == HIGHER else item[1], item[0]),
    )

    ranks: dict[str, int] = {}
    group_value: float | None = None
    group_rank = 0
    for position, (key, value) in enumerate(present, start=1):
        if group_value is None or not math.isclose(value, group_value, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12):
            group_value = value
            group_rank = position
        ranks[key] = group_rank
    return ranks


def mean_ranks(ranks_by_metric: Mapping[str, Mapping[str, int]], keys: Sequence[str]) -> dict[str, float | None]:
    """Return each key's mean rank over the metrics of ``ranks_by_metric``; None for a key unranked on some metric.

    A key missing from one metric's ranks has no mean rank, because a mean over
    fewer metrics would not compare with the others.
    """
    means: dict[str, float | None] = {}
    for key in keys:
        ranks = [metric_ranks.get(key) for metric_ranks in ranks_by_metric.values()]
        if not ranks or any(rank is None for rank in ranks):
            means[key] = None
        else:
            means[key] = sum(ranks) / len(ranks)
    return means

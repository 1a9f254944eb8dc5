"""Summaries of one quantity over seeds: mean, sample standard deviation and a 95% confidence interval."""

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

CONFIDENCE_LEVEL = 0.95


def t_quantile(probability: float, degrees_of_freedom: int) -> float:
    """Return the ``probability`` quantile of Student's t distribution with ``degrees_of_freedom`` (>= 1)."""
    # Imported here because SciPy is slow to import, and `mtbench run` imports this package only to append records.
    from scipy.special import stdtrit

    return float(stdtrit(degrees_of_freedom, probability))


def confidence_half_width(std: float, count: int, level: float = CONFIDENCE_LEVEL) -> float:
    """Return the half-width of the two-sided Student t confidence interval of a mean over ``count`` >= 2 values.

    It is t_{(1 + level) / 2, count - 1} * std / sqrt(count), with ``std`` the
    sample standard deviation. For 3 values with std 0.1 and level 0.95 it is
    4.3027 * 0.1 / sqrt(3) = 0.2484.
    """
    return t_quantile((1.0 + level) / 2.0, count - 1) * std / math.sqrt(count)


@dataclass(frozen=True)
class Statistic:
    """Mean, sample standard deviation (ddof=1) and 95% confidence half-width of one quantity over ``count`` seeds.

    ``mean`` is None when no seed has the quantity. ``std`` and ``ci95`` are
    None for fewer than two seeds. The interval is mean +- ci95, from Student's
    t distribution with count - 1 degrees of freedom.
    """

    mean: float | None
    std: float | None
    count: int
    ci95: float | None = None


def summarize(values: Iterable[float | None]) -> Statistic:
    """Return the statistics of the values that are not None."""
    present = [float(value) for value in values if value is not None]
    if not present:
        return Statistic(None, None, 0)
    if len(present) == 1:
        return Statistic(present[0], None, 1)
    std = statistics.stdev(present)
    return Statistic(statistics.fmean(present), std, len(present), confidence_half_width(std, len(present)))

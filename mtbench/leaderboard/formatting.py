"""Display units and text of leaderboard numbers, shared by the markdown page and the CSV and JSON exports.

Accuracies are shown in percent, every other metric in its record unit.
"""

from mtbench.leaderboard.seed_statistics import Statistic

PERCENT_DECIMALS = 2
PLAIN_DECIMALS = 3
DELTA_M_DECIMALS = 2
STEP_COST_DECIMALS = 2


def is_percent(metric: str) -> bool:
    """Return whether ``metric`` is an accuracy, which records store as a fraction and tables show in percent."""
    return metric == "accuracy" or metric.endswith("_accuracy")


def display_scale(metric: str) -> float:
    """Return the factor from record units to display units: 100 for accuracies, else 1."""
    return 100.0 if is_percent(metric) else 1.0


def metric_header(metric: str) -> str:
    """Return a column header after "Test" or "Validation", e.g. "harmonic acc. (%)" for harmonic_accuracy."""
    if is_percent(metric):
        name = metric.removesuffix("accuracy").rstrip("_").replace("_", " ")
        return f"{name} acc. (%)" if name else "acc. (%)"
    return metric


def format_statistic(statistic: Statistic | None, scale: float = 1.0, decimals: int = PERCENT_DECIMALS, signed: bool = False) -> str:
    """Return "mean (std)" with ``decimals`` decimals after multiplying by ``scale``; "-" for a missing value or std.

    ``signed`` prefixes a positive mean with "+".
    """
    if statistic is None or statistic.mean is None:
        return "-"
    std = "-" if statistic.std is None else f"{statistic.std * scale:.{decimals}f}"
    sign = "+" if signed else ""
    mean = statistic.mean * scale
    # A mean that rounds to zero prints without a minus sign, so -1e-17 and 1e-17 look alike.
    mean = 0.0 if round(mean, decimals) == 0 else mean
    return f"{mean:{sign}.{decimals}f} ({std})"


def format_metric(statistics: dict[str, Statistic], metric: str) -> str:
    """Return the formatted mean (std) of ``metric``, in percent for accuracies."""
    statistic = statistics.get(metric)
    if is_percent(metric):
        return format_statistic(statistic, scale=100.0, decimals=PERCENT_DECIMALS)
    return format_statistic(statistic, decimals=PLAIN_DECIMALS)


def format_half_width(statistic: Statistic | None, metric: str) -> str:
    """Return "±h" for the 95% confidence half-width of ``metric`` in display units, "-" without one."""
    if statistic is None or statistic.ci95 is None:
        return "-"
    decimals = PERCENT_DECIMALS if is_percent(metric) else PLAIN_DECIMALS
    return f"±{statistic.ci95 * display_scale(metric):.{decimals}f}"


def format_delta_m(statistic: Statistic) -> str:
    """Return delta_m as "+5.00 (0.31)", in percent, "-" when it is missing."""
    return format_statistic(statistic, decimals=DELTA_M_DECIMALS, signed=True)


def format_rank(rank: float | None) -> str:
    """Return an integer rank as "2" and a mean rank as "2.33"; "-" when missing."""
    if rank is None:
        return "-"
    return str(rank) if isinstance(rank, int) else f"{rank:.2f}"


def format_seconds(statistic: Statistic) -> str:
    """Return the mean with three significant digits, "-" when missing."""
    return "-" if statistic.mean is None else f"{statistic.mean:.3g}"


def format_megabytes(statistic: Statistic) -> str:
    """Return the mean in whole mebibytes, "-" when missing."""
    return "-" if statistic.mean is None else f"{statistic.mean:.0f}"


def format_step_cost(value: float | None) -> str:
    """Return a benchmark-measured step time ratio or GFLOP count with two decimals, "-" when missing."""
    return "-" if value is None else f"{value:.{STEP_COST_DECIMALS}f}"


def round_significant(value: float | None, digits: int = 8) -> float | None:
    """Return ``value`` rounded to ``digits`` significant digits, so exports do not change with last-bit differences."""
    if value is None:
        return None
    return float(f"{value:.{digits}g}")

"""Comparison of the leaderboard rows: delta_m against the single-task baseline, and ranks.

The baseline is the selected row of single-task models (method "single")
without batch normalisation or dropout, or, when there is none, the first
selected single-task row in display order. Its runs share the table's
protocol. delta_m is computed seed by seed, pairing each seed of a row with
the single-task models of the same seed, and then summarised over seeds. A
row with a seed that the baseline lacks gets no delta_m; the comparison lists
the missing single-task runs instead.

delta_m uses the test metrics of the baseline that belong to a task (named
"<task>_<metric>") and have a known direction. Combined metrics such as
"harmonic_accuracy" are left out. The mean rank likewise averages the ranks
over the ranked metrics that belong to a task.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from mtbench.leaderboard.aggregate import Leaderboard, Row, Variant, is_single_task_run, single_task_setting
from mtbench.leaderboard.delta_m import delta_m_metric_averaged, delta_m_task_averaged, group_metrics_by_task
from mtbench.leaderboard.directions import known_direction
from mtbench.leaderboard.ranking import competition_ranks, mean_ranks
from mtbench.leaderboard.seed_statistics import Statistic, summarize

EMPTY = Statistic(None, None, 0)


@dataclass(frozen=True)
class RowComparison:
    """delta_m of one row in percent (task-averaged, positive is better; metric-averaged, negative is better) and its ranks."""

    delta_m: Statistic = EMPTY
    delta_m_metric_averaged: Statistic = EMPTY
    ranks: dict[str, int] = field(default_factory=dict)
    mean_rank: float | None = None


@dataclass
class Comparison:
    """The comparison of one leaderboard.

    ``task_metrics`` maps each task to the metrics delta_m averages.
    ``ranked_metrics`` are the test metrics with ranks, and ``rows`` maps a
    row's config_id to its comparison. ``missing_baseline_runs`` maps a task
    to the seeds without a finished single-task run. ``unknown_directions``
    lists test metrics that can be neither ranked nor used in delta_m.
    """

    baseline: Row | None
    task_metrics: dict[str, list[str]]
    ranked_metrics: list[str]
    rows: dict[str, RowComparison]
    missing_baseline_runs: dict[str, list[int]]
    unknown_directions: list[str]
    notes: list[str] = field(default_factory=list)

    def of(self, row: Row) -> RowComparison:
        """Return the comparison of ``row``, empty when it has none."""
        return self.rows.get(row.config_id, RowComparison())


def single_task_baseline(leaderboard: Leaderboard) -> Row | None:
    """Return the baseline row: the selected plain single-task row, else the first selected single-task row."""
    singles = [row for row in leaderboard.selected_rows if row.method == "single"]
    plain = [row for row in singles if row.variant == Variant("single", False, False)]
    return (plain or singles or [None])[0]


def _baseline_records(records: list[dict], baseline: Row | None) -> list[dict]:
    """Return the finished single-task records of the baseline's setting (of the plain setting with most runs without one)."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        if record["status"] == "finished" and is_single_task_run(record):
            groups.setdefault(single_task_setting(record), []).append(record)
    if baseline is not None:
        baseline_runs = set(baseline.run_ids)
        return next((group for group in groups.values() if any(record["run_id"] in baseline_runs for record in group)), [])
    if not groups:
        return []

    def preference(group: list[dict]) -> tuple:
        model_config = group[0]["model_config"]
        plain = not model_config.get("batchnorm") and not float(model_config.get("dropout") or 0.0)
        return (not plain, -len(group), single_task_setting(group[0]))

    return min(groups.values(), key=preference)


def _missing_runs(leaderboard: Leaderboard, baseline_records: list[dict], needed_seeds: set[int]) -> dict[str, list[int]]:
    present = {(record["tasks"][0], record["seed"]) for record in baseline_records}
    missing = {}
    for task in leaderboard.tasks:
        seeds = sorted(seed for seed in needed_seeds if (task, seed) not in present)
        if seeds:
            missing[task] = seeds
    return missing


def _row_delta_m(row: Row, baseline: Row, task_metrics: dict[str, list[str]], directions: dict[str, str]) -> tuple[Statistic, Statistic]:
    metrics = [metric for names in task_metrics.values() for metric in names]
    task_averaged: list[float | None] = []
    metric_averaged: list[float | None] = []
    for seed in row.seeds:
        values = row.per_seed_test.get(seed, {})
        reference = baseline.per_seed_test.get(seed)
        if reference is None or any(metric not in values or metric not in reference for metric in metrics):
            return EMPTY, EMPTY
        task_averaged.append(delta_m_task_averaged(values, reference, task_metrics, directions))
        metric_averaged.append(delta_m_metric_averaged(values, reference, metrics, directions))
    if any(value is None for value in task_averaged + metric_averaged):
        return EMPTY, EMPTY
    return summarize(task_averaged), summarize(metric_averaged)


def _ranked_metrics(leaderboard: Leaderboard) -> list[str]:
    """Return the selection metric, then every other test metric of the selected rows, ordered by task."""
    names = {name for row in leaderboard.selected_rows for name in row.test}
    tasks = leaderboard.tasks

    def order(name: str) -> tuple:
        task_index = next((index for index, task in enumerate(tasks) if name.startswith(f"{task}_")), len(tasks))
        return (name != leaderboard.selection_metric, task_index, name)

    return sorted(names, key=order)


def _unknown_directions(names: Iterable[str]) -> list[str]:
    return sorted(name for name in set(names) if known_direction(name) is None)


def compare(leaderboard: Leaderboard, records: list[dict]) -> Comparison:
    """Compute delta_m for every multi-task row and the ranks of the selected rows of ``leaderboard``.

    ``records`` are the records the leaderboard was built from; they tell
    which single-task runs are missing.
    """
    baseline = single_task_baseline(leaderboard)
    multi_task_rows = [row for row in leaderboard.rows if row.method != "single"]
    needed_seeds = {seed for row in multi_task_rows for seed in row.seeds}
    missing = _missing_runs(leaderboard, _baseline_records(records, baseline), needed_seeds)

    all_test_metrics = {name for row in leaderboard.rows for name in row.test}
    unknown = _unknown_directions(all_test_metrics)
    baseline_metrics = {name for metrics in (baseline.per_seed_test.values() if baseline else []) for name in metrics}
    directed = [name for name in baseline_metrics if name not in unknown]
    task_metrics = group_metrics_by_task(directed, leaderboard.tasks)
    directions = {name: known_direction(name) for names in task_metrics.values() for name in names}

    comparisons: dict[str, RowComparison] = {}
    for row in leaderboard.rows:
        if baseline is not None and task_metrics and set(row.seeds) <= set(baseline.seeds):
            comparisons[row.config_id] = RowComparison(*_row_delta_m(row, baseline, task_metrics, directions))

    ranked = [name for name in _ranked_metrics(leaderboard) if name not in unknown]
    selected = leaderboard.selected_rows
    ranks = {
        metric: competition_ranks({row.config_id: row.test[metric].mean if metric in row.test else None for row in selected}, known_direction(metric))
        for metric in ranked
    }
    ranked_task_metrics = {name for names in group_metrics_by_task(ranked, leaderboard.tasks).values() for name in names}
    rank_basis = {metric: metric_ranks for metric, metric_ranks in ranks.items() if metric in ranked_task_metrics}
    means = mean_ranks(rank_basis, [row.config_id for row in selected]) if rank_basis else {}
    for row in selected:
        previous = comparisons.get(row.config_id, RowComparison())
        row_ranks = {metric: metric_ranks[row.config_id] for metric, metric_ranks in ranks.items() if row.config_id in metric_ranks}
        comparisons[row.config_id] = RowComparison(previous.delta_m, previous.delta_m_metric_averaged, row_ranks, means.get(row.config_id))

    notes = _notes(baseline, missing, unknown) if multi_task_rows else []
    return Comparison(baseline, task_metrics, ranked, comparisons, missing, unknown, notes)


def _notes(baseline: Row | None, missing: dict[str, list[int]], unknown: list[str]) -> list[str]:
    notes = []
    if baseline is None:
        notes.append("No single-task row, so delta_m is not shown. Run the single-task models (`--method single`) with the same seeds.")
    elif missing:
        listing = "; ".join(f"task {task}: seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}" for task, seeds in missing.items())
        notes.append(f"delta_m is \"-\" for rows with seeds that lack single-task runs ({listing}).")
    if unknown:
        notes.append(f"Metrics without a known direction are neither ranked nor used in delta_m: {', '.join(unknown)}.")
    return notes

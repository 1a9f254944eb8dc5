"""Everything the generated files of one benchmark show, computed once from its records."""

from dataclasses import dataclass
from pathlib import Path

from mtbench.benchmarks.definition import BenchmarkDefinition
from mtbench.errors import MtbenchError
from mtbench.leaderboard.aggregate import COSINE_STATISTICS, Leaderboard, aggregate
from mtbench.leaderboard.benchmark_metrics import find_definition, recorded_metric_names
from mtbench.leaderboard.comparison import Comparison, compare
from mtbench.leaderboard.figures import Figure, FigureData
from mtbench.leaderboard.published import PublishedTable, read_published
from mtbench.leaderboard.records import mixed_values_problem, read_records
from mtbench.leaderboard.step_costs import StepCosts, read_step_costs


@dataclass
class BenchmarkReport:
    """The leaderboard of one benchmark with its published rows, comparison, figures and benchmark-measured step costs."""

    benchmark: str
    leaderboard_dir: Path
    records: list[dict]
    leaderboard: Leaderboard
    published: PublishedTable | None
    comparison: Comparison
    figure_data: FigureData
    step_costs: StepCosts | None = None

    @property
    def figures(self) -> list[Figure]:
        """Return the figures that have data."""
        return self.figure_data.figures()


def _has_multi_task_runs(records: list[dict]) -> bool:
    return any(record["status"] == "finished" and len(record["tasks"]) > 1 for record in records)


def _check_published(published: PublishedTable, leaderboard: Leaderboard, definition: BenchmarkDefinition | None) -> None:
    """Raise MtbenchError when ``published`` names another main metric than the table's, or a metric the benchmark's runs never record."""
    benchmark = leaderboard.benchmark
    if published.metric is not None and published.metric != leaderboard.selection_metric:
        raise MtbenchError(
            f"{published.path} reports '{published.metric}', but the {benchmark} table ranks by '{leaderboard.selection_metric}'. "
            f"Set metric = \"{leaderboard.selection_metric}\" and store the published values under that name."
        )
    if definition is None:
        return
    known = recorded_metric_names(definition) | set(COSINE_STATISTICS)
    for column in published.columns:
        if column.metric is not None and column.metric not in known:
            raise MtbenchError(
                f"{published.path}: column '{column.key}' compares with metric '{column.metric}', which runs of {benchmark} do not record. "
                f"Use one of {', '.join(sorted(known))}, or leave 'metric' out when the printed column matches none."
            )


def build_report(leaderboard_dir: str | Path, benchmark: str) -> BenchmarkReport:
    """Read the records and published rows of ``benchmark`` and compute its leaderboard.

    Without finished multi-task records the selection metric, and without any
    finished record the tasks, come from the benchmark definition when the
    repository has one. Invalid lines of the results file are skipped with a
    RecordWarning. Raises MtbenchError when finished records of several
    protocols share the results file. Also raises it when the published file
    is invalid, reports another main metric than the one the table ranks by,
    or maps a column to a metric that the benchmark's runs do not record, and
    when the step-cost file exists but is invalid.
    """
    leaderboard_dir = Path(leaderboard_dir)
    records = read_records(leaderboard_dir, benchmark)
    mixed = mixed_values_problem([record for record in records if record["status"] == "finished"], "protocol", benchmark)
    if mixed:
        # One table compares one protocol; writing it over several would mislead its readers.
        raise MtbenchError(mixed)
    definition = find_definition(benchmark)
    # None lets the multi-task records decide.
    selection_metric = definition.selection_metric if definition is not None and not _has_multi_task_runs(records) else None
    leaderboard = aggregate(records, benchmark, selection_metric)
    if not leaderboard.tasks and definition is not None:
        leaderboard.tasks = definition.task_names

    published = read_published(leaderboard_dir, benchmark)
    if published is not None:
        _check_published(published, leaderboard, definition)
    return BenchmarkReport(
        benchmark=benchmark,
        leaderboard_dir=leaderboard_dir,
        records=records,
        leaderboard=leaderboard,
        published=published,
        comparison=compare(leaderboard, records),
        figure_data=FigureData(leaderboard, records, leaderboard_dir),
        step_costs=read_step_costs(leaderboard_dir, benchmark),
    )

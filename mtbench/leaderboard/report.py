"""Everything the generated files of one benchmark show, computed once from its records."""

from dataclasses import dataclass
from pathlib import Path

from mtbench.errors import MtbenchError
from mtbench.leaderboard.aggregate import Leaderboard, aggregate
from mtbench.leaderboard.comparison import Comparison, compare
from mtbench.leaderboard.figures import Figure, FigureData
from mtbench.leaderboard.published import PublishedTable, read_published
from mtbench.leaderboard.records import read_records


@dataclass
class BenchmarkReport:
    """The leaderboard of one benchmark with its published rows, comparison and figures."""

    benchmark: str
    leaderboard_dir: Path
    records: list[dict]
    leaderboard: Leaderboard
    published: PublishedTable | None
    comparison: Comparison
    figure_data: FigureData

    @property
    def figures(self) -> list[Figure]:
        """Return the figures that have data."""
        return self.figure_data.figures()


def build_report(leaderboard_dir: str | Path, benchmark: str) -> BenchmarkReport:
    """Read the records and published rows of ``benchmark`` and compute its leaderboard.

    Invalid lines of the results file are skipped with a RecordWarning.
    Raises MtbenchError when the published file is invalid or reports another
    metric than the one the table ranks by.
    """
    leaderboard_dir = Path(leaderboard_dir)
    records = read_records(leaderboard_dir, benchmark)
    leaderboard = aggregate(records, benchmark)
    published = read_published(leaderboard_dir, benchmark)
    if published is not None and published.metric != leaderboard.selection_metric:
        raise MtbenchError(
            f"{published.path} reports '{published.metric}', but the {benchmark} table ranks by '{leaderboard.selection_metric}'. "
            f"Set metric = \"{leaderboard.selection_metric}\" and store the published values under that name."
        )
    return BenchmarkReport(
        benchmark=benchmark,
        leaderboard_dir=leaderboard_dir,
        records=records,
        leaderboard=leaderboard,
        published=published,
        comparison=compare(leaderboard, records),
        figure_data=FigureData(leaderboard, records, leaderboard_dir),
    )

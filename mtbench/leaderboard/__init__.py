"""Leaderboard: run records, their aggregation over seeds, and the generated markdown tables.

Layout of a leaderboard folder::

    results/<benchmark>.jsonl     one JSON record per run (written by the trainer)
    published/<benchmark>.toml    published rows to show beside the measured ones
    <benchmark>.md                generated table of one benchmark
    README.md                     generated index of the benchmarks
"""

from pathlib import Path

from mtbench.errors import MtbenchError
from mtbench.io import atomic_write_text
from mtbench.leaderboard.aggregate import aggregate
from mtbench.leaderboard.markdown import render_benchmark, render_index
from mtbench.leaderboard.published import known_published_benchmarks, read_published
from mtbench.leaderboard.records import RecordWarning, append_record, check_records, known_result_benchmarks, read_records

__all__ = ["RecordWarning", "append_record", "check_records", "known_benchmarks", "read_records", "regenerate"]


def known_benchmarks(leaderboard_dir: str | Path) -> list[str]:
    """Return the sorted names of the benchmarks with a results file or a published file."""
    return sorted(set(known_result_benchmarks(leaderboard_dir)) | set(known_published_benchmarks(leaderboard_dir)))


def _write_index(leaderboard_dir: Path) -> None:
    benchmarks = known_benchmarks(leaderboard_dir)
    generated = {benchmark for benchmark in benchmarks if (leaderboard_dir / f"{benchmark}.md").is_file()}
    atomic_write_text(leaderboard_dir / "README.md", render_index(benchmarks, generated))


def regenerate(leaderboard_dir: str | Path, benchmark: str) -> str:
    """Write ``<leaderboard_dir>/<benchmark>.md`` and the index ``README.md``; return the benchmark's markdown.

    Invalid lines of the results file are skipped with a RecordWarning. Raises
    MtbenchError when ``benchmark`` has neither a results file nor a published
    file, listing the known benchmarks, and when the published file is invalid
    or reports another metric than the one the table ranks by.
    """
    leaderboard_dir = Path(leaderboard_dir)
    known = known_benchmarks(leaderboard_dir)
    if benchmark not in known:
        listing = ", ".join(known) if known else "none"
        raise MtbenchError(
            f"Unknown benchmark '{benchmark}': {leaderboard_dir} has no results/{benchmark}.jsonl and no published/{benchmark}.toml. "
            f"Known benchmarks: {listing}."
        )

    records = read_records(leaderboard_dir, benchmark)
    leaderboard = aggregate(records, benchmark)
    published = read_published(leaderboard_dir, benchmark)
    if published is not None and published.metric != leaderboard.selection_metric:
        raise MtbenchError(
            f"{published.path} reports '{published.metric}', but the {benchmark} table ranks by '{leaderboard.selection_metric}'. "
            f"Set metric = \"{leaderboard.selection_metric}\" and store the published values under that name."
        )
    text = render_benchmark(leaderboard, published, records)

    atomic_write_text(leaderboard_dir / f"{benchmark}.md", text)
    _write_index(leaderboard_dir)
    return text

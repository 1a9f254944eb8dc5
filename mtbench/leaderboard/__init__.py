"""Leaderboard: run records, their aggregation over seeds, and the generated tables and figures.

Layout of a leaderboard folder::

    results/<benchmark>.jsonl     one JSON record per run (written by the trainer)
    results/<benchmark>/cosines/  per-step gradient cosines of each run (.npy)
    published/<benchmark>.toml    published rows to show beside the measured ones
    step_costs/<benchmark>.json   benchmark-measured step costs of the configurations (optional)
    <benchmark>.md                generated table of one benchmark
    <benchmark>.csv, .json        the same rows as data
    figures/<benchmark>_*.png     generated figures linked from the markdown
    README.md                     generated index of the benchmarks

docs/leaderboard.md describes the aggregation, delta_m, ranks and checks.
"""

from pathlib import Path

from mtbench.errors import MtbenchError
from mtbench.leaderboard.checks import check_leaderboard
from mtbench.leaderboard.outputs import known_benchmarks, write_outputs
from mtbench.leaderboard.records import RecordWarning, append_record, check_records, finished_runs, read_records
from mtbench.leaderboard.report import build_report

__all__ = [
    "RecordWarning",
    "append_record",
    "check_leaderboard",
    "check_records",
    "finished_runs",
    "known_benchmarks",
    "read_records",
    "regenerate",
]


def regenerate(leaderboard_dir: str | Path, benchmark: str) -> str:
    """Write the markdown, CSV, JSON and figures of ``benchmark`` and the index ``README.md``; return the markdown.

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

    write_outputs(build_report(leaderboard_dir, benchmark))
    return (leaderboard_dir / f"{benchmark}.md").read_text(encoding="utf-8")

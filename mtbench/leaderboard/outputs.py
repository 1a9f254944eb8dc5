"""The generated files of a leaderboard folder and how they are written.

Per benchmark: ``<benchmark>.md``, ``<benchmark>.csv``, ``<benchmark>.json``
and ``figures/<benchmark>_*.png``; for the folder: the index ``README.md``.
Every file is written atomically.
"""

from pathlib import Path

from mtbench.io import atomic_write_bytes, atomic_write_text
from mtbench.leaderboard.export import render_csv, render_json
from mtbench.leaderboard.figures import FIGURE_NAMES, figure_file_name
from mtbench.leaderboard.markdown import render_benchmark, render_index
from mtbench.leaderboard.published import known_published_benchmarks
from mtbench.leaderboard.records import known_result_benchmarks
from mtbench.leaderboard.report import BenchmarkReport

FIGURES_FOLDER = "figures"


def known_benchmarks(leaderboard_dir: str | Path) -> list[str]:
    """Return the sorted names of the benchmarks with a results file or a published file."""
    return sorted(set(known_result_benchmarks(leaderboard_dir)) | set(known_published_benchmarks(leaderboard_dir)))


def render_text_outputs(report: BenchmarkReport) -> dict[str, str]:
    """Return the text files of one benchmark: file name in the leaderboard folder -> content."""
    benchmark = report.benchmark
    return {
        f"{benchmark}.md": render_benchmark(report),
        f"{benchmark}.csv": render_csv(report),
        f"{benchmark}.json": render_json(report),
    }


def render_index_for(leaderboard_dir: str | Path) -> str:
    """Return the index of ``leaderboard_dir``, linking the benchmarks whose markdown file exists."""
    folder = Path(leaderboard_dir)
    benchmarks = known_benchmarks(folder)
    generated = {benchmark for benchmark in benchmarks if (folder / f"{benchmark}.md").is_file()}
    return render_index(benchmarks, generated)


def write_outputs(report: BenchmarkReport) -> list[Path]:
    """Write the text files and figures of ``report``, then the index; return the written paths.

    Figures of the benchmark that no longer have data are deleted, so no stale
    image stays linked or committed.
    """
    folder = report.leaderboard_dir
    written = []
    for name, text in render_text_outputs(report).items():
        atomic_write_text(folder / name, text)
        written.append(folder / name)

    figures_folder = folder / FIGURES_FOLDER
    current = set()
    for figure in report.figures:
        path = figures_folder / figure.file_name
        atomic_write_bytes(path, report.figure_data.render(figure))
        current.add(path.name)
        written.append(path)
    for name in FIGURE_NAMES:
        path = figures_folder / figure_file_name(report.benchmark, name)
        if path.name not in current and path.is_file():
            path.unlink()

    atomic_write_text(folder / "README.md", render_index_for(folder))
    written.append(folder / "README.md")
    return written

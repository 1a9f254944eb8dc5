"""``mtbench leaderboard``: regenerate the markdown tables from the result records."""

import argparse
import sys
import warnings
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown

from mtbench.errors import MtbenchError
from mtbench.paths import project_root


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "leaderboard",
        help="regenerate leaderboard tables from result records",
        description="Regenerate leaderboard/<benchmark>.md from leaderboard/results/<benchmark>.jsonl and print it.",
    )
    parser.add_argument("--benchmark", action="append", default=None, help="benchmark to regenerate (repeatable; default: every benchmark with records)")
    parser.add_argument("--leaderboard-dir", type=Path, default=None, help="leaderboard folder (default: leaderboard/ in the repository)")
    parser.add_argument("--check", action="store_true", help="validate every record and exit with status 1 on a problem")
    parser.add_argument("--render", action="store_true", help="render the tables in the terminal instead of printing the markdown source")
    parser.set_defaults(handler=run)


def _published_problems(folder: Path, benchmark: str) -> list[str]:
    from mtbench.leaderboard.published import read_published

    try:
        read_published(folder, benchmark)
    except MtbenchError as error:
        return [str(error)]
    return []


def run(arguments: argparse.Namespace) -> int:
    from mtbench import leaderboard

    folder = arguments.leaderboard_dir or project_root() / "leaderboard"
    if not folder.is_dir():
        raise MtbenchError(f"Leaderboard folder {folder} not found. Pass the folder that contains results/ with --leaderboard-dir.")
    benchmarks = arguments.benchmark or leaderboard.known_benchmarks(folder)
    console = Console()
    if not benchmarks:
        raise MtbenchError(f"No result records or published rows in {folder}. Run `mtbench run` first or pass --leaderboard-dir.")

    if arguments.check:
        problems = []
        for name in benchmarks:
            problems += leaderboard.check_records(folder, name)
            problems += _published_problems(folder, name)
        for problem in problems:
            print(problem, file=sys.stderr)
        console.print(f"{len(problems)} problem(s) in {len(benchmarks)} benchmark(s).")
        return 1 if problems else 0

    for name in benchmarks:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", leaderboard.RecordWarning)
            text = leaderboard.regenerate(folder, name)
        for warning in caught:
            print(f"mtbench: warning: {warning.message}", file=sys.stderr)
        if arguments.render:
            console.print(Markdown(text))
        else:
            print(text)
        console.print(f"Wrote {folder / (name + '.md')}")
    return 0

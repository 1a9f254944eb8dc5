"""``mtbench leaderboard``: regenerate the tables, exports and figures from the result records, or check them."""

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
        help="regenerate leaderboard tables and figures from result records, or check them",
        description=(
            "Regenerate leaderboard/<benchmark>.md, .csv, .json, the figures under leaderboard/figures/ and the index "
            "leaderboard/README.md from leaderboard/results/<benchmark>.jsonl, and print the markdown. With --check, "
            "change nothing and list every problem of the records and generated files instead."
        ),
    )
    parser.add_argument("--benchmark", action="append", default=None, help="benchmark to regenerate (repeatable; default: every benchmark with records or published rows)")
    parser.add_argument("--leaderboard-dir", type=Path, default=None, help="leaderboard folder (default: leaderboard/ in the repository)")
    parser.add_argument("--check", action="store_true", help="validate every record and generated file; print one line per problem and exit with status 1 on any")
    parser.add_argument("--render", action="store_true", help="render the tables in the terminal instead of printing the markdown source")
    parser.set_defaults(handler=run)


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
        problems = leaderboard.check_leaderboard(folder, benchmarks)
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
        console.print(f"Wrote {folder / (name + '.md')}, .csv, .json and the figures under {folder / 'figures'}", markup=False, highlight=False)
    return 0

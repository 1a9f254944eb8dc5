"""``mtbench prepare``: build a benchmark's dataset from its published source files.

Each dataset has its own module that adds its options and builds it; this
module only dispatches. A module listed in ``PREPARERS`` exposes
``add_arguments(group)`` and ``prepare(arguments, root, log) -> Path``.
"""

import argparse
import importlib
from pathlib import Path

from rich.console import Console

from mtbench.cli.help import DefaultsHelpFormatter
from mtbench.errors import MtbenchError
from mtbench.paths import data_root

PREPARERS: dict[str, str] = {
    "multidigitmnist": "mtbench.cli.prepare_multidigitmnist",
    "nyuv2": "mtbench.cli.prepare_nyuv2",
    "sunrgbd": "mtbench.cli.prepare_sunrgbd",
}


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "prepare",
        help="build a benchmark's dataset",
        description="Build a benchmark's dataset under the data root, replacing any earlier copy only when complete.",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("benchmark", help=f"dataset to prepare: {', '.join(sorted(PREPARERS))}")
    parser.add_argument("--data-root", type=Path, default=None, help="folder for prepared data (default: $MTBENCH_DATA, else $MTBENCH_HOME/data, else ~/.cache/mtbench/data)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice the builder makes (splits, draws, positions)")
    for name, module_name in sorted(PREPARERS.items()):
        group = parser.add_argument_group(f"{name} options")
        importlib.import_module(module_name).add_arguments(group)
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    console = Console()

    def log(line: str) -> None:
        # Messages contain literal brackets such as mtbench[huggingface]; print them as text.
        console.print(line, markup=False, highlight=False)

    if arguments.benchmark not in PREPARERS:
        raise MtbenchError(
            f"Unknown dataset '{arguments.benchmark}' for `mtbench prepare`. Known datasets: {', '.join(sorted(PREPARERS))}."
        )
    if not 0 <= arguments.seed < 2**32:
        raise MtbenchError(f"Invalid --seed {arguments.seed}: use an integer from 0 to 2**32 - 1.")

    root = arguments.data_root or data_root()
    check_data_root(root)
    folder = importlib.import_module(PREPARERS[arguments.benchmark]).prepare(arguments, root, log)
    console.print(f"Prepared {arguments.benchmark} in {folder}")
    return 0


def check_data_root(root: Path) -> None:
    """Raise MtbenchError when the data root exists but is not a folder, before any source is read or downloaded."""
    if root.exists() and not root.is_dir():
        raise MtbenchError(
            f"The data root {root} is a file, not a folder. Pass a folder with --data-root (or set $MTBENCH_DATA), "
            "or move the file away."
        )

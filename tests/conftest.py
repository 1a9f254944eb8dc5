"""Shared fixtures: a tiny prepared MultiDigitMNIST whose digits a small CNN can learn, and one-thread torch."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from mtbench.data.multidigitmnist import prepare_multidigitmnist


@dataclass(frozen=True)
class LearnableMnist:
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def make_learnable_mnist(per_digit: int, seed: int = 0) -> LearnableMnist:
    """Return MNIST-shaped arrays where digit d is a bright bar 2 (d + 1) pixels long plus faint noise.

    The bar's length, unlike its position, survives the random placement of
    each glyph inside its image half.
    """
    rng = np.random.default_rng(seed)

    def split(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(10, dtype=np.uint8), count)
        images = rng.integers(0, 40, size=(len(labels), 28, 28), dtype=np.uint8)
        for index, digit in enumerate(labels):
            images[index, 12:16, 4 : 6 + 2 * digit] = 255
        order = rng.permutation(len(labels))
        return images[order], labels[order]

    train_images, train_labels = split(per_digit)
    test_images, test_labels = split(per_digit // 2)
    return LearnableMnist(train_images, train_labels, test_images, test_labels, "learnable synthetic MNIST")


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with MultiDigitMNIST prepared at 24 images per pair: 384 train, 96 validation, 120 test."""
    root = tmp_path_factory.mktemp("data")
    prepare_multidigitmnist(make_learnable_mnist(per_digit=40), root / "multidigitmnist", seed=0, images_per_pair=24, log=lambda message: None)
    return root


@pytest.fixture
def one_thread():
    """Run torch with one thread, then restore the thread count.

    On a busy machine two spinning OpenMP threads slow many small steps many
    times over, and one thread also reduces sums in the same order every run.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

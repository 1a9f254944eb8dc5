"""The in-memory form of MNIST that every source reader returns, and its checks."""

from dataclasses import dataclass

import numpy as np

from mtbench.errors import MtbenchError

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
FULL_TRAIN_SIZE = 60000
FULL_TEST_SIZE = 10000


@dataclass(frozen=True)
class MnistArrays:
    """MNIST's training set and test set (t10k), each in its original published order.

    Images are uint8 arrays of shape (N, 28, 28) with 0 = background, labels
    are uint8 arrays of shape (N,) with digits 0..9. ``source`` names the
    source and the file or files read, for logs and dataset provenance.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def check_split(images: np.ndarray, labels: np.ndarray, split: str, origin: str) -> None:
    """Raise MtbenchError unless ``images`` and ``labels`` form a valid MNIST split of any size.

    ``split`` ("training" or "test") and ``origin`` (a file or source) appear
    in the message.
    """
    where = f"MNIST {split} set from {origin}"

    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise MtbenchError(f"{where}: images and labels must be uint8, got {images.dtype} and {labels.dtype}.")

    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise MtbenchError(f"{where}: images must have shape (N, 28, 28), got {images.shape}.")

    if labels.ndim != 1:
        raise MtbenchError(f"{where}: labels must have shape (N,), got {labels.shape}.")

    if len(images) != len(labels):
        raise MtbenchError(f"{where}: {len(images)} images but {len(labels)} labels, but the counts must be equal.")

    if len(labels) > 0 and int(labels.max()) >= NUM_CLASSES:
        raise MtbenchError(f"{where}: label {int(labels.max())} is out of range because MNIST labels are digits 0..9.")


def check_mnist_arrays(arrays: MnistArrays, expect_full: bool) -> None:
    """Raise MtbenchError unless ``arrays`` is a valid MNIST.

    With ``expect_full`` the training set must have 60000 images and the test
    set 10000, the sizes of the published MNIST. Without it any size passes,
    which small test fixtures rely on.
    """
    check_split(arrays.train_images, arrays.train_labels, "training", arrays.source)
    check_split(arrays.test_images, arrays.test_labels, "test", arrays.source)

    if not expect_full:
        return

    sizes = (len(arrays.train_labels), len(arrays.test_labels))
    if sizes != (FULL_TRAIN_SIZE, FULL_TEST_SIZE):
        raise MtbenchError(
            f"MNIST from {arrays.source} has {sizes[0]} training and {sizes[1]} test images, but "
            f"the full MNIST has {FULL_TRAIN_SIZE} and {FULL_TEST_SIZE}. Point to complete MNIST files."
        )

"""The validation split carved from NYUv2's official training images."""

import math

import numpy as np

from mtbench.errors import MtbenchError

DEFAULT_VAL_FRACTION = 0.1


def validation_count(train_count: int, val_fraction: float) -> int:
    """Return the number of validation images: ``val_fraction * train_count`` rounded half up (80 of 795 at 0.1).

    Raises MtbenchError unless 0 < val_fraction < 1 and both parts get at least one image.
    """
    if not 0 < val_fraction < 1:
        raise MtbenchError(f"Invalid --val-fraction {val_fraction}: use a number between 0 and 1, such as {DEFAULT_VAL_FRACTION}.")
    count = math.floor(val_fraction * train_count + 0.5)
    if not 0 < count < train_count:
        raise MtbenchError(
            f"--val-fraction {val_fraction} of {train_count} training images leaves {count} for validation "
            f"and {train_count - count} for training; both need at least one image."
        )
    return count


def carve_validation(train_count: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split positions 0..train_count-1 of the official training list into (train, val) positions, each sorted.

    The validation positions are the first ``validation_count`` entries of
    ``numpy.random.default_rng(seed).permutation(train_count)``. Positions, not
    image ids, are drawn, so every source whose training list has the same
    order gets the same images.
    """
    count = validation_count(train_count, val_fraction)
    order = np.random.default_rng(seed).permutation(train_count)
    return np.sort(order[count:]), np.sort(order[:count])

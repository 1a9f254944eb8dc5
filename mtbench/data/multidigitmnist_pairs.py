"""Class pairs of MultiDigitMNIST and their assignment to splits.

The left digit is even and the right digit is odd, so each task has 5 classes
and there are 25 (left, right) class pairs. Every pair belongs to exactly one
split: 5 test pairs, 4 validation pairs and 16 training pairs. A model is
therefore always tested on digit pairings that it never saw in training.
"""

import numpy as np

LEFT_DIGITS: tuple[int, ...] = (0, 2, 4, 6, 8)
RIGHT_DIGITS: tuple[int, ...] = (1, 3, 5, 7, 9)
NUM_CLASSES = 5
SPLITS: tuple[str, ...] = ("train", "val", "test")
PAIRS_PER_SPLIT: dict[str, int] = {"train": 16, "val": 4, "test": 5}

ClassPair = tuple[int, int]


def left_class(digit: int) -> int:
    """Return the class index (0..4) of an even left digit."""
    return digit // 2


def right_class(digit: int) -> int:
    """Return the class index (0..4) of an odd right digit."""
    return (digit - 1) // 2


def pair_digits(pair: ClassPair) -> tuple[int, int]:
    """Return the (left digit, right digit) of a (left class, right class) pair."""
    return LEFT_DIGITS[pair[0]], RIGHT_DIGITS[pair[1]]


def assign_pairs(rng: np.random.Generator) -> dict[str, list[ClassPair]]:
    """Assign each of the 25 class pairs to one split, drawing from ``rng``.

    The 5 test pairs form a random permutation, so every left class and every
    right class occurs exactly once in test. The 4 validation pairs are drawn
    uniformly from the remaining 20 among the sets that use 4 distinct left
    classes and 4 distinct right classes. Validation then lacks exactly one
    class per task, which 4 pairs cannot avoid, and each task still has 4
    classes to select models on. The 16 other pairs form the training split,
    which contains every class of both tasks at least 3 times.

    Returns the pairs of each split as (left class, right class), sorted.
    """
    permutation = rng.permutation(NUM_CLASSES)
    test = [(left, int(permutation[left])) for left in range(NUM_CLASSES)]

    remaining = [
        (left, right)
        for left in range(NUM_CLASSES)
        for right in range(NUM_CLASSES)
        if (left, right) not in test
    ]

    # Rejection sampling keeps the draw uniform over the valid validation sets.
    while True:
        order = rng.permutation(len(remaining))
        val = [remaining[index] for index in order[: PAIRS_PER_SPLIT["val"]]]
        if _has_distinct_classes(val):
            break
    train = [pair for pair in remaining if pair not in val]

    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def _has_distinct_classes(pairs: list[ClassPair]) -> bool:
    lefts = {left for left, _ in pairs}
    rights = {right for _, right in pairs}
    return len(lefts) == len(pairs) and len(rights) == len(pairs)

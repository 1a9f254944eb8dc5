"""Resizing of a frame to the benchmark sizes: colour bilinear, labels nearest, depth by a masked mean.

Sizes are (height, width). The aspect ratio is not kept: every sensor's
frame is stretched to the same size.
"""

import numpy as np
from PIL import Image


def resize_image(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 RGB (H, W, 3) to uint8 (3, height, width) with PIL's bilinear filter.

    When shrinking, PIL widens the filter in proportion to the scale, so every
    source pixel contributes (the filter antialiases).
    """
    height, width = size
    resized = Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(resized).transpose(2, 0, 1))


def nearest_indices(source_length: int, target_length: int) -> np.ndarray:
    """Return, for each target position i, the source position ``floor((i + 0.5) * source_length / target_length)``."""
    positions = (np.arange(target_length) + 0.5) * source_length / target_length
    return np.minimum(np.floor(positions).astype(np.int64), source_length - 1)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a (H, W) label image by nearest-neighbour sampling at the target pixel centres."""
    rows = nearest_indices(labels.shape[0], size[0])
    columns = nearest_indices(labels.shape[1], size[1])
    return np.ascontiguousarray(labels[np.ix_(rows, columns)])


def window_bounds(source_length: int, target_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the source windows [start, stop) of each target position, as adaptive average pooling uses them.

    start = floor(i * source / target) and stop = ceil((i + 1) * source / target),
    so windows tile the source and overlap by one pixel when the ratio is not
    an integer.
    """
    index = np.arange(target_length)
    starts = (index * source_length) // target_length
    stops = -((-(index + 1) * source_length) // target_length)
    return starts, stops


def resize_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float32 depth (H, W) in metres, 0 = invalid, without mixing invalid pixels into valid ones.

    Each target pixel is the mean of the valid (non-zero) source pixels in
    its window (``window_bounds``), and is 0 (invalid) when fewer than half
    of the window's pixels are valid.
    """
    valid = depth > 0
    depth_sums = _window_sums(np.where(valid, depth, 0).astype(np.float64), size)
    valid_counts = _window_sums(valid.astype(np.float64), size)

    row_starts, row_stops = window_bounds(depth.shape[0], size[0])
    column_starts, column_stops = window_bounds(depth.shape[1], size[1])
    window_areas = np.outer(row_stops - row_starts, column_stops - column_starts)

    keep = 2 * valid_counts >= window_areas
    resized = np.zeros(size, dtype=np.float32)
    resized[keep] = (depth_sums[keep] / valid_counts[keep]).astype(np.float32)
    return resized


def _window_sums(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Sum ``values`` over every target window with a summed-area table."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.float64)
    table[1:, 1:] = values.cumsum(axis=0).cumsum(axis=1)
    row_starts, row_stops = window_bounds(values.shape[0], size[0])
    column_starts, column_stops = window_bounds(values.shape[1], size[1])
    return (
        table[np.ix_(row_stops, column_stops)]
        - table[np.ix_(row_starts, column_stops)]
        - table[np.ix_(row_stops, column_starts)]
        + table[np.ix_(row_starts, column_starts)]
    )

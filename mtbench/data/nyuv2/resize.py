"""Resampling of NYUv2 images and targets to the benchmark sizes, never mixing labels or invalid pixels into valid ones.

- Images: PIL's BILINEAR filter, which widens its support when shrinking
  (antialiasing), so every source pixel contributes.
- Labels: nearest, taking the source pixel that contains the target pixel's
  centre, so every target label is a source label.
- Depth and normals: area average over the target pixel's footprint,
  weighted by validity. A target pixel is valid when valid source pixels
  cover at least ``MIN_VALID_FRACTION`` of its footprint, and is then the
  mean over those valid pixels only, so invalid zeros never lower a valid
  depth. Averaged normals are renormalised to unit length.

All functions use the pixel-edge convention of ``align_corners=False``: the
target image spans exactly the source image.
"""

import numpy as np
import scipy.sparse
from PIL import Image

MIN_VALID_FRACTION = 0.5

# Averaged normals shorter than this (opposite normals cancelling out) are marked invalid.
_MIN_MEAN_NORMAL_LENGTH = 1e-6


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB image of shape (H, W, 3) uint8 to ``size`` = (h, w) and return it channel-first, (3, h, w) uint8."""
    if image.shape[:2] != tuple(size):
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image), mode="RGB").resize((size[1], size[0]), Image.BILINEAR))
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """Return, for each of ``size_out`` target pixels, the index of the source pixel that contains its centre."""
    centres = (np.arange(size_out) + 0.5) * (size_in / size_out)
    return np.minimum(np.floor(centres).astype(np.int64), size_in - 1)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label map of shape (H, W) to ``size`` = (h, w) by nearest sampling, which only copies values."""
    rows = nearest_indices(labels.shape[0], size[0])
    columns = nearest_indices(labels.shape[1], size[1])
    return np.ascontiguousarray(labels[np.ix_(rows, columns)])


def area_weights(size_in: int, size_out: int) -> np.ndarray:
    """Return the (size_out, size_in) matrix of the fraction of each target pixel's footprint that each source pixel covers.

    Target pixel i covers the source interval [i s, (i + 1) s) with
    s = size_in / size_out, and each row sums to 1.
    """
    scale = size_in / size_out
    starts = np.arange(size_out)[:, None] * scale
    ends = starts + scale
    pixel_starts = np.arange(size_in)[None, :]
    overlap = np.clip(np.minimum(ends, pixel_starts + 1) - np.maximum(starts, pixel_starts), 0, None)
    return overlap / scale


def _valid_area_average(values: np.ndarray, valid: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Average ``values`` (H, W, C) over the valid pixels of each target footprint and return the means (h, w, C) and the validity mask (h, w)."""
    # Each target pixel overlaps few source pixels, so sparse weights are much faster than dense ones
    # (0.3 ms against 72 ms for 480 x 640 to 80 x 80, measured on a shared 2-core x86 machine).
    row_weights = scipy.sparse.csr_matrix(area_weights(values.shape[0], size[0]))
    column_weights = scipy.sparse.csr_matrix(area_weights(values.shape[1], size[1]))
    validity = valid.astype(np.float64)

    def average(plane: np.ndarray) -> np.ndarray:
        return (column_weights @ (row_weights @ plane).T).T

    covered = average(validity)
    weighted = np.stack([average(values[..., channel] * validity) for channel in range(values.shape[-1])], axis=-1)
    keep = covered >= MIN_VALID_FRACTION
    means = np.zeros_like(weighted)
    means[keep] = weighted[keep] / covered[keep, None]
    return means, keep


def resize_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a depth map (H, W) in metres, 0 = invalid, to ``size`` = (h, w) by validity-weighted area averaging.

    Returns float32 with 0 where less than ``MIN_VALID_FRACTION`` of the footprint is valid.
    """
    valid = depth > 0
    means, _ = _valid_area_average(depth.astype(np.float64)[..., None], valid, size)
    return means[..., 0].astype(np.float32)


def resize_normals(normal: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize unit normals (H, W, 3), zero vector = invalid, to ``size`` = (h, w) by validity-weighted area averaging.

    The mean vector of each target pixel is renormalised. Returns float32
    (h, w, 3), zero where less than ``MIN_VALID_FRACTION`` of the footprint
    is valid or where the valid normals cancel out.
    """
    valid = np.any(normal != 0, axis=-1)
    means, keep = _valid_area_average(normal.astype(np.float64), valid, size)
    length = np.linalg.norm(means, axis=-1)
    keep &= length > _MIN_MEAN_NORMAL_LENGTH
    result = np.zeros_like(means)
    result[keep] = means[keep] / length[keep, None]
    return result.astype(np.float32)

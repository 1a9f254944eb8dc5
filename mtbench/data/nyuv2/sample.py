"""One NYUv2 image with its targets as a source yields it, and the checks every source applies."""

from dataclasses import dataclass

import numpy as np

from mtbench.data.dense_format import IGNORE_INDEX
from mtbench.data.nyuv2.camera import CameraIntrinsics
from mtbench.errors import MtbenchError

# NYUv2 depths (Kinect v1) stay below about 10 m, so larger values mean another unit.
MAX_DEPTH_METRES = 20.0
NUM_CLASSES = 13
# Largest length of a supplied normal that is still read as a unit vector with rounding errors.
MAX_NORMAL_LENGTH = 1.1
# Supplied normals shorter than this are read as invalid (for example shrunk by averaging with invalid zeros).
MIN_NORMAL_LENGTH = 0.5


@dataclass
class NyuSample:
    """One image with its targets at the source's resolution, already converted to mtbench's units.

    ``image``: (H, W, 3) uint8 RGB. ``segmentation``: (H, W) uint8, 13-class
    indices 0..12 and 255 = void. ``depth``: (H, W) float32 metres, 0 = invalid.
    ``normal``: (H, W, 3) float32 unit vectors, zero = invalid, or None when
    the source has none (they are then computed from depth with
    ``intrinsics``). ``source_index``: the image's index in the source (1-based
    in the labeled .mat file, 0-based file numbers in the preprocessed copy).
    """

    image: np.ndarray
    segmentation: np.ndarray
    depth: np.ndarray
    normal: np.ndarray | None
    intrinsics: CameraIntrinsics | None
    source_index: int


def depth_in_metres(depth: np.ndarray, where: str) -> np.ndarray:
    """Return ``depth`` as float32 metres with non-finite and non-positive values set to 0 (invalid).

    Raises MtbenchError naming ``where`` when valid values exceed
    ``MAX_DEPTH_METRES``, which means the source stores millimetres or another
    unit.
    """
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    cleaned = np.where(valid, depth, np.float32(0))
    if valid.any() and cleaned.max() > MAX_DEPTH_METRES:
        raise MtbenchError(
            f"{where}: depth reaches {float(cleaned.max()):.1f}, but NYUv2 depth is in metres and below {MAX_DEPTH_METRES:g} m. "
            "The file probably stores millimetres: use the original metre values."
        )
    return cleaned


def image_from_unit_floats(image: np.ndarray, where: str) -> np.ndarray:
    """Convert an RGB image with values in [0, 1] to uint8 by rounding x * 255.

    Raises MtbenchError naming ``where`` for NaN or infinite values and for
    values outside [0, 1].
    """
    if not np.isfinite(image).all():
        raise MtbenchError(f"{where}: the image contains NaN or infinite values. Replace the file with an intact copy.")
    if image.size and (image.min() < 0 or image.max() > 1):
        raise MtbenchError(
            f"{where}: image values range from {float(image.min()):g} to {float(image.max()):g}, expected RGB in [0, 1]."
        )
    return np.rint(np.asarray(image, dtype=np.float64) * 255).astype(np.uint8)


def segmentation_from_shifted(labels: np.ndarray, where: str) -> np.ndarray:
    """Convert labels in -1..12 (-1 = void, the preprocessed copy's encoding) to 0..12 with 255 = void.

    Raises MtbenchError naming ``where`` for non-integer values and values outside -1..12.
    """
    if not np.isfinite(labels).all() or not np.array_equal(labels, np.round(labels)):
        raise MtbenchError(f"{where}: labels must be whole numbers from -1 to {NUM_CLASSES - 1}, found non-integer values.")
    if labels.size and (labels.min() < -1 or labels.max() > NUM_CLASSES - 1):
        raise MtbenchError(
            f"{where}: labels range from {int(labels.min())} to {int(labels.max())}, expected -1 (void) to {NUM_CLASSES - 1}."
        )
    return np.where(labels < 0, IGNORE_INDEX, labels).astype(np.uint8)


def unit_normals(normal: np.ndarray, where: str) -> np.ndarray:
    """Return supplied normals (H, W, 3) renormalised to unit length as float32, with zero for invalid pixels.

    Vectors shorter than ``MIN_NORMAL_LENGTH`` are invalid. Raises MtbenchError
    naming ``where`` for NaN or infinite values and for vectors longer than
    ``MAX_NORMAL_LENGTH``, which are not unit vectors.
    """
    normal = np.asarray(normal, dtype=np.float64)
    if not np.isfinite(normal).all():
        raise MtbenchError(f"{where}: the normals contain NaN or infinite values. Replace the file with an intact copy.")
    length = np.linalg.norm(normal, axis=-1)
    if length.size and length.max() > MAX_NORMAL_LENGTH:
        raise MtbenchError(f"{where}: a normal has length {float(length.max()):.3g}, but normals must be unit vectors (zero = invalid).")
    keep = length >= MIN_NORMAL_LENGTH
    result = np.zeros_like(normal)
    result[keep] = normal[keep] / length[keep, None]
    return (result + 0.0).astype(np.float32)


def check_same_size(where: str, **arrays: np.ndarray) -> None:
    """Raise MtbenchError naming ``where`` unless all ``arrays`` share their first two axes (H, W)."""
    sizes = {name: array.shape[:2] for name, array in arrays.items()}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{name} {size[0]}x{size[1]}" for name, size in sizes.items())
        raise MtbenchError(f"{where}: the arrays of one image differ in size ({listing}).")

"""Reader of SUN RGB-D depth PNGs: 16-bit values whose bits are rotated left by 3.

The SUN RGB-D toolbox (``read3dPoints.m``) decodes a stored value ``raw`` as
``millimetres = (raw >> 3) | (raw << 13)`` in uint16, that is, a rotation of
the 16 bits right by 3, and divides by 1000 for metres. Raw depth
(``depth/``) is 0 where the sensor measured nothing; in-painted depth
(``depth_bfx/``) is filled in.
"""

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mtbench.errors import MtbenchError

# PIL modes of a 16-bit greyscale PNG: Pillow 10 and later give 'I;16'; older versions give 'I' (int32).
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")


def decode_depth_millimetres(raw: np.ndarray) -> np.ndarray:
    """Return depth in millimetres (uint16) from stored PNG values (any integer dtype, values 0..65535)."""
    raw = raw.astype(np.uint32)
    return ((raw >> 3) | ((raw << 13) & 0xFFFF)).astype(np.uint16)


def depth_metres(millimetres: np.ndarray, max_depth: float) -> np.ndarray:
    """Return float32 metres, with 0 (invalid) where the depth is 0 or above ``max_depth`` metres."""
    metres = millimetres.astype(np.float32) / np.float32(1000)
    metres[metres > max_depth] = 0
    return metres


def read_depth_png(path: Path, max_depth: float) -> np.ndarray:
    """Read a SUN RGB-D depth PNG as float32 metres (height, width), 0 = invalid.

    Raises MtbenchError naming ``path`` when the file is missing, is not a
    readable PNG, or is not a single-channel 16-bit image.
    """
    raw = _read_sixteen_bit_png(Path(path))
    return depth_metres(decode_depth_millimetres(raw), max_depth)


def _read_sixteen_bit_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            mode, file_format = image.mode, image.format
            values = np.array(image)
    except FileNotFoundError:
        raise MtbenchError(f"Depth image {path} not found. Unzip SUNRGBD.zip again, since the SUN RGB-D tree is incomplete.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise MtbenchError(f"Depth image {path} is not a readable PNG ({error}). Unzip SUNRGBD.zip again to restore it.") from error

    if file_format != "PNG" or mode not in _SIXTEEN_BIT_MODES:
        raise MtbenchError(f"Depth image {path} is a {file_format} image of mode {mode}, expected a 16-bit greyscale PNG. Unzip SUNRGBD.zip again to restore it.")
    if values.size and (values.min() < 0 or values.max() > 0xFFFF):
        raise MtbenchError(f"Depth image {path} has values outside 0..65535, so it is not a 16-bit depth PNG. Unzip SUNRGBD.zip again to restore it.")
    return values

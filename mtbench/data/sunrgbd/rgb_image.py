"""Reader of the SUN RGB-D colour images (``<scene>/image/<name>.jpg``)."""

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mtbench.errors import MtbenchError


def read_rgb_image(path: Path) -> np.ndarray:
    """Read an image file as uint8 RGB (height, width, 3); greyscale or palette images are converted.

    Raises MtbenchError naming ``path`` when the file is missing or cannot be decoded.
    """
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise MtbenchError(f"Colour image {path} not found. Unzip SUNRGBD.zip again, since the SUN RGB-D tree is incomplete.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise MtbenchError(f"Colour image {path} is not a readable image ({error}). Unzip SUNRGBD.zip again to restore it.") from error

"""Reader for MNIST's original IDX files, raw or gzip-compressed.

The IDX format starts with a big-endian int32 magic number whose third byte is
the element type (0x08 = unsigned byte) and whose fourth byte is the number of
dimensions, followed by one big-endian int32 size per dimension and the
elements in row-major order. MNIST's image files have magic 2051 (0x00000803)
and sizes (count, 28, 28). Its label files have magic 2049 (0x00000801) and
size (count,).
"""

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from mtbench.data.mnist.arrays import IMAGE_SHAPE, NUM_CLASSES, MnistArrays, check_split
from mtbench.errors import MtbenchError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
GZIP_SIGNATURE = b"\x1f\x8b"

# File names without the ".gz" suffix, keyed by (split, kind).
IDX_FILE_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

TORCHVISION_RAW_SUBFOLDER = Path("MNIST") / "raw"


def read_idx_images(path: Path) -> np.ndarray:
    """Read an MNIST image file (raw, or gzip when the name ends in ".gz").

    Returns a writable uint8 array of shape (count, 28, 28). Raises
    MtbenchError naming ``path`` when the file is missing, is not a valid
    gzip file, has another magic number or image size, or contains fewer or more
    pixel bytes than its header states.
    """
    path = Path(path)
    images = _decode_idx_ubyte(_read_idx_bytes(path), IMAGES_MAGIC, path)

    if images.shape[1:] != IMAGE_SHAPE:
        raise MtbenchError(f"{path}: images are {images.shape[1]}x{images.shape[2]} pixels, but MNIST images are 28x28.")
    return images


def read_idx_labels(path: Path) -> np.ndarray:
    """Read an MNIST label file (raw, or gzip when the name ends in ".gz").

    Returns a writable uint8 array of shape (count,) with values 0..9. Raises
    MtbenchError naming ``path`` for the same faults as ``read_idx_images``
    and for a label above 9.
    """
    path = Path(path)
    labels = _decode_idx_ubyte(_read_idx_bytes(path), LABELS_MAGIC, path)

    if len(labels) > 0 and int(labels.max()) >= NUM_CLASSES:
        position = int(np.argmax(labels >= NUM_CLASSES))
        raise MtbenchError(
            f"{path}: label {int(labels[position])} at index {position} is out of range because "
            "MNIST labels are digits 0..9. The file is corrupt or not an MNIST label file."
        )
    return labels


def find_idx_files(folder: Path) -> dict[tuple[str, str], Path]:
    """Locate the four MNIST IDX files in ``folder`` or in torchvision's ``folder/MNIST/raw``.

    Each file may be raw or gzip-compressed (name + ".gz"). The raw file wins
    when both exist, because torchvision keeps each downloaded ".gz" next to
    the file that it extracted. Returns paths keyed like
    ``IDX_FILE_NAMES``. Raises MtbenchError listing the missing files when
    neither folder has all four.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MtbenchError(f"MNIST folder {folder} does not exist or is not a folder.")

    candidates = [folder, folder / TORCHVISION_RAW_SUBFOLDER]
    missing_by_folder = {}
    for candidate in candidates:
        found, missing = _match_idx_files(candidate)
        if not missing:
            return found
        missing_by_folder[candidate] = missing

    expected = ", ".join(f"{name}[.gz]" for name in IDX_FILE_NAMES.values())
    details = []
    for candidate, missing in missing_by_folder.items():
        if len(missing) == len(IDX_FILE_NAMES):
            details.append(f"{candidate} has none of them")
        else:
            details.append(f"{candidate} lacks {', '.join(missing)}")
    raise MtbenchError(f"MNIST IDX files not found: {' and '.join(details)}. Put {expected} in {folder}.")


def read_idx_folder(folder: Path) -> MnistArrays:
    """Read MNIST from the four IDX files found by ``find_idx_files``.

    Raises MtbenchError for any fault of a single file (see
    ``read_idx_images`` and ``read_idx_labels``) and when a split's image and
    label counts differ.
    """
    paths = find_idx_files(folder)
    arrays = {}
    for (split, kind), path in paths.items():
        arrays[split, kind] = read_idx_images(path) if kind == "images" else read_idx_labels(path)

    for split in ("train", "test"):
        images_path, labels_path = paths[split, "images"], paths[split, "labels"]
        count_images, count_labels = len(arrays[split, "images"]), len(arrays[split, "labels"])
        if count_images != count_labels:
            raise MtbenchError(
                f"{images_path} contains {count_images} images but {labels_path} contains {count_labels} labels, "
                "so the files do not belong together. Replace them with a matching pair."
            )

    source_folder = paths["train", "images"].parent
    result = MnistArrays(
        train_images=arrays["train", "images"],
        train_labels=arrays["train", "labels"],
        test_images=arrays["test", "images"],
        test_labels=arrays["test", "labels"],
        source=f"IDX files in {source_folder} ({', '.join(path.name for path in paths.values())})",
    )
    check_split(result.train_images, result.train_labels, "training", result.source)
    check_split(result.test_images, result.test_labels, "test", result.source)
    return result


def _match_idx_files(folder: Path) -> tuple[dict[tuple[str, str], Path], list[str]]:
    found, missing = {}, []
    for key, name in IDX_FILE_NAMES.items():
        raw, compressed = folder / name, folder / f"{name}.gz"
        if raw.is_file():
            found[key] = raw
        elif compressed.is_file():
            found[key] = compressed
        else:
            missing.append(name)
    return found, missing


def _read_idx_bytes(path: Path) -> bytes:
    """Return the IDX bytes of ``path``, decompressed when its name ends in ".gz"."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MtbenchError(f"MNIST file {path} not found.") from None
    except OSError as error:
        raise MtbenchError(f"Cannot read MNIST file {path}: {error.strerror}.") from error

    if path.suffix != ".gz":
        return data

    if not data.startswith(GZIP_SIGNATURE):
        raise MtbenchError(
            f"{path} is named .gz but is not gzip-compressed. If it is the uncompressed IDX file, remove the .gz suffix."
        )
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as error:
        raise MtbenchError(
            f"{path} is not a valid gzip file (truncated or corrupt: {error}). Delete it and download it again."
        ) from error


def _decode_idx_ubyte(data: bytes, expected_magic: int, path: Path) -> np.ndarray:
    """Decode an unsigned-byte IDX file whose header must carry ``expected_magic``."""
    if len(data) < 4:
        raise MtbenchError(f"{path} is truncated: {len(data)} bytes, shorter than the 4-byte IDX magic number.")

    (magic,) = struct.unpack(">i", data[:4])
    if magic != expected_magic and data.startswith(GZIP_SIGNATURE):
        raise MtbenchError(
            f"{path} looks gzip-compressed, name it .gz (its first 4 bytes read as magic number {magic}, "
            f"expected {expected_magic})."
        )
    if magic != expected_magic:
        kind = "images" if expected_magic == IMAGES_MAGIC else "labels"
        raise MtbenchError(
            f"{path} has IDX magic number {magic}, expected {expected_magic} (unsigned-byte {kind}). "
            "It is not this MNIST file, so check the file name."
        )

    ndim = expected_magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise MtbenchError(f"{path} is truncated: {len(data)} bytes, shorter than its {header_size}-byte IDX header.")
    shape = struct.unpack(f">{ndim}i", data[4:header_size])
    if min(shape) < 0:
        raise MtbenchError(f"{path} has a corrupt IDX header: negative size in shape {shape}.")

    expected_size = header_size + int(np.prod(shape, dtype=np.int64))
    if len(data) < expected_size:
        raise MtbenchError(
            f"{path} is truncated: its header states shape {shape}, which needs {expected_size} bytes, "
            f"but the file has {len(data)}. Delete it and download it again."
        )
    if len(data) > expected_size:
        raise MtbenchError(
            f"{path} has {len(data) - expected_size} trailing bytes after the {expected_size} bytes "
            f"that its header (shape {shape}) describes. The file is corrupt: delete it and download it again."
        )

    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape).copy()

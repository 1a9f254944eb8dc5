import builtins
import math

import numpy as np
import pytest

from mtbench.cli.main import main
from mtbench.data.dense_format import load_dense_split, read_dense_manifest
from mtbench.data.nyuv2.parquet_mirror import ParquetMirrorSource, import_pyarrow
from mtbench.errors import MtbenchError
from nyuv2_fixtures import preprocessed_arrays, write_parquet_mirror, write_preprocessed_folder


def prepare(capsys, *arguments) -> tuple[int, str]:
    status = main(["prepare", "nyuv2", "--val-fraction", "0.25", *map(str, arguments)])
    return status, capsys.readouterr().err


@pytest.fixture(scope="module")
def arrays():
    return preprocessed_arrays()


@pytest.fixture(scope="module")
def npy_folder(arrays, tmp_path_factory):
    return write_preprocessed_folder(tmp_path_factory.mktemp("npy"), arrays)


@pytest.fixture(scope="module")
def parquet_folder(arrays, tmp_path_factory):
    return write_parquet_mirror(tmp_path_factory.mktemp("parquet"), arrays)


@pytest.fixture(scope="module")
def prepared_npy(npy_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for resolution in ("320x320", "288x384"):
        arguments = ["--nyuv2-source", "preprocessed", "--nyuv2-folder", npy_folder, "--data-root", root, "--resolution", resolution]
        assert main(["prepare", "nyuv2", "--val-fraction", "0.25", *map(str, arguments)]) == 0
    return root


@pytest.fixture
def broken_npy(tmp_path):
    """A writable copy of a small preprocessed folder (24 x 32 pixels) for the error cases."""
    small = preprocessed_arrays(height=24, width=32)
    return write_preprocessed_folder(tmp_path / "npy", small), small


def test_288x384_keeps_values(prepared_npy, arrays):
    test = load_dense_split(prepared_npy / "nyuv2-288x384", "test")
    # The copy's "val" folder is the official test split; its image 1 has k = 11.
    np.testing.assert_array_equal(test["image"][1, :, 0, 0], [11, 22, 244])
    assert (test["segmentation"][1, :, :192] == 11).all()
    assert (test["segmentation"][1, :, 192:] == 255).all()
    assert (test["depth"][1, :144, :192] == 0).all()
    assert test["depth"][1, 200, 10] == np.float32(1 + 11 / 10)
    np.testing.assert_allclose(test["normal"][1, :, 0, 0], [0.6, 0, -0.8], atol=1e-7)
    assert (test["normal"][1, :, 144:, 192:] == 0).all()


def test_320x320_resizes_targets(prepared_npy):
    test = load_dense_split(prepared_npy / "nyuv2", "test")
    assert test["image"].shape == (2, 3, 320, 320)
    # Column 39 samples source column 189, column 40 samples 194 (right half, void).
    assert (test["segmentation"][0, :, :40] == 10).all()
    assert (test["segmentation"][0, :, 40:] == 255).all()
    # The invalid quarter is 144 x 192 source pixels = 40 x 40 target pixels.
    assert (test["depth"][0, :40, :40] == 0).all()
    assert (test["depth"][0, 40:, :] == np.float32(2.0)).all()
    assert (test["normal"][0, :, 40:, 40:] == 0).all()
    np.testing.assert_allclose(test["normal"][0, :, 0, 0], [0.6, 0, -0.8], atol=1e-6)


def test_manifest_of_preprocessed(prepared_npy):
    manifest = read_dense_manifest(prepared_npy / "nyuv2")
    assert manifest["counts"] == {"train": 3, "val": 1, "test": 2}
    assert manifest["source"]["kind"] == "preprocessed"
    assert manifest["normal"]["origin"] == "supplied"
    assert manifest["source_indices"]["test"] == [0, 1]
    assert sorted(manifest["source_indices"]["train"] + manifest["source_indices"]["val"]) == [0, 1, 2, 3]


def test_parquet_gives_same_arrays(prepared_npy, parquet_folder, tmp_path, capsys):
    status, _ = prepare(capsys, "--nyuv2-source", "huggingface", "--nyuv2-folder", parquet_folder, "--data-root", tmp_path, "--resolution", "288x384")
    assert status == 0
    from_parquet = read_dense_manifest(tmp_path / "nyuv2-288x384")
    from_npy = read_dense_manifest(prepared_npy / "nyuv2-288x384")
    assert from_parquet["checksum"] == from_npy["checksum"]
    assert from_parquet["source"]["kind"] == "huggingface"
    assert set(from_parquet["source"]["files"]) == {"train-00000-of-00002.parquet", "train-00001-of-00002.parquet", "val-00000-of-00001.parquet"}


def test_parquet_reads_shards_in_order(parquet_folder, arrays):
    source = ParquetMirrorSource(parquet_folder)
    assert source.split_sizes() == {"train": 4, "test": 2}
    samples = list(source.samples("train"))
    assert [sample.source_index for sample in samples] == [0, 1, 2, 3]
    for n, sample in enumerate(samples):
        np.testing.assert_array_equal(sample.image[0, 0], [n, 2 * n, 255 - n])
    assert sample.normal.shape == (288, 384, 3)


def test_parquet_missing_column(arrays, tmp_path):
    folder = write_parquet_mirror(tmp_path / "hf", preprocessed_arrays({"train": 2, "val": 1}, height=4, width=6), drop_column="normal")
    with pytest.raises(MtbenchError, match="lacks the column"):
        ParquetMirrorSource(folder)


def test_parquet_missing_shard(tmp_path):
    folder = write_parquet_mirror(tmp_path / "hf", preprocessed_arrays({"train": 3, "val": 1}, height=4, width=6), shards={"train": 3, "val": 1})
    (folder / "data" / "train-00001-of-00003.parquet").unlink()
    with pytest.raises(MtbenchError, match="shard 1 of 3 is missing"):
        ParquetMirrorSource(folder)


def test_parquet_without_pyarrow(monkeypatch):
    real_import = builtins.__import__

    def import_without_pyarrow(name, *arguments, **options):
        if name.startswith("pyarrow"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *arguments, **options)

    monkeypatch.setattr(builtins, "__import__", import_without_pyarrow)
    with pytest.raises(MtbenchError, match=r"pip install mtbench\[huggingface\]"):
        import_pyarrow()


def test_parquet_empty_folder(tmp_path, capsys):
    (tmp_path / "hf").mkdir()
    status, err = prepare(capsys, "--nyuv2-source", "huggingface", "--nyuv2-folder", tmp_path / "hf", "--data-root", tmp_path / "data")
    assert status == 2
    assert "is empty" in err


# Errors in the .npy copy.


def run_broken(capsys, folder) -> str:
    status, err = prepare(capsys, "--nyuv2-source", "preprocessed", "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 2
    assert "Traceback" not in err
    return err


def test_small_copy_prepares(broken_npy, capsys):
    folder, _ = broken_npy
    status, _ = prepare(capsys, "--nyuv2-source", "preprocessed", "--nyuv2-folder", folder, "--data-root", folder.parent / "data")
    assert status == 0


def test_nan_in_image(broken_npy, capsys):
    folder, small = broken_npy
    image = small.image["val"][1].copy()
    image[3, 4, 0] = math.nan
    np.save(folder / "val" / "image" / "1.npy", image)
    err = run_broken(capsys, folder)
    assert "NaN" in err
    assert "val image 1" in err


def test_image_in_0_255(broken_npy, capsys):
    folder, small = broken_npy
    np.save(folder / "train" / "image" / "0.npy", small.image["train"][0] * 255)
    assert "expected RGB in [0, 1]" in run_broken(capsys, folder)


def test_label_out_of_range(broken_npy, capsys):
    folder, small = broken_npy
    label = small.label["train"][2].copy()
    label[0, 0] = 13
    np.save(folder / "train" / "label" / "2.npy", label)
    err = run_broken(capsys, folder)
    assert "-1 (void) to 12" in err
    assert "train image 2" in err


def test_depth_in_millimetres(broken_npy, capsys):
    folder, small = broken_npy
    np.save(folder / "train" / "depth" / "1.npy", small.depth["train"][1] * 1000)
    assert "millimetres" in run_broken(capsys, folder)


def test_normals_not_unit(broken_npy, capsys):
    folder, small = broken_npy
    np.save(folder / "val" / "normal" / "0.npy", small.normal["val"][0] * 255)
    assert "unit vectors" in run_broken(capsys, folder)


def test_channel_first_image(broken_npy, capsys):
    folder, small = broken_npy
    np.save(folder / "train" / "image" / "0.npy", small.image["train"][0].transpose(2, 0, 1))
    assert "channel-last" in run_broken(capsys, folder)


def test_missing_file_number(broken_npy, capsys):
    folder, _ = broken_npy
    (folder / "train" / "depth" / "2.npy").unlink()
    err = run_broken(capsys, folder)
    assert "2.npy is missing" in err


def test_missing_subfolder(broken_npy, capsys):
    folder, _ = broken_npy
    for path in (folder / "val" / "normal").iterdir():
        path.unlink()
    (folder / "val" / "normal").rmdir()
    assert "not found" in run_broken(capsys, folder)


def test_preprocessed_empty_folder(tmp_path, capsys):
    (tmp_path / "npy").mkdir()
    assert "is empty" in run_broken(capsys, tmp_path / "npy")


def test_preprocessed_needs_folder(tmp_path, capsys):
    status, err = prepare(capsys, "--nyuv2-source", "preprocessed", "--data-root", tmp_path)
    assert status == 2
    assert "--nyuv2-folder" in err


def test_decode_fixed_size_lists(tmp_path):
    import pyarrow as pa

    from mtbench.data.nyuv2.parquet_mirror import decode_nested_column

    values = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    column = pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), 4), 3)
    np.testing.assert_array_equal(decode_nested_column(column, 0, tmp_path / "x.parquet", "segmentation"), values)


def test_decode_ragged_lists(tmp_path):
    import pyarrow as pa

    from mtbench.data.nyuv2.parquet_mirror import decode_nested_column

    column = pa.array([[[1.0, 2.0]], [[3.0]]])
    with pytest.raises(MtbenchError, match="column 'depth' has lists of different lengths"):
        decode_nested_column(column, 0, tmp_path / "x.parquet", "depth")

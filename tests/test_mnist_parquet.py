import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from mnist_fixtures import hf_features_json, png_bytes, random_mnist, write_hf_parquet, write_hf_parquet_folder
from mtbench.data.mnist.parquet_source import (
    find_hf_parquet_files,
    load_huggingface_mnist,
    read_hf_parquet,
    read_hf_parquet_folder,
)
from mtbench.errors import MtbenchError

pytest.importorskip("pyarrow")


def blank_png() -> bytes:
    return png_bytes(np.zeros((28, 28), dtype=np.uint8))


def test_read_hand_written_rows(tmp_path):
    first = np.zeros((28, 28), dtype=np.uint8)
    first[0, 0] = 255
    first[27, 3] = 17
    second = np.full((28, 28), 9, dtype=np.uint8)
    path = write_hf_parquet(tmp_path / "train.parquet", [png_bytes(first), png_bytes(second)], [7, 0])

    images, labels = read_hf_parquet(path)

    assert images.shape == (2, 28, 28)
    assert images.dtype == np.uint8
    assert images[0, 0, 0] == 255
    assert images[0, 27, 3] == 17
    assert int(images[0].sum()) == 255 + 17
    assert int(images[1].sum()) == 9 * 784
    assert labels.dtype == np.uint8
    assert labels.tolist() == [7, 0]


def test_fixture_schema_matches_ylecun_mnist(tmp_path):
    import pyarrow
    import pyarrow.parquet

    path = write_hf_parquet(tmp_path / "train.parquet", [blank_png()], [3])
    schema = pyarrow.parquet.read_schema(path)

    assert schema.names == ["image", "label"]
    assert schema.field("image").type == pyarrow.struct([("bytes", pyarrow.binary()), ("path", pyarrow.string())])
    assert schema.field("label").type == pyarrow.int64()
    features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert features["label"]["names"] == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]


def test_folder_round_trip(tmp_path):
    arrays = random_mnist()
    paths = write_hf_parquet_folder(tmp_path, arrays)

    result = read_hf_parquet_folder(tmp_path)

    np.testing.assert_array_equal(result.train_images, arrays.train_images)
    np.testing.assert_array_equal(result.train_labels, arrays.train_labels)
    np.testing.assert_array_equal(result.test_images, arrays.test_images)
    np.testing.assert_array_equal(result.test_labels, arrays.test_labels)
    assert str(paths["train"]) in result.source


def test_find_files_by_bare_name(tmp_path):
    write_hf_parquet(tmp_path / "train-00000-of-00001.parquet", [blank_png()], [1])
    write_hf_parquet(tmp_path / "test-00000-of-00001.parquet", [blank_png()], [2])

    paths = find_hf_parquet_files(tmp_path)

    assert paths == {"train": tmp_path / "train-00000-of-00001.parquet", "test": tmp_path / "test-00000-of-00001.parquet"}


def test_find_files_needs_both_splits(tmp_path):
    write_hf_parquet(tmp_path / "mnist" / "train-00000-of-00001.parquet", [blank_png()], [1])

    assert find_hf_parquet_files(tmp_path) is None
    with pytest.raises(MtbenchError, match="No Hugging Face MNIST parquet files"):
        read_hf_parquet_folder(tmp_path)


def test_rgb_image_rejected(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (28, 28)).save(buffer, format="PNG")
    path = write_hf_parquet(tmp_path / "train.parquet", [blank_png(), buffer.getvalue()], [1, 2])

    with pytest.raises(MtbenchError) as error:
        read_hf_parquet(path)

    assert "row 1" in str(error.value)
    assert "mode RGB" in str(error.value)
    assert str(path) in str(error.value)


def test_wrong_image_size_rejected(tmp_path):
    path = write_hf_parquet(tmp_path / "train.parquet", [png_bytes(np.zeros((27, 28), dtype=np.uint8))], [1])

    with pytest.raises(MtbenchError, match="28x27"):
        read_hf_parquet(path)


def test_jpeg_image_rejected(tmp_path):
    buffer = io.BytesIO()
    Image.new("L", (28, 28)).save(buffer, format="JPEG")
    path = write_hf_parquet(tmp_path / "train.parquet", [buffer.getvalue()], [1])

    with pytest.raises(MtbenchError, match="not a decodable PNG"):
        read_hf_parquet(path)


def test_truncated_png_rejected(tmp_path):
    path = write_hf_parquet(tmp_path / "train.parquet", [blank_png()[:30]], [1])

    with pytest.raises(MtbenchError, match="row 0 is not a decodable PNG"):
        read_hf_parquet(path)


def test_null_image_rejected(tmp_path):
    path = write_hf_parquet(tmp_path / "train.parquet", [None], [1])

    with pytest.raises(MtbenchError, match="row 0 has no image bytes"):
        read_hf_parquet(path)


def test_label_out_of_range(tmp_path):
    path = write_hf_parquet(tmp_path / "train.parquet", [blank_png(), blank_png()], [3, 10])

    with pytest.raises(MtbenchError, match="from 3 to 10"):
        read_hf_parquet(path)


def test_wrong_label_names(tmp_path):
    features = json.loads(hf_features_json())
    features["info"]["features"]["label"]["names"] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    path = write_hf_parquet(tmp_path / "train.parquet", [blank_png()], [1], metadata=json.dumps(features))

    with pytest.raises(MtbenchError, match="names"):
        read_hf_parquet(path)


def test_missing_metadata(tmp_path):
    import pyarrow
    import pyarrow.parquet

    path = write_hf_parquet(tmp_path / "train.parquet", [blank_png()], [1])
    table = pyarrow.parquet.read_table(path).replace_schema_metadata(None)
    pyarrow.parquet.write_table(table, path)

    with pytest.raises(MtbenchError, match="lacks the 'huggingface' schema metadata"):
        read_hf_parquet(path)


def test_missing_column(tmp_path):
    import pyarrow
    import pyarrow.parquet

    path = tmp_path / "train.parquet"
    pyarrow.parquet.write_table(pyarrow.table({"label": pyarrow.array([1], type=pyarrow.int64())}), path)

    with pytest.raises(MtbenchError, match="'image' and 'label'"):
        read_hf_parquet(path)


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "train.parquet"
    path.write_bytes(b"PAR1 but not really")

    with pytest.raises(MtbenchError) as error:
        read_hf_parquet(path)

    assert "not a readable parquet file" in str(error.value)
    assert str(path) in str(error.value)


def test_missing_pyarrow_message(tmp_path, monkeypatch):
    path = write_hf_parquet(tmp_path / "train.parquet", [blank_png()], [1])
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)

    with pytest.raises(MtbenchError, match=r"pip install mtbench\[huggingface\]"):
        read_hf_parquet(path)


def test_load_uses_cached_files(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    arrays = random_mnist()
    write_hf_parquet_folder(tmp_path / "huggingface", arrays)
    lines = []

    result = load_huggingface_mnist(tmp_path, log=lines.append)

    np.testing.assert_array_equal(result.test_images, arrays.test_images)
    assert lines == [f"Using Hugging Face parquet files already in {tmp_path / 'huggingface'}."]


def test_load_without_hub_or_files(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)

    with pytest.raises(MtbenchError) as error:
        load_huggingface_mnist(tmp_path, log=lambda line: None)

    assert "huggingface_hub is not installed" in str(error.value)
    assert str(tmp_path / "huggingface") in str(error.value)

"""End-to-end tests of `mtbench prepare sunrgbd` on a six-frame source tree in the published formats."""

import json

import numpy as np
import pytest
from PIL import Image

from mtbench.cli.main import main
from mtbench.data.dense_format import load_dense_split, read_dense_manifest, verify_dense_dataset
from mtbench.data.sunrgbd.build import prepare_sunrgbd
from mtbench.data.sunrgbd.split import carve_validation
from mtbench.errors import MtbenchError
from sunrgbd_fixtures import default_frames, write_seg_v73, write_split_v5, write_sunrgbd_sources

SMALL = {"image_size": (16, 16), "target_size": (4, 4), "val_fraction": 0.25}


def quiet(message: str) -> None:
    pass


@pytest.fixture
def sources(tmp_path):
    return write_sunrgbd_sources(tmp_path / "source")


def prepare_small(sources, out_dir, **options):
    return prepare_sunrgbd(sources.folder, out_dir, log=quiet, **{**SMALL, **options})


def frame_arrays(folder, source_index):
    """Return the split name and the arrays of the frame at ``source_index`` in SUNRGBDMeta.mat."""
    manifest = read_dense_manifest(folder)
    for split, indices in manifest["source_indices"].items():
        if source_index in indices:
            arrays = load_dense_split(folder, split)
            return split, {field: np.array(array[indices.index(source_index)]) for field, array in arrays.items()}
    raise AssertionError(f"frame {source_index} is in no split")


def test_prepare_layout_and_manifest(sources, tmp_path):
    folder = prepare_small(sources, tmp_path / "data" / "sunrgbd")
    manifest = read_dense_manifest(folder)

    assert manifest["dataset"] == "sunrgbd"
    assert manifest["counts"] == {"train": 3, "val": 1, "test": 2}
    assert manifest["fields"] == ["depth", "image", "segmentation13", "segmentation37"]
    assert len(manifest["class_names"]["segmentation13"]) == 13
    assert len(manifest["class_names"]["segmentation37"]) == 37
    assert manifest["official_split_counts"] == {"train": 4, "test": 2}
    assert manifest["options"]["depth_source"] == "raw"
    assert "--sunrgbd-folder" in manifest["prepare_command"]

    train = load_dense_split(folder, "train")
    assert train["image"].shape == (3, 3, 16, 16)
    assert train["image"].dtype == np.uint8
    assert train["segmentation13"].shape == (3, 4, 4)
    assert train["segmentation13"].dtype == np.uint8
    assert train["segmentation37"].shape == (3, 4, 4)
    assert train["depth"].shape == (3, 4, 4)
    assert train["depth"].dtype == np.float32


def test_hand_made_frame_values(sources, tmp_path):
    folder = prepare_small(sources, tmp_path / "sunrgbd")

    _, arrays = frame_arrays(folder, 0)

    # Labels at rows/columns 1, 3, 5, 7: 0, 1 (wall), 8 (door), 37 (bag); 4 (bed), 23 (books), 25 (tv), 36 (bathtub); then 2 (floor).
    assert arrays["segmentation37"].tolist() == [[255, 0, 7, 36], [3, 22, 24, 35], [1, 1, 1, 1], [1, 1, 1, 1]]
    assert arrays["segmentation13"].tolist() == [[255, 11, 11, 6], [0, 1, 10, 6], [4, 4, 4, 4], [4, 4, 4, 4]]
    # Depth blocks: 1000 mm; mean of 1000 and 2000 with two holes; one valid pixel of four; 9000 mm beyond 8 m; 2500 mm.
    expected_depth = np.array([[1.0, 1.5, 0.0, 0.0]] + [[2.5] * 4] * 3, dtype=np.float32)
    np.testing.assert_array_equal(arrays["depth"], expected_depth)
    # JPEG is lossy, so the uniform colour (200, 100, 50) comes back only approximately.
    assert np.abs(arrays["image"].astype(int) - np.array([200, 100, 50]).reshape(3, 1, 1)).max() <= 3


def test_inpainted_depth_and_max_depth(sources, tmp_path):
    folder = prepare_small(sources, tmp_path / "sunrgbd", depth_source="inpainted", max_depth=10.0)

    _, arrays = frame_arrays(folder, 0)

    # The fixture in-paints holes with 4000 mm: (1000 + 2000 + 2 * 4000) / 4 and (3000 + 3 * 4000) / 4; 9000 mm is now in range.
    np.testing.assert_array_equal(arrays["depth"][0], np.array([1.0, 2.75, 3.75, 9.0], dtype=np.float32))


def test_split_assignment_and_validation(sources, tmp_path):
    folder = prepare_small(sources, tmp_path / "sunrgbd", seed=7)
    manifest = read_dense_manifest(folder)

    train, val = carve_validation([0, 2, 3, 5], 0.25, seed=7)
    assert manifest["source_indices"] == {"train": train, "val": val, "test": [1, 4]}
    assert manifest["sensor_counts"]["test"] == {"kv1": 1, "kv2": 1}
    assert manifest["seed"] == 7


def test_every_sensor_resized_to_one_size(sources, tmp_path):
    folder = prepare_small(sources, tmp_path / "sunrgbd")

    split, kv2 = frame_arrays(folder, 2)

    assert sources.frames[2].labels.shape == (8, 12)
    assert kv2["image"].shape == (3, 16, 16)
    assert kv2["segmentation37"].shape == (4, 4)
    # Nearest sampling of an 8 x 12 frame to 4 x 4 reads rows 1, 3, 5, 7 and columns 1, 4, 7, 10.
    source = sources.frames[2].labels[np.ix_([1, 3, 5, 7], [1, 4, 7, 10])]
    assert kv2["segmentation37"].tolist() == np.where(source == 0, 255, source - 1).tolist()


def test_checksums_reproducible(sources, tmp_path):
    first = prepare_small(sources, tmp_path / "first" / "sunrgbd", seed=1)
    second = prepare_small(sources, tmp_path / "second" / "sunrgbd", seed=1)

    checksum = read_dense_manifest(first)["checksum"]
    assert verify_dense_dataset(first) == checksum
    assert read_dense_manifest(second)["checksum"] == checksum
    assert read_dense_manifest(first)["files"] == read_dense_manifest(second)["files"]


def test_seed_changes_validation_frames(sources, tmp_path):
    seeds = [seed for seed in range(10) if carve_validation([0, 2, 3, 5], 0.25, seed)[1] != carve_validation([0, 2, 3, 5], 0.25, 0)[1]]
    first = prepare_small(sources, tmp_path / "a" / "sunrgbd", seed=0)
    other = prepare_small(sources, tmp_path / "b" / "sunrgbd", seed=seeds[0])

    assert read_dense_manifest(first)["source_indices"]["val"] != read_dense_manifest(other)["source_indices"]["val"]
    assert read_dense_manifest(first)["checksum"] != read_dense_manifest(other)["checksum"]


def test_failed_rebuild_keeps_old_copy(sources, tmp_path):
    folder = prepare_small(sources, tmp_path / "data" / "sunrgbd")
    manifest_bytes = (folder / "manifest.json").read_bytes()
    # Frame 4 is a test frame, decoded after every train and val frame.
    depth = sources.depth_path(4)
    depth.write_bytes(depth.read_bytes()[:40])

    with pytest.raises(MtbenchError, match="is not a readable PNG"):
        prepare_small(sources, folder)

    assert (folder / "manifest.json").read_bytes() == manifest_bytes
    assert verify_dense_dataset(folder) == json.loads(manifest_bytes)["checksum"]
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == ["sunrgbd"]


def test_missing_image_referenced_by_meta(sources, tmp_path):
    sources.rgb_path(3).unlink()

    with pytest.raises(MtbenchError, match=r"Files that .*SUNRGBDMeta\.mat references are missing .*\(1 in all\), such as .*img_0004\.jpg \(entry 4\)"):
        prepare_small(sources, tmp_path / "sunrgbd")

    assert not (tmp_path / "sunrgbd").exists()


def test_missing_inpainted_depth(sources, tmp_path):
    sources.depth_path(5, folder="depth_bfx").unlink()

    prepare_small(sources, tmp_path / "raw")
    with pytest.raises(MtbenchError, match=r"depth_bfx/0000006\.png \(entry 6\)"):
        prepare_small(sources, tmp_path / "inpainted", depth_source="inpainted")


def test_frame_in_neither_split(sources, tmp_path):
    write_split_v5(sources.split, [frame for index, frame in enumerate(sources.frames) if index != 5])

    with pytest.raises(MtbenchError, match=r"neither alltrain nor alltest .*kv2/align_kv2/2014-12-17_15-10-11_094959634447"):
        prepare_small(sources, tmp_path / "sunrgbd")


def test_label_count_differs_from_meta(sources, tmp_path):
    write_seg_v73(sources.segmentation, [frame.labels for frame in sources.frames[:5]])

    with pytest.raises(MtbenchError, match="has 5 label images, but .* lists 6 frames"):
        prepare_small(sources, tmp_path / "sunrgbd")


def test_label_size_differs_from_image(sources, tmp_path):
    labels = [frame.labels for frame in sources.frames]
    labels[0] = labels[0][:, :6]
    write_seg_v73(sources.segmentation, labels)

    with pytest.raises(MtbenchError, match=r"NYU0001\.jpg is 8x8 pixels but its label image \(entry 1 of .*\) is 6x8"):
        prepare_small(sources, tmp_path / "sunrgbd")


def test_out_of_range_label_stops_prepare(sources, tmp_path):
    labels = [frame.labels.copy() for frame in sources.frames]
    labels[3][0, 0] = 40
    write_seg_v73(sources.segmentation, labels)

    with pytest.raises(MtbenchError, match=r"SUNRGBD2Dseg\.mat: SUNRGBD2Dseg/seglabel entry 4: labels range from \d+ to 40, outside 0\.\.37"):
        prepare_small(sources, tmp_path / "sunrgbd")


def test_corrupt_colour_image(sources, tmp_path):
    sources.rgb_path(0).write_bytes(b"\xff\xd8\xff\xe0")

    with pytest.raises(MtbenchError, match=r"NYU0001\.jpg is not a readable image"):
        prepare_small(sources, tmp_path / "sunrgbd")


def test_will_not_replace_foreign_folder(sources, tmp_path):
    folder = tmp_path / "sunrgbd"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")

    with pytest.raises(MtbenchError, match="not a prepared dataset"):
        prepare_small(sources, folder)

    assert (folder / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("options", "message"),
    [({"depth_source": "bfx"}, "Invalid depth source 'bfx'"), ({"max_depth": 0.0}, "Invalid maximum depth"), ({"seed": -1}, "Invalid seed")],
)
def test_invalid_options(sources, tmp_path, options, message):
    with pytest.raises(MtbenchError, match=message):
        prepare_small(sources, tmp_path / "sunrgbd", **options)


def test_cli_prepares_at_benchmark_sizes(sources, tmp_path, capsys):
    root = tmp_path / "data"

    status = main(["prepare", "sunrgbd", "--sunrgbd-folder", str(sources.folder), "--data-root", str(root), "--val-fraction", "0.25", "--seed", "3"])

    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert f"Prepared sunrgbd in {root / 'sunrgbd'}" in captured.out.replace("\n", "")
    test = load_dense_split(root / "sunrgbd", "test")
    assert test["image"].shape == (2, 3, 320, 320)
    assert test["depth"].shape == (2, 80, 80)
    assert read_dense_manifest(root / "sunrgbd")["seed"] == 3


def test_cli_needs_source_folder(tmp_path, capsys):
    status = main(["prepare", "sunrgbd", "--data-root", str(tmp_path)])

    assert status == 2
    assert "needs --sunrgbd-folder DIR" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--resolution", "288x384"], "only with 320x320 inputs and 80x80 targets"), (["--download"], "does not download SUN RGB-D")],
)
def test_cli_rejects_other_datasets_options(sources, tmp_path, capsys, arguments, message):
    status = main(["prepare", "sunrgbd", "--sunrgbd-folder", str(sources.folder), "--data-root", str(tmp_path / "data"), *arguments])

    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_cli_names_missing_sources(tmp_path, capsys):
    status = main(["prepare", "sunrgbd", "--sunrgbd-folder", str(tmp_path), "--data-root", str(tmp_path / "data")])

    err = capsys.readouterr().err
    assert status == 2
    assert "SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat" in err
    assert "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat" in err
    assert "Traceback" not in err


def test_fixture_depth_png_is_rotated(sources):
    stored = np.array(Image.open(sources.depth_path(0)))

    # 1000 mm is stored as 1000 << 3.
    assert stored[0, 0] == 8000
    assert default_frames()[0].depth_mm[0, 0] == 1000

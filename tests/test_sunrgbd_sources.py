"""Readers of the SUN RGB-D toolbox files and of the source layout, on fixtures in the published formats."""

from pathlib import PurePosixPath

import h5py
import numpy as np
import pytest
import scipy.io

from mtbench.data.sunrgbd.layout import find_source_files, relative_sunrgbd_path
from mtbench.data.sunrgbd.meta import read_meta
from mtbench.data.sunrgbd.seg_mat import SegLabels
from mtbench.data.sunrgbd.split import OfficialSplit, assign_official_split, carve_validation, read_official_split
from mtbench.errors import MtbenchError
from sunrgbd_fixtures import default_frames, write_meta_v5, write_seg_v73, write_split_v5, write_sunrgbd_sources


@pytest.fixture
def sources(tmp_path):
    return write_sunrgbd_sources(tmp_path / "sunrgbd")


@pytest.mark.parametrize(
    "path",
    [
        "/n/fs/sun3d/data/SUNRGBD/kv2/kinect2data/scene_1",
        "/n/fs/sun3d/data/SUNRGBD/kv2/kinect2data/scene_1/",
        "/data/rqi/SUNRGBD/SUNRGBD/kv2/kinect2data/scene_1",
        "SUNRGBD/kv2/kinect2data/scene_1",
        "kv2/kinect2data/scene_1",
        "C:\\data\\SUNRGBD\\kv2\\kinect2data\\scene_1",
        "/home/user/kv2/SUNRGBD/kv2/kinect2data/scene_1",
        "/mnt//sunrgbd/./kv2/kinect2data/scene_1",
    ],
)
def test_relative_path_normalisation(path):
    assert relative_sunrgbd_path(path) == PurePosixPath("kv2/kinect2data/scene_1")


def test_relative_path_without_sensor():
    with pytest.raises(ValueError, match="contains none of the sensor folders"):
        relative_sunrgbd_path("/n/fs/sun3d/data/SUNRGBD/kinect9/scene_1")


def test_find_source_files(sources):
    found = find_source_files(sources.folder)

    assert found.images == sources.images
    assert found.meta == sources.meta
    assert found.segmentation == sources.segmentation
    assert found.split == sources.split


def test_find_source_files_lists_every_missing_file(tmp_path):
    (tmp_path / "SUNRGBD" / "kv1").mkdir(parents=True)

    with pytest.raises(MtbenchError) as raised:
        find_source_files(tmp_path)

    message = str(raised.value)
    assert str(tmp_path / "SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat") in message
    assert str(tmp_path / "SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat") in message
    assert str(tmp_path / "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat") in message
    assert "SUNRGBDtoolbox.zip" in message
    assert "SUNRGBD.zip" not in message.split("Unzip")[0]


def test_find_source_files_missing_split_only(sources):
    sources.split.unlink()

    with pytest.raises(MtbenchError, match=r"allsplit\.mat") as raised:
        find_source_files(sources.folder)

    assert "SUNRGBDMeta.mat" not in str(raised.value)


def test_find_source_files_rejects_wrong_tree(sources):
    for sensor in ("kv1", "kv2"):
        (sources.images / sensor).rename(sources.folder / sensor)

    with pytest.raises(MtbenchError, match="contains none of the sensor folders"):
        find_source_files(sources.folder)


def test_read_meta_v5(sources):
    records = read_meta(sources.meta)

    assert len(records) == 6
    assert records[0].index == 0
    assert records[0].rgb_path == PurePosixPath("kv1/NYUdata/NYU0001/image/NYU0001.jpg")
    assert records[0].depth_path == PurePosixPath("kv1/NYUdata/NYU0001/depth/NYU0001.png")
    assert records[0].scene == PurePosixPath("kv1/NYUdata/NYU0001")
    assert records[2].sensor == "kv2"
    assert records[0].depth_path_of("inpainted") == PurePosixPath("kv1/NYUdata/NYU0001/depth_bfx/NYU0001.png")


def test_read_meta_v73_equals_v5(tmp_path, sources):
    hdf5 = write_sunrgbd_sources(tmp_path / "hdf5", meta_format="v73")

    assert h5py.is_hdf5(hdf5.meta)
    assert read_meta(hdf5.meta) == read_meta(sources.meta)


def test_read_meta_missing_field(tmp_path):
    path = tmp_path / "SUNRGBDMeta.mat"
    write_meta_v5(path, default_frames(), fields=("sequenceName", "rgbpath", "rgbname"))

    with pytest.raises(MtbenchError, match="has no field 'depthpath'"):
        read_meta(path)


def test_read_meta_wrong_variable(tmp_path):
    path = tmp_path / "SUNRGBDMeta.mat"
    scipy.io.savemat(path, {"SUNRGBDMeta3DBB": np.zeros(3)})

    with pytest.raises(MtbenchError, match=r"no variable SUNRGBDMeta \(variables found: SUNRGBDMeta3DBB\)"):
        read_meta(path)


def test_read_meta_not_a_mat_file(tmp_path):
    path = tmp_path / "SUNRGBDMeta.mat"
    path.write_text("<html>404</html>" * 20)

    with pytest.raises(MtbenchError, match="is not a readable MATLAB .mat file"):
        read_meta(path)


def test_read_official_split(sources):
    split = read_official_split(sources.split)

    assert split.train == {
        PurePosixPath("kv1/NYUdata/NYU0001"),
        PurePosixPath("kv2/kinect2data/000003_2014-05-26_14-23-37_260595134347_rgbf000103-resize"),
        PurePosixPath("kv1/b3dodata/img_0004"),
        PurePosixPath("kv2/align_kv2/2014-12-17_15-10-11_094959634447"),
    }
    assert split.test == {PurePosixPath("kv1/NYUdata/NYU0002"), PurePosixPath("kv2/kinect2data/000005_2014-05-26_14-30-00_260595134347_rgbf000005-resize")}


def test_split_with_other_prefix_assigns_same(tmp_path, sources):
    other = tmp_path / "allsplit.mat"
    write_split_v5(other, sources.frames, prefix="/data/rqi/SUNRGBD/SUNRGBD/")

    assert read_official_split(other) == read_official_split(sources.split)


def test_split_scene_in_both_lists(tmp_path):
    frames = default_frames()
    path = tmp_path / "allsplit.mat"
    write_split_v5(path, frames, extra_train=(f"/x/SUNRGBD/{frames[1].scene}/",))

    with pytest.raises(MtbenchError, match="in both alltrain and alltest"):
        read_official_split(path)


def test_split_missing_variable(tmp_path):
    path = tmp_path / "allsplit.mat"
    scipy.io.savemat(path, {"alltrain": np.array([["/n/SUNRGBD/kv1/a"]], dtype=object)})

    with pytest.raises(MtbenchError, match=r"no variable alltest \(variables found: alltrain\)"):
        read_official_split(path)


def test_assign_official_split(sources):
    messages = []

    assigned = assign_official_split(read_meta(sources.meta), read_official_split(sources.split), sources.split, messages.append)

    assert assigned == {"train": [0, 2, 3, 5], "test": [1, 4]}
    assert messages == []


def test_assign_frame_in_neither_split(sources):
    records = read_meta(sources.meta)
    official = read_official_split(sources.split)
    without_nyu0002 = OfficialSplit(train=official.train, test=official.test - {PurePosixPath("kv1/NYUdata/NYU0002")})

    with pytest.raises(MtbenchError, match=r"neither alltrain nor alltest .*\(1 in all\), such as kv1/NYUdata/NYU0002"):
        assign_official_split(records, without_nyu0002, sources.split, lambda message: None)


def test_assign_logs_unused_split_entries(sources):
    official = read_official_split(sources.split)
    extended = OfficialSplit(train=official.train | {PurePosixPath("xtion/sun3ddata/extra")}, test=official.test)
    messages = []

    assign_official_split(read_meta(sources.meta), extended, sources.split, messages.append)

    assert len(messages) == 1
    assert "(1 in all)" in messages[0]


def test_carve_validation_is_seeded():
    train = list(range(100, 120))

    kept, val = carve_validation(train, 0.25, seed=3)

    assert len(val) == 5
    assert len(kept) == 15
    assert sorted(kept + val) == train
    assert kept == sorted(kept)
    assert val == sorted(val)
    assert carve_validation(train, 0.25, seed=3) == (kept, val)
    assert carve_validation(train, 0.25, seed=4) != (kept, val)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 0.01])
def test_carve_validation_rejects_fraction(fraction):
    with pytest.raises(MtbenchError, match="--val-fraction"):
        carve_validation(list(range(20)), fraction, seed=0)


def test_seg_labels_read_transposed(sources):
    with SegLabels(sources.segmentation) as labels:
        assert len(labels) == 6
        first = labels.read(0)
        kv2 = labels.read(2)

    assert first.dtype == np.uint8
    np.testing.assert_array_equal(first, sources.frames[0].labels)
    assert kv2.shape == (8, 12)
    np.testing.assert_array_equal(kv2, sources.frames[2].labels)


def test_seg_labels_accept_double(tmp_path):
    path = tmp_path / "SUNRGBD2Dseg.mat"
    write_seg_v73(path, [np.array([[0, 37], [5, 1]], dtype=np.uint8)], label_dtype=np.float64)

    with SegLabels(path) as labels:
        assert labels.read(0).tolist() == [[0, 37], [5, 1]]


def test_seg_labels_out_of_range(tmp_path):
    path = tmp_path / "SUNRGBD2Dseg.mat"
    write_seg_v73(path, [np.zeros((2, 2), dtype=np.uint8), np.array([[0, 38], [5, 1]], dtype=np.uint8)])

    with SegLabels(path) as labels:
        labels.read(0)
        with pytest.raises(MtbenchError, match=r"seglabel entry 2: labels range from 0 to 38, outside 0\.\.37"):
            labels.read(1)


def test_seg_labels_not_integer(tmp_path):
    path = tmp_path / "SUNRGBD2Dseg.mat"
    write_seg_v73(path, [np.array([[0.5, 1.0]])], label_dtype=np.float64)

    with SegLabels(path) as labels, pytest.raises(MtbenchError, match="not integers"):
        labels.read(0)


def test_seg_labels_wrong_group_name(tmp_path):
    path = tmp_path / "SUNRGBD2Dseg.mat"
    write_seg_v73(path, [np.zeros((2, 2), dtype=np.uint8)], group_name="SUNRGBD2DSeg")

    with pytest.raises(MtbenchError, match=r"no struct 'SUNRGBD2Dseg' \(top-level names found: #refs#, SUNRGBD2DSeg\)"):
        SegLabels(path)


def test_seg_labels_wrong_field_name(tmp_path):
    path = tmp_path / "SUNRGBD2Dseg.mat"
    write_seg_v73(path, [np.zeros((2, 2), dtype=np.uint8)], field_name="seglabelall")

    with pytest.raises(MtbenchError, match=r"has no field 'seglabel' \(fields found: seglabelall\)"):
        SegLabels(path)


def test_seg_labels_reject_mat_v5(tmp_path):
    path = tmp_path / "SUNRGBD2Dseg.mat"
    scipy.io.savemat(path, {"SUNRGBD2Dseg": np.zeros(2)})

    with pytest.raises(MtbenchError, match=r"not a MATLAB v7\.3 \(HDF5\) file"):
        SegLabels(path)

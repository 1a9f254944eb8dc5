"""Bad NYUv2 and SUN RGB-D sources for `mtbench prepare`, and a damaged prepared NYUv2 for `mtbench run`.

Every test starts from a data root that already contains a prepared NYUv2 and SUN
RGB-D and checks that the failed command leaves both byte for byte and still
verified.
"""

import errno
import math
import shutil

import h5py
import numpy as np
import pytest

from mtbench.cli.main import main
from mtbench.data.dense_format import verify_dense_dataset
from nyuv2_fixtures import official_arrays, preprocessed_arrays, write_labeled_mat, write_official_folder, write_preprocessed_folder
from sunrgbd_fixtures import write_seg_v73, write_sunrgbd_sources
from test_bad_inputs import assert_user_error, fail_writes_under, isolated_paths, run_cli, tree_digest  # noqa: F401

LABELED = "nyu_depth_v2_labeled.mat"


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """Tiny NYUv2 official files and SUN RGB-D tree, and a data root prepared from them."""
    base = tmp_path_factory.mktemp("dense")
    nyu = write_official_folder(base / "nyu", official_arrays(count=3, height=12, width=16))
    sun = write_sunrgbd_sources(base / "sun").folder
    root = base / "data"
    assert main(["prepare", "nyuv2", "--nyuv2-folder", str(nyu), "--data-root", str(root), "--val-fraction", "0.5"]) == 0
    assert main(["prepare", "sunrgbd", "--sunrgbd-folder", str(sun), "--data-root", str(root), "--val-fraction", "0.25"]) == 0
    return base


@pytest.fixture
def workspace(originals, tmp_path, capsys):
    """Writable copies of the module's sources and prepared data root, as (nyu, sun, data root)."""
    for name in ("nyu", "sun", "data"):
        shutil.copytree(originals / name, tmp_path / name)
    capsys.readouterr()
    return tmp_path / "nyu", tmp_path / "sun", tmp_path / "data"


def assert_prepared_intact(root, digest) -> None:
    verify_dense_dataset(root / "nyuv2")
    verify_dense_dataset(root / "sunrgbd")
    assert tree_digest(root) == digest


def prepare_nyuv2(capsys, folder, root, *options):
    return run_cli(capsys, "prepare", "nyuv2", "--nyuv2-folder", folder, "--data-root", root, "--val-fraction", "0.5", *options)


# The official NYUv2 files.


def test_mat_with_swapped_axes(capsys, workspace):
    nyu, _, root = workspace
    digest = tree_digest(root)
    write_labeled_mat(nyu / LABELED, official_arrays(count=3, height=12, width=16), axes="swapped")

    result = prepare_nyuv2(capsys, nyu, root)
    assert_user_error(result, LABELED, "(3, 3, 12, 16)", "swapped")
    assert_prepared_intact(root, digest)


def test_mat_with_wrong_image_dtype(capsys, workspace):
    nyu, _, root = workspace
    digest = tree_digest(root)
    write_labeled_mat(nyu / LABELED, official_arrays(count=3, height=12, width=16), image_dtype=np.float64)

    result = prepare_nyuv2(capsys, nyu, root)
    assert_user_error(result, LABELED, "dtype float64, expected uint8")
    assert_prepared_intact(root, digest)


def test_mat_with_integer_depths(capsys, workspace):
    nyu, _, root = workspace
    digest = tree_digest(root)
    with h5py.File(nyu / LABELED, "r+") as file:
        depths = file["depths"][...]
        del file["depths"]
        file.create_dataset("depths", data=(depths * 1000).astype(np.uint16))

    result = prepare_nyuv2(capsys, nyu, root)
    assert_user_error(result, LABELED, "'depths' has dtype uint16")
    assert_prepared_intact(root, digest)


def test_truncated_mat(capsys, workspace):
    nyu, _, root = workspace
    digest = tree_digest(root)
    path = nyu / LABELED
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    result = prepare_nyuv2(capsys, nyu, root)
    assert_user_error(result, str(path))
    assert_prepared_intact(root, digest)


def test_missing_split_file(capsys, workspace):
    nyu, _, root = workspace
    digest = tree_digest(root)
    (nyu / "splits.mat").unlink()

    result = prepare_nyuv2(capsys, nyu, root)
    assert_user_error(result, str(nyu / "splits.mat"), "--download")
    assert_prepared_intact(root, digest)


def test_label_out_of_range(capsys, workspace):
    nyu, _, root = workspace
    digest = tree_digest(root)
    arrays = official_arrays(count=3, height=12, width=16)
    arrays.labels[1, 0, 0] = 900
    write_labeled_mat(nyu / LABELED, arrays)

    result = prepare_nyuv2(capsys, nyu, root)
    assert_user_error(result, LABELED, "image 2", "0 to 900")
    assert_prepared_intact(root, digest)


def test_depth_in_millimetres(capsys, workspace):
    nyu, _, root = workspace
    digest = tree_digest(root)
    arrays = official_arrays(count=3, height=12, width=16)
    arrays.depths *= 1000
    write_labeled_mat(nyu / LABELED, arrays)

    result = prepare_nyuv2(capsys, nyu, root)
    assert_user_error(result, LABELED, "millimetres")
    assert_prepared_intact(root, digest)


def test_empty_nyuv2_folder(capsys, workspace, tmp_path):
    _, _, root = workspace
    digest = tree_digest(root)
    (tmp_path / "empty").mkdir()

    result = prepare_nyuv2(capsys, tmp_path / "empty", root)
    assert_user_error(result, str(tmp_path / "empty"), "is empty")
    assert_prepared_intact(root, digest)


@pytest.mark.parametrize("fraction", ["1.5", "0", "-0.1"])
def test_invalid_val_fraction(capsys, workspace, fraction):
    nyu, _, root = workspace
    digest = tree_digest(root)
    result = run_cli(capsys, "prepare", "nyuv2", "--nyuv2-folder", nyu, "--data-root", root, "--val-fraction", fraction)
    assert_user_error(result, f"Invalid --val-fraction {float(fraction)}")
    assert_prepared_intact(root, digest)


def test_prepare_nyuv2_on_full_disk(capsys, workspace):
    nyu, _, root = workspace
    digest = tree_digest(root)
    with pytest.MonkeyPatch.context() as faults:
        fail_writes_under(faults, root, errno.ENOSPC)
        result = prepare_nyuv2(capsys, nyu, root, "--seed", "3")

    assert_user_error(result, f"Cannot write {root / 'nyuv2'}", "No space left on device")
    assert_prepared_intact(root, digest)


# The preprocessed .npy copy.


@pytest.fixture
def npy_copy(tmp_path):
    small = preprocessed_arrays(height=24, width=32)
    return write_preprocessed_folder(tmp_path / "npy", small), small


def prepare_npy(capsys, folder, root):
    return run_cli(capsys, "prepare", "nyuv2", "--nyuv2-source", "preprocessed", "--nyuv2-folder", folder, "--data-root", root, "--val-fraction", "0.25")


def test_nan_in_preprocessed_image(capsys, workspace, npy_copy):
    _, _, root = workspace
    folder, small = npy_copy
    digest = tree_digest(root)
    image = small.image["val"][1].copy()
    image[3, 4, 0] = math.nan
    np.save(folder / "val" / "image" / "1.npy", image)

    result = prepare_npy(capsys, folder, root)
    assert_user_error(result, f"{folder / 'val'} image 1: the image contains NaN or infinite values")
    assert_prepared_intact(root, digest)


def test_infinite_preprocessed_normal(capsys, workspace, npy_copy):
    _, _, root = workspace
    folder, small = npy_copy
    digest = tree_digest(root)
    normal = small.normal["train"][2].copy()
    normal[0, 0] = (math.inf, 0.0, 0.0)
    np.save(folder / "train" / "normal" / "2.npy", normal)

    result = prepare_npy(capsys, folder, root)
    assert_user_error(result, f"{folder / 'train'} image 2: the normals contain NaN or infinite values")
    assert_prepared_intact(root, digest)


def test_preprocessed_label_out_of_range(capsys, workspace, npy_copy):
    _, _, root = workspace
    folder, small = npy_copy
    digest = tree_digest(root)
    label = small.label["train"][0].copy()
    label[5, 5] = 13
    np.save(folder / "train" / "label" / "0.npy", label)

    result = prepare_npy(capsys, folder, root)
    assert_user_error(result, f"{folder / 'train'} image 0: labels range from -1 to 13, expected -1 (void) to 12")
    assert_prepared_intact(root, digest)


def test_preprocessed_depth_in_millimetres(capsys, workspace, npy_copy):
    _, _, root = workspace
    folder, small = npy_copy
    digest = tree_digest(root)
    np.save(folder / "train" / "depth" / "1.npy", small.depth["train"][1] * 1000)

    result = prepare_npy(capsys, folder, root)
    assert_user_error(result, f"{folder / 'train'} image 1: depth reaches 1100.0", "millimetres")
    assert_prepared_intact(root, digest)


# SUN RGB-D.


def prepare_sunrgbd(capsys, folder, root, *options):
    return run_cli(capsys, "prepare", "sunrgbd", "--sunrgbd-folder", folder, "--data-root", root, "--val-fraction", "0.25", *options)


def test_sunrgbd_missing_split_file(capsys, workspace):
    _, sun, root = workspace
    digest = tree_digest(root)
    split = sun / "SUNRGBDtoolbox" / "traintestSUNRGBD" / "allsplit.mat"
    split.unlink()

    result = prepare_sunrgbd(capsys, sun, root)
    assert_user_error(result, f"SUN RGB-D sources missing in {sun}", str(split))
    assert_prepared_intact(root, digest)


def test_sunrgbd_label_out_of_range(capsys, workspace):
    _, sun, root = workspace
    digest = tree_digest(root)
    labels = [frame.labels.copy() for frame in write_sunrgbd_sources(sun).frames]
    labels[3][0, 0] = 40
    write_seg_v73(sun / "SUNRGBDtoolbox" / "Metadata" / "SUNRGBD2Dseg.mat", labels)

    result = prepare_sunrgbd(capsys, sun, root)
    assert_user_error(result, "SUNRGBD2Dseg.mat: SUNRGBD2Dseg/seglabel entry 4", "to 40, outside 0..37")
    assert_prepared_intact(root, digest)


def test_sunrgbd_empty_folder(capsys, workspace, tmp_path):
    _, _, root = workspace
    digest = tree_digest(root)
    (tmp_path / "empty").mkdir()

    result = prepare_sunrgbd(capsys, tmp_path / "empty", root)
    assert_user_error(result, f"SUN RGB-D sources missing in {tmp_path / 'empty'}", "Unzip SUNRGBD.zip")
    assert_prepared_intact(root, digest)


def test_sunrgbd_with_other_resolution(capsys, workspace):
    _, sun, root = workspace
    digest = tree_digest(root)
    result = prepare_sunrgbd(capsys, sun, root, "--resolution", "288x384")
    assert_user_error(result, "not --resolution 288x384", "Drop --resolution")
    assert_prepared_intact(root, digest)


# A prepared NYUv2 damaged after `mtbench prepare`.


def test_prepared_nyuv2_checksum_mismatch(capsys, workspace, tmp_path):
    _, _, root = workspace
    path = root / "nyuv2" / "train_depth.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))

    result = run_cli(
        capsys, "run", "--benchmark", "nyuv2", "--method", "equal", "--epochs", "1", "--data-root", root,
        "--leaderboard-dir", tmp_path / "leaderboard", "--device", "cpu",
    )  # fmt: skip
    assert_user_error(result, str(path), "sha256")
    assert path.read_bytes() == bytes(data)
    assert not (tmp_path / "leaderboard" / "results" / "nyuv2.jsonl").exists()

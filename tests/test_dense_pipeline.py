"""The dense benchmarks end to end: published-format files, prepare, a SegNet run and its record."""

import json
import math

import pytest
from nyuv2_fixtures import official_arrays, write_official_folder
from sunrgbd_fixtures import write_sunrgbd_sources
from test_dense_benchmark import small_definitions, write_nyuv2

from mtbench.cli.main import main
from mtbench.methods import get_method, list_methods

TINY_SEGNET = ["--no-pretrained", "--width", "2", "--epochs", "1", "--device", "cpu"]


def _run(tmp_path, *arguments) -> dict:
    status = main(["run", *arguments, "--leaderboard-dir", str(tmp_path / "leaderboard"), "--runs-dir", str(tmp_path / "runs")])
    assert status == 0
    (results,) = (tmp_path / "leaderboard" / "results").glob("*.jsonl")
    return json.loads(results.read_text().splitlines()[-1])


def _assert_finite_scores(record: dict) -> None:
    for split in ("validation", "test"):
        for name, value in record[split].items():
            assert math.isfinite(value), (split, name)


def test_nyuv2_from_official_files_to_record(tmp_path):
    official = write_official_folder(tmp_path / "official", official_arrays(count=6))
    root = tmp_path / "data"
    assert main(["prepare", "nyuv2", "--nyuv2-folder", str(official), "--data-root", str(root), "--val-fraction", "0.25"]) == 0

    record = _run(tmp_path, "--benchmark", "nyuv2", "--method", "cosreg", "--batch-size", "2", "--data-root", str(root), *TINY_SEGNET)

    assert record["model_config"] == {"width": 2, "pretrained": False}
    assert {"segmentation_miou", "depth_rmse", "normal_mean_angle_error"} <= set(record["test"])
    _assert_finite_scores(record)
    assert math.isfinite(record["sigma_cos"])


def test_sunrgbd_from_official_tree_to_record_with_flips(tmp_path):
    sources = write_sunrgbd_sources(tmp_path / "source")
    root = tmp_path / "data"
    assert main(["prepare", "sunrgbd", "--sunrgbd-folder", str(sources.folder), "--data-root", str(root), "--val-fraction", "0.25"]) == 0

    record = _run(tmp_path, "--benchmark", "sunrgbd", "--method", "equal", "--batch-size", "3", "--data-root", str(root), *TINY_SEGNET)

    assert {"segmentation13_miou", "segmentation37_miou", "depth_rmse"} <= set(record["test"])
    assert record["train_config"]["lr_decay_every"] == 2
    _assert_finite_scores(record)


@pytest.fixture(scope="module")
def small_nyuv2(tmp_path_factory):
    """A repository root with 32x32 NYUv2 definitions and a data root prepared at that size."""
    folder = tmp_path_factory.mktemp("small")
    repository = small_definitions(folder / "repository")
    write_nyuv2(folder / "data" / "nyuv2", (32, 32), (8, 8))
    return repository, folder / "data"


@pytest.mark.parametrize("method", [name for name in list_methods() if not get_method(name).single_task])
def test_every_method_trains_segnet_on_nyuv2(method, small_nyuv2, tmp_path, monkeypatch):
    repository, data = small_nyuv2
    monkeypatch.setenv("MTBENCH_ROOT", str(repository))

    record = _run(tmp_path, "--benchmark", "nyuv2", "--method", method, "--batch-size", "4", "--data-root", str(data), *TINY_SEGNET)

    _assert_finite_scores(record)
    for value in record["history"][0]["train_loss"].values():
        assert math.isfinite(value)

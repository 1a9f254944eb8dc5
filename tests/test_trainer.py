import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from mtbench.benchmarks.multidigitmnist import MultiDigitMNISTBenchmark
from mtbench.train.config import RunConfig, TrainConfig
from mtbench.train.run import run_configuration
from mtbench.train.trainer import TrainingDiverged

QUIET = Console(quiet=True)


def make_config(data_root: Path, tmp_path: Path, method: str = "equal", method_config=None, epochs: int = 2, **model) -> RunConfig:
    model_config = {"width": 8, "kernel_size": 3, "hidden_units": 16, "batchnorm": False, "dropout": 0.0, **model}
    return RunConfig(
        benchmark="multidigitmnist",
        protocol="multidigitmnist-v1",
        method=method,
        method_config=method_config or {},
        tasks=("left", "right"),
        model="multidigit_cnn",
        model_config=model_config,
        train=TrainConfig(epochs=epochs, batch_size=16, learning_rate=3e-3),
        seed=0,
        device="cpu",
        data_root=data_root,
        leaderboard_dir=tmp_path / "leaderboard",
        runs_dir=tmp_path / "runs",
    )


TIMING_FIELDS = {"seconds_per_step", "wall_seconds", "created_at", "peak_memory_mb"}


def without_timings(record: dict) -> dict:
    """Return ``record`` without the fields that measure time, date or memory, which differ between identical runs."""
    record = {key: value for key, value in record.items() if key not in TIMING_FIELDS}
    record["history"] = [{key: value for key, value in entry.items() if key != "seconds"} for entry in record["history"]]
    return record


def read_records(tmp_path: Path) -> list[dict]:
    path = tmp_path / "leaderboard" / "results" / "multidigitmnist.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_equal_run_writes_complete_record(tiny_data_root, tmp_path):
    (record,) = run_configuration(make_config(tiny_data_root, tmp_path), [0], QUIET)

    assert read_records(tmp_path) == [record]
    assert record["status"] == "finished"
    assert set(record["test"]) == {"left_accuracy", "right_accuracy", "harmonic_accuracy"}
    assert 1 <= record["selected_epoch"] <= 2
    assert len(record["history"]) == 2
    assert math.isfinite(record["sigma_cos"])
    assert -1 <= record["mu_cos"] <= 1
    assert record["first_epoch_sigma_cos"] == record["history"][0]["sigma_cos"]

    cosines = np.load(tmp_path / "leaderboard" / record["cosines_file"])
    assert cosines.shape == (2 * 384 // 16, 1)
    assert np.all(np.abs(cosines) <= 1.0 + 1e-6)
    assert (tmp_path / "runs" / "multidigitmnist" / record["run_id"] / "checkpoint.pt").is_file()


def test_selected_epoch_has_best_validation(tiny_data_root, tmp_path):
    (record,) = run_configuration(make_config(tiny_data_root, tmp_path, epochs=3), [0], QUIET)
    scores = [entry["validation"]["harmonic_accuracy"] for entry in record["history"]]
    assert record["selected_epoch"] == 1 + scores.index(max(scores))
    assert record["validation"] == record["history"][record["selected_epoch"] - 1]["validation"]


def test_training_learns_the_digits(tiny_data_root, tmp_path):
    (record,) = run_configuration(make_config(tiny_data_root, tmp_path, epochs=6), [0], QUIET)
    # Chance is 0.2 per task; the bars are easy to tell apart.
    assert record["validation"]["harmonic_accuracy"] > 0.5


def test_same_seed_same_result(tiny_data_root, tmp_path):
    first = run_configuration(make_config(tiny_data_root, tmp_path / "a", method="cosreg", method_config={"lambda": 1.0, "scheduled": False}), [3], QUIET)[0]
    second = run_configuration(make_config(tiny_data_root, tmp_path / "b", method="cosreg", method_config={"lambda": 1.0, "scheduled": False}), [3], QUIET)[0]
    for key in ("test", "validation", "mu_cos", "sigma_cos", "selected_epoch", "run_id"):
        assert first[key] == second[key]
    assert [entry["train_loss"] for entry in first["history"]] == [entry["train_loss"] for entry in second["history"]]


def test_different_seeds_give_different_runs(tiny_data_root, tmp_path):
    records = run_configuration(make_config(tiny_data_root, tmp_path, epochs=1), [0, 1], QUIET)
    assert records[0]["run_id"] != records[1]["run_id"]
    assert records[0]["config_id"] == records[1]["config_id"]
    assert records[0]["history"][0]["train_loss"] != records[1]["history"][0]["train_loss"]


def test_cosreg_logs_penalty(tiny_data_root, tmp_path):
    config = make_config(tiny_data_root, tmp_path, method="cosreg", method_config={"lambda": 1.0, "scheduled": True}, epochs=1, batchnorm=True)
    (record,) = run_configuration(config, [0], QUIET)
    assert 0.0 <= record["history"][0]["train"]["penalty"] <= 1.0
    assert record["method_config"] == {"lambda": 1.0, "scheduled": True}


def test_single_writes_one_record_per_task(tiny_data_root, tmp_path):
    records = run_configuration(make_config(tiny_data_root, tmp_path, method="single", epochs=1), [0], QUIET)
    assert [record["tasks"] for record in records] == [["left"], ["right"]]
    assert set(records[0]["test"]) == {"left_accuracy"}
    assert records[0]["selection_metric"] == "left_accuracy"
    assert records[0]["sigma_cos"] is None
    assert records[0]["cosines_file"] is None


def test_nan_loss_stops_run_without_record(tiny_data_root, tmp_path, monkeypatch):
    original = MultiDigitMNISTBenchmark.task_loss
    calls = {"count": 0}

    def poisoned(self, task, output, target):
        calls["count"] += 1
        loss = original(self, task, output, target)
        return loss * float("nan") if calls["count"] > 5 and task == "right" else loss

    monkeypatch.setattr(MultiDigitMNISTBenchmark, "task_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"task 'right' is nan at training step 2 with method 'equal'"):
        run_configuration(make_config(tiny_data_root, tmp_path), [0], QUIET)
    assert not (tmp_path / "leaderboard" / "results" / "multidigitmnist.jsonl").exists()


def test_checkpoint_loads_with_weights_only(tiny_data_root, tmp_path):
    (record,) = run_configuration(make_config(tiny_data_root, tmp_path, epochs=1), [0], QUIET)
    state = torch.load(tmp_path / "runs" / "multidigitmnist" / record["run_id"] / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    assert "encoder.0.0.weight" in state["model"]

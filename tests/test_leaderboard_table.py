"""Leaderboard aggregation, selection on validation, published rows and the generated markdown."""

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest

from mtbench.errors import MtbenchError
from mtbench.leaderboard import append_record, regenerate
from mtbench.leaderboard.aggregate import (
    Variant,
    aggregate,
    metric_direction,
    row_label,
    summarize,
)
from mtbench.leaderboard.markdown import format_metric, format_statistic
from mtbench.leaderboard.published import read_published
from mtbench.leaderboard.records import results_path
from mtbench.train.config import configuration_id, run_id_for

BENCHMARK = "multidigitmnist"
REPOSITORY_LEADERBOARD = Path(__file__).resolve().parents[1] / "leaderboard"


def _hash(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _harmonic(values: list[float]) -> float:
    return 0.0 if 0 in values else len(values) / sum(1 / value for value in values)


def make_record(
    seed: int,
    method: str = "equal",
    method_config: dict | None = None,
    tasks: tuple[str, ...] = ("left", "right"),
    test: dict | None = None,
    validation: dict | None = None,
    batchnorm: bool = False,
    dropout: float = 0.0,
    status: str = "finished",
    **overrides,
) -> dict:
    """Return a valid schema-1 record; ``test`` and ``validation`` give task accuracies, harmonic is added."""
    method_config = method_config or {}
    model_config = {"width": 20, "kernel_size": 3, "hidden_units": 50, "batchnorm": batchnorm, "dropout": dropout}
    train_config = {"epochs": 10, "batch_size": 64, "learning_rate": 0.001, "optimizer": "adam"}
    config_id = _hash([method, method_config, list(tasks), model_config, train_config])

    def metrics(accuracies: dict | None) -> dict:
        values = dict(accuracies or {f"{task}_accuracy": 0.9 for task in tasks})
        if len(tasks) > 1 and "harmonic_accuracy" not in values:
            values["harmonic_accuracy"] = _harmonic([values[f"{task}_accuracy"] for task in tasks])
        return values

    single = len(tasks) == 1
    record = {
        "schema_version": 1,
        "status": status,
        "failure": None if status == "finished" else "ValueError: loss is NaN",
        "run_id": _hash([config_id, seed]),
        "config_id": config_id,
        "benchmark": BENCHMARK,
        "protocol": "multidigitmnist-v1",
        "method": method,
        "method_config": method_config,
        "tasks": list(tasks),
        "model": "multidigit_cnn",
        "model_config": model_config,
        "train_config": train_config,
        "seed": seed,
        "dataset_checksum": "sha256:0123abcd",
        "selection_metric": f"{tasks[0]}_accuracy" if single else "harmonic_accuracy",
        "selected_epoch": 9,
        "validation": metrics(validation),
        "test": metrics(test),
        "history": [],
        "mu_cos": None if single else 0.01,
        "sigma_cos": None if single else 0.2,
        "first_epoch_sigma_cos": None if single else 0.3,
        "cosines_file": None,
        "seconds_per_step": 0.01,
        "peak_memory_mb": None,
        "wall_seconds": 100.0,
        "device": "cpu",
        "mtbench_version": "0.1.0",
        "torch_version": "2.4.0",
        "git_commit": None,
        "created_at": "2024-05-01T12:00:00+00:00",
    }
    record.update(overrides)
    if "config_id" not in overrides:
        record["config_id"] = configuration_id(record)
    if "run_id" not in overrides:
        record["run_id"] = run_id_for(record["config_id"], record["seed"])
    return record


def _accuracies(left: float, right: float) -> dict:
    return {"left_accuracy": left, "right_accuracy": right}


def _single(seed: int, task: str, test_accuracy: float, validation_accuracy: float = 0.9) -> dict:
    return make_record(
        seed, method="single", tasks=(task,), test={f"{task}_accuracy": test_accuracy}, validation={f"{task}_accuracy": validation_accuracy}
    )


def test_summarize_three_seeds():
    statistic = summarize([0.90, 0.92, 0.97])

    assert statistic.count == 3
    assert statistic.mean == pytest.approx(0.93)
    # Deviations -0.03, -0.01, 0.04: squares sum to 0.0026, divided by n - 1 = 2 gives 0.0013.
    assert statistic.std == pytest.approx(math.sqrt(0.0013))
    assert format_statistic(statistic, scale=100.0) == "93.00 (3.61)"


def test_summarize_single_seed_has_no_std():
    statistic = summarize([0.9])

    assert statistic.mean == pytest.approx(0.9)
    assert statistic.std is None
    assert format_statistic(statistic, scale=100.0) == "90.00 (-)"
    assert format_metric({"harmonic_accuracy": statistic}, "harmonic_accuracy") == "90.00 (-)"


def test_summarize_skips_missing_values():
    assert summarize([None, None]).mean is None
    assert summarize([None, 0.2, 0.4]).count == 2
    assert format_statistic(summarize([])) == "-"


def test_row_groups_seeds_of_one_configuration():
    records = [make_record(seed, test=_accuracies(left, 0.8)) for seed, left in enumerate([0.90, 0.92, 0.97])]

    leaderboard = aggregate(records, BENCHMARK)

    assert len(leaderboard.rows) == 1
    row = leaderboard.rows[0]
    assert row.seeds == [0, 1, 2]
    assert row.test["left_accuracy"].mean == pytest.approx(0.93)
    assert row.test["left_accuracy"].std == pytest.approx(math.sqrt(0.0013))
    assert row.test["right_accuracy"].std == pytest.approx(0.0)
    assert row.cosine["sigma_cos"].mean == pytest.approx(0.2)
    assert row.seconds_per_step.mean == pytest.approx(0.01)
    assert row.selected


def test_failed_records_are_left_out():
    records = [make_record(0, test=_accuracies(0.9, 0.9)), make_record(1, status="failed", test=_accuracies(0.1, 0.1))]

    leaderboard = aggregate(records, BENCHMARK)

    assert leaderboard.rows[0].seeds == [0]
    assert leaderboard.rows[0].test["left_accuracy"].mean == pytest.approx(0.9)
    assert any("1 failed run" in note for note in leaderboard.notes)


def test_single_task_join_harmonic_per_seed():
    # Seed 0: H(0.5, 1.0) = 2 / (2 + 1) = 0.6667. Seed 1: a zero accuracy gives H = 0.0.
    records = [_single(0, "left", 0.5), _single(0, "right", 1.0), _single(1, "left", 0.0), _single(1, "right", 0.8)]

    leaderboard = aggregate(records, BENCHMARK)

    assert len(leaderboard.rows) == 1
    row = leaderboard.rows[0]
    assert row.label == "Single task"
    assert row.seeds == [0, 1]
    harmonic = row.test["harmonic_accuracy"]
    assert harmonic.mean == pytest.approx(1 / 3)
    assert harmonic.std == pytest.approx(math.sqrt(2) * (2 / 3 - 1 / 3))
    assert row.test["left_accuracy"].mean == pytest.approx(0.25)
    assert row.test["right_accuracy"].mean == pytest.approx(0.9)
    assert row.validation["harmonic_accuracy"].mean == pytest.approx(0.9)
    assert row.cosine["sigma_cos"].mean is None
    assert row.seconds_per_step.mean == pytest.approx(0.02)


def test_single_task_join_incomplete_seed():
    records = [_single(seed, "left", 0.9) for seed in (0, 1, 2)] + [_single(seed, "right", 0.8) for seed in (0, 1)]
    records.append(make_record(0))

    leaderboard = aggregate(records, BENCHMARK)

    single_rows = [row for row in leaderboard.rows if row.method == "single"]
    assert len(single_rows) == 1
    assert single_rows[0].seeds == [0, 1]
    assert single_rows[0].test["harmonic_accuracy"].mean == pytest.approx(_harmonic([0.9, 0.8]))
    assert any("seed 2" in note and "right" in note for note in leaderboard.notes)


def test_single_task_join_no_complete_seed():
    records = [_single(0, "left", 0.9), _single(1, "right", 0.8)]

    leaderboard = aggregate(records, BENCHMARK)

    assert leaderboard.rows == []
    assert any("no seed has a single-task run for every task" in note for note in leaderboard.notes)


def test_selection_uses_validation_not_test():
    records = []
    for seed in range(2):
        # lambda 0.1 is better on validation, lambda 1.0 is better on test.
        records.append(make_record(seed, "cosreg", {"lambda": 0.1, "scheduled": False}, validation=_accuracies(0.95, 0.95), test=_accuracies(0.80, 0.80)))
        records.append(make_record(seed, "cosreg", {"lambda": 1.0, "scheduled": False}, validation=_accuracies(0.90, 0.90), test=_accuracies(0.99, 0.99)))

    leaderboard = aggregate(records, BENCHMARK)

    selected = leaderboard.selected_rows
    assert len(selected) == 1
    assert selected[0].method_config["lambda"] == 0.1
    assert selected[0].label == "CosReg (lambda=0.1)"
    assert [row.selected for row in leaderboard.rows] == [True, False]


def test_selection_is_per_variant():
    records = [
        make_record(0, "cosreg", {"lambda": 0.1}, validation=_accuracies(0.95, 0.95)),
        make_record(0, "cosreg", {"lambda": 1.0}, validation=_accuracies(0.90, 0.90), batchnorm=True),
        make_record(0, validation=_accuracies(0.80, 0.80)),
    ]

    leaderboard = aggregate(records, BENCHMARK)

    assert [row.label for row in leaderboard.selected_rows] == ["No reg", "CosReg (lambda=0.1)", "CosReg (lambda=1) + BatchNorm"]


def test_bf16_configuration_is_its_own_variant():
    train_config = {"epochs": 10, "batch_size": 64, "learning_rate": 0.001, "optimizer": "adam", "precision": "bf16"}
    records = [
        make_record(0, validation=_accuracies(0.80, 0.80)),
        make_record(0, validation=_accuracies(0.95, 0.95), train_config=train_config),
    ]

    leaderboard = aggregate(records, BENCHMARK)

    assert [row.label for row in leaderboard.selected_rows] == ["No reg", "No reg + bf16"]


def test_selection_tie_breaks():
    tied = _accuracies(0.9, 0.9)
    records = [make_record(0, "cosreg", {"lambda": 0.1}, validation=tied)]
    records += [make_record(seed, "cosreg", {"lambda": 1.0}, validation=tied) for seed in (0, 1)]

    leaderboard = aggregate(records, BENCHMARK)

    assert leaderboard.selected_rows[0].method_config == {"lambda": 1.0}

    records = [make_record(0, "cosreg", {"lambda": value}, validation=tied) for value in (0.1, 1.0)]
    leaderboard = aggregate(records, BENCHMARK)
    expected = min(row.config_id for row in leaderboard.rows)
    assert leaderboard.selected_rows[0].config_id == expected


@pytest.mark.parametrize(
    ("method", "method_config", "model_config", "label"),
    [
        ("equal", {}, {"batchnorm": False, "dropout": 0.0}, "No reg"),
        ("equal", {}, {"batchnorm": False, "dropout": 0.5}, "Dropout (p=0.5)"),
        ("equal", {}, {"batchnorm": True, "dropout": 0.0}, "BatchNorm"),
        ("equal", {}, {"batchnorm": True, "dropout": 0.25}, "Dropout (p=0.25) + BatchNorm"),
        ("cosreg", {"lambda": 0.1, "scheduled": False}, {"batchnorm": False, "dropout": 0.0}, "CosReg (lambda=0.1)"),
        ("cosreg", {"lambda": 0.1, "scheduled": False}, {"batchnorm": True, "dropout": 0.0}, "CosReg (lambda=0.1) + BatchNorm"),
        ("cosreg", {"lambda": 10.0, "scheduled": True}, {"batchnorm": False, "dropout": 0.0}, "CosReg (lambda=10, scheduled)"),
        ("single", {}, {"batchnorm": False, "dropout": 0.0}, "Single task"),
        ("gradnorm", {"alpha": 1.5}, {"batchnorm": False, "dropout": 0.0}, "gradnorm (alpha=1.5)"),
        ("uncertainty", {}, {}, "uncertainty"),
    ],
)
def test_row_label(method, method_config, model_config, label):
    assert row_label(method, method_config, model_config) == label


def test_variant_labels_match_published_names():
    assert Variant("equal", False, False).label == "No reg"
    assert Variant("equal", False, True).label == "Dropout"
    assert Variant("cosreg", True, False).label == "CosReg + BatchNorm"
    assert Variant("single", False, False).label == "Single task"


def test_metric_direction():
    assert metric_direction("harmonic_accuracy") == "higher"
    assert metric_direction("left_accuracy") == "higher"
    assert metric_direction("segmentation_miou") == "higher"
    assert metric_direction("depth_rmse") == "lower"
    with pytest.raises(MtbenchError, match="unknown_score"):
        metric_direction("unknown_score")


def test_selection_of_lower_is_better_metric():
    records = [
        make_record(0, "cosreg", {"lambda": 0.1}, validation={"left_accuracy": 0.9, "right_accuracy": 0.9, "depth_rmse": 0.8}),
        make_record(0, "cosreg", {"lambda": 1.0}, validation={"left_accuracy": 0.9, "right_accuracy": 0.9, "depth_rmse": 0.6}),
    ]
    for record in records:
        record["test"] = dict(record["validation"])

    leaderboard = aggregate(records, BENCHMARK, selection_metric="depth_rmse")

    assert leaderboard.selected_rows[0].method_config == {"lambda": 1.0}


def test_published_file_of_repository():
    published = read_published(REPOSITORY_LEADERBOARD, BENCHMARK)

    assert published is not None
    assert published.title == "Regularizing Deep Multi-Task Networks using Orthogonal Gradients"
    assert published.runs == 5
    rows = {row.label: row for row in published.rows}
    assert list(rows) == ["Single task", "No reg", "Dropout", "BatchNorm", "CosReg", "CosReg + BatchNorm"]
    assert rows["CosReg + BatchNorm"].variant == Variant("cosreg", True, False)
    assert rows["CosReg + BatchNorm"].values == {"harmonic_accuracy": 92.5, "harmonic_accuracy_std": 0.01, "sigma_cos": 0.09}
    assert "sigma_cos" not in rows["Single task"].values
    assert published.format_value(rows["Dropout"], "harmonic_accuracy_std") == "0.00"
    assert published.format_value(rows["Single task"], "sigma_cos") == "-"


def test_published_file_invalid_key_names_it(tmp_path):
    path = tmp_path / "published" / f"{BENCHMARK}.toml"
    path.parent.mkdir()
    path.write_text(
        'benchmark = "multidigitmnist"\nmetric = "harmonic_accuracy"\n[source]\ntitle = "T"\n'
        '[[rows]]\nlabel = "No reg"\nvariant = { method = "equal", batchnorm = "no", dropout = false }\n'
    )

    with pytest.raises(MtbenchError, match=r"rows\[0\]\.variant\.batchnorm"):
        read_published(tmp_path, BENCHMARK)


@pytest.fixture
def leaderboard_dir(tmp_path: Path) -> Path:
    shutil.copytree(REPOSITORY_LEADERBOARD / "published", tmp_path / "published")
    return tmp_path


def test_regenerate_writes_tables(leaderboard_dir):
    for seed, left in enumerate([0.90, 0.92, 0.97]):
        append_record(leaderboard_dir, make_record(seed, test={"left_accuracy": left, "right_accuracy": 0.8, "harmonic_accuracy": left}))
    append_record(leaderboard_dir, make_record(0, "cosreg", {"lambda": 0.1, "scheduled": False}, batchnorm=True, validation=_accuracies(0.95, 0.95)))
    append_record(leaderboard_dir, make_record(0, "cosreg", {"lambda": 1.0, "scheduled": False}, batchnorm=True, validation=_accuracies(0.93, 0.93)))

    text = regenerate(leaderboard_dir, BENCHMARK)

    assert (leaderboard_dir / f"{BENCHMARK}.md").read_text() == text
    assert "`mtbench leaderboard`" in text
    assert "## Test results, configuration selected on validation" in text
    assert "## All configurations (hyper-parameter search)" in text
    no_reg = next(line for line in text.splitlines() if line.startswith("| No reg | mtbench |"))
    # 95% CI half-width: t(0.975, 2) * std / sqrt(3) = 4.3027 * 3.6056 / 1.7321 = 8.96; no single-task runs, so no delta_m.
    # Mean rank 1.50: first of two on left accuracy (0.93 against 0.90), second on right accuracy (0.80 against 0.90).
    assert "| 93.00 (3.61) | ±8.96 | 3 | 93.00 (3.61) | 80.00 (0.00) | - | - | 1.50 | 0.200 (0.000) | 0.010 (0.000) | 0.300 (0.000) | 90.00 (0.00) | 0.01 | - |" in no_reg
    assert "| No reg (published) | published | - | 90.7 (0.01) | - | 5 | - | - | - | - | - | 0.27 | - | - | - | - | - |" in text
    assert "| Single task (published) | published | - | 93.7 (0.00) | - | 5 | - | - | - | - | - | - | - | - | - | - | - |" in text
    assert "| CosReg + BatchNorm (published) | published | - | 92.5 (0.01) | - | 5 |" in text
    assert "| CosReg (lambda=0.1) + BatchNorm | mtbench |" in text
    assert "| 95.00 (-) | 90.00 (-) | - | yes |" in text
    assert "| 93.00 (-) | 90.00 (-) | - |  |" in text
    assert "epochs 10" in text
    assert "batch size 64" in text
    assert "learning rate 0.001" in text
    assert "std is the sample standard deviation over seeds" in text
    assert "sha256:0123abcd" in text


def test_regenerate_published_row_order(leaderboard_dir):
    append_record(leaderboard_dir, make_record(0))

    lines = regenerate(leaderboard_dir, BENCHMARK).splitlines()

    measured = next(index for index, line in enumerate(lines) if line.startswith("| No reg | mtbench |"))
    assert lines[measured + 1].startswith("| No reg (published) |")
    assert lines[measured - 1].startswith("| Single task (published) |")


def test_regenerate_writes_index(leaderboard_dir):
    append_record(leaderboard_dir, make_record(0))

    regenerate(leaderboard_dir, BENCHMARK)

    index = (leaderboard_dir / "README.md").read_text()
    assert f"[MultiDigitMNIST]({BENCHMARK}.md)" in index


def test_regenerate_published_only_benchmark(leaderboard_dir):
    text = regenerate(leaderboard_dir, BENCHMARK)

    assert "No finished runs yet." in text
    assert "| CosReg (published) | published | - | 90.7 (0.00) | - | 5 |" in text


def test_regenerate_skips_corrupt_line(leaderboard_dir):
    append_record(leaderboard_dir, make_record(0))
    with open(results_path(leaderboard_dir, BENCHMARK), "ab") as handle:
        handle.write(b'{"schema_version": 1, "status": "fin')

    with pytest.warns(UserWarning, match="truncated"):
        text = regenerate(leaderboard_dir, BENCHMARK)

    assert "| No reg | mtbench |" in text


def test_regenerate_unknown_benchmark(leaderboard_dir):
    with pytest.raises(MtbenchError, match="'nyuv3'.*Known benchmarks: multidigitmnist"):
        regenerate(leaderboard_dir, "nyuv3")

    assert not (leaderboard_dir / "nyuv3.md").exists()


def test_regenerate_is_deterministic(leaderboard_dir):
    for seed in range(2):
        append_record(leaderboard_dir, make_record(seed))

    assert regenerate(leaderboard_dir, BENCHMARK) == regenerate(leaderboard_dir, BENCHMARK)


def test_regenerate_rejects_other_published_metric(leaderboard_dir):
    path = leaderboard_dir / "published" / f"{BENCHMARK}.toml"
    path.write_text(path.read_text().replace('metric = "harmonic_accuracy"', 'metric = "mean_accuracy"'))

    with pytest.raises(MtbenchError, match="mean_accuracy"):
        regenerate(leaderboard_dir, BENCHMARK)

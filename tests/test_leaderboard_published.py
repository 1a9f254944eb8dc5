"""Published rows with several printed columns: the NYUv2 and SUN RGB-D files, their pages with and without records."""

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from mtbench.errors import MtbenchError
from mtbench.leaderboard import append_record, check_leaderboard, regenerate
from mtbench.leaderboard.aggregate import Variant, aggregate
from mtbench.leaderboard.published import PublishedColumn, read_published
from mtbench.sweep.definition import read_definition
from mtbench.sweep.plan import resolve_runs

REPOSITORY = Path(__file__).resolve().parents[1]
REPOSITORY_LEADERBOARD = REPOSITORY / "leaderboard"
TITLE = "Regularizing Deep Multi-Task Networks using Orthogonal Gradients"

# Tables 2 and 3 of the source, as printed: label -> (method, values in column order).
NYUV2_TABLE = {
    "Single task": ("single", (0.663, 0.775, 0.051)),
    "Equal weights": ("equal", (0.670, 0.765, 0.053)),
    "GradNorm": ("gradnorm", (0.651, 0.747, 0.052)),
    "Kendall et al. uncertainty weighting": ("uncertainty", (0.659, 0.745, 0.052)),
    "CosReg": ("cosreg", (0.646, 0.747, 0.053)),
}
SUNRGBD_TABLE = {
    "Single task": ("single", (0.649, 0.719, 0.586)),
    "Equal weights": ("equal", (0.646, 0.717, 0.586)),
    "GradNorm": ("gradnorm", (0.648, 0.723, 0.606)),
    "Kendall et al. uncertainty weighting": ("uncertainty", (0.646, 0.716, 0.582)),
    "CosReg": ("cosreg", (0.644, 0.714, 0.584)),
}
NYUV2_KEYS = ("segmentation_miou", "depth_rmse", "surface_normal")
SUNRGBD_KEYS = ("segmentation13_miou", "segmentation37_miou", "depth_rmse")

# Test metrics of the synthetic NYUv2 runs: single-task models, and equal weights
# 10% better on segmentation and depth and 10% worse on normals.
SINGLE_TASK_METRICS = {
    "segmentation": {"segmentation_miou": 0.50},
    "depth": {"depth_rmse": 0.80, "depth_delta1": 0.60},
    "normal": {"normal_within_22_5": 0.40, "normal_mean_cosine": 0.80},
}
EQUAL_WEIGHTS_METRICS = {
    "segmentation_miou": 0.55,
    "depth_rmse": 0.72,
    "depth_delta1": 0.66,
    "normal_within_22_5": 0.36,
    "normal_mean_cosine": 0.72,
    "mean_task_score": (0.55 + 0.66 + 0.36) / 3,
}


@pytest.fixture
def leaderboard_dir(tmp_path: Path) -> Path:
    shutil.copytree(REPOSITORY_LEADERBOARD / "published", tmp_path / "published")
    return tmp_path


@pytest.fixture(scope="module")
def nyuv2_sweep_runs() -> list:
    return resolve_runs(read_definition(REPOSITORY_LEADERBOARD / "sweeps" / "nyuv2_table2.toml"))


def _record(run, metrics: dict, selection_metric: str) -> dict:
    """Return a finished schema-1 record of sweep run ``run`` with the same validation and test ``metrics``.

    Its config_id and run_id are the sweep's, which computes them as `mtbench run` does.
    """
    return {
        "schema_version": 1,
        "status": "finished",
        "failure": None,
        "run_id": run.run_id,
        "config_id": run.config_id,
        **run.identity,
        "seed": run.seed,
        "dataset_checksum": "sha256:feed",
        "selection_metric": selection_metric,
        "selected_epoch": 24,
        "validation": dict(metrics),
        "test": dict(metrics),
        "history": [],
        "mu_cos": None,
        "sigma_cos": None,
        "first_epoch_sigma_cos": None,
        "cosines_file": None,
        "seconds_per_step": 0.5,
        "peak_memory_mb": None,
        "wall_seconds": 1000.0,
        "device": "cuda",
        "mtbench_version": "0.1.0",
        "torch_version": "2.4.0",
        "git_commit": None,
        "created_at": "2024-05-01T12:00:00+00:00",
    }


def _append_nyuv2_runs(folder: Path, sweep_runs: list, methods: tuple[str, ...]) -> None:
    """Append seeds 0 and 1 of the sweep's runs of ``methods``: single-task runs and equal weights carry the metrics above."""
    for run in sweep_runs:
        if run.identity["method"] not in methods or run.seed > 1:
            continue
        if run.task is not None:
            metrics = SINGLE_TASK_METRICS[run.task]
            selection = {"segmentation": "segmentation_miou", "depth": "depth_delta1", "normal": "normal_within_22_5"}[run.task]
        else:
            metrics, selection = EQUAL_WEIGHTS_METRICS, "mean_task_score"
        append_record(folder, _record(run, metrics, selection))


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def _write_published(folder: Path, tables: str, top: str = "") -> None:
    """Write a NYUv2 published file: top-level keys ``top``, then ``[source]``, then ``tables``."""
    path = folder / "published" / "nyuv2.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'benchmark = "nyuv2"\n{top}[source]\ntitle = "T"\n{tables}')


@pytest.mark.parametrize(
    ("benchmark", "table_name", "keys", "expected"),
    [("nyuv2", "Table 2", NYUV2_KEYS, NYUV2_TABLE), ("sunrgbd", "Table 3", SUNRGBD_KEYS, SUNRGBD_TABLE)],
)
def test_repository_files_hold_printed_numbers(benchmark, table_name, keys, expected):
    published = read_published(REPOSITORY_LEADERBOARD, benchmark)

    assert published.title == TITLE
    assert published.table == table_name
    assert published.runs is None
    assert published.metric is None
    assert [column.key for column in published.columns] == list(keys)
    assert [row.label for row in published.rows] == list(expected)
    for row in published.rows:
        method, values = expected[row.label]
        assert row.variant == Variant(method, False, False)
        assert row.values == dict(zip(keys, values))
        assert all(published.decimals[key] == 3 for key in keys)


def test_nyuv2_normal_column_maps_to_no_metric():
    published = read_published(REPOSITORY_LEADERBOARD, "nyuv2")

    assert published.metrics == ["segmentation_miou", "depth_rmse"]
    assert published.unmapped_columns == [published.columns[2]]
    normal = published.columns[2]
    assert (normal.header, normal.metric) == ("Surface Normal", None)
    assert "unclear" in normal.note
    assert published.format_value(published.rows[1], "segmentation_miou") == "0.670"
    assert published.format_metric(published.rows[1], "normal_mean_cosine") == "-"


def test_sunrgbd_fine_miou_above_coarse_as_printed():
    published = read_published(REPOSITORY_LEADERBOARD, "sunrgbd")

    assert all(row.values["segmentation37_miou"] > row.values["segmentation13_miou"] for row in published.rows)
    assert published.metrics == list(SUNRGBD_KEYS)
    assert published.unmapped_columns == []


def test_legacy_file_columns_named_after_metrics():
    published = read_published(REPOSITORY_LEADERBOARD, "multidigitmnist")

    assert published.columns == [
        PublishedColumn("harmonic_accuracy", "harmonic_accuracy", "harmonic_accuracy"),
        PublishedColumn("sigma_cos", "sigma_cos", "sigma_cos"),
    ]
    assert published.has_std
    assert published.format_metric_with_std(published.rows[1], "harmonic_accuracy") == "90.7 (0.01)"
    assert published.format_metric_with_std(published.rows[0], "sigma_cos") == "-"


@pytest.mark.parametrize(("benchmark", "sweep"), [("nyuv2", "nyuv2_table2.toml"), ("sunrgbd", "sunrgbd_table3.toml")])
def test_sweep_trains_published_configurations(benchmark, sweep):
    published = read_published(REPOSITORY_LEADERBOARD, benchmark)
    definition = read_definition(REPOSITORY / published.sweep)

    assert published.sweep == f"leaderboard/sweeps/{sweep}"
    assert definition.benchmark == benchmark
    specs = definition.expand([])
    assert sorted(spec.method for spec in specs) == sorted(row.variant.method for row in published.rows)
    assert all(spec.seeds == (0, 1, 2) for spec in specs)
    assert next(spec for spec in specs if spec.method == "cosreg").params == {"lambda": 10.0, "scheduled": True}


def test_published_only_page(leaderboard_dir):
    text = regenerate(leaderboard_dir, "nyuv2")

    assert text.startswith("# NYUv2 leaderboard\n")
    assert "No finished runs yet, so the table shows the published rows only. `mtbench sweep leaderboard/sweeps/nyuv2_table2.toml` trains" in text
    header = _line(text, "| Method |")
    assert "| Seeds | Test segmentation_miou | Test depth_rmse | Surface Normal (published only) | Δm (%)" in header
    assert "| Test mean_task_score |" in header
    assert _line(text, "| Single task (published) |") == "| Single task (published) | published | - | - | - | - | 0.663 | 0.775 | 0.051 |" + " - |" * 9
    assert _line(text, "| Equal weights (published) |").startswith("| Equal weights (published) | published | - | - | - | - | 0.670 | 0.765 | 0.053 |")
    assert '"Surface Normal" in a column of its own' in text
    assert "Surface Normal (published): Printed without a definition." in text
    assert "std is printed without a unit" not in text


def test_published_only_exports(leaderboard_dir):
    regenerate(leaderboard_dir, "sunrgbd")

    rows = list(csv.DictReader(io.StringIO((leaderboard_dir / "sunrgbd.csv").read_text())))
    document = json.loads((leaderboard_dir / "sunrgbd.json").read_text())
    assert [row["label"] for row in rows] == [row["label"] for row in document["rows"]]
    assert {row["source"] for row in rows} == {"published"}
    gradnorm = next(row for row in document["rows"] if row["label"] == "GradNorm")
    assert (gradnorm["test_segmentation13_miou_mean"], gradnorm["test_segmentation37_miou_mean"], gradnorm["test_depth_rmse_mean"]) == (0.648, 0.723, 0.606)
    assert document["selection_metric"] == "mean_task_score"
    assert document["tasks"] == ["segmentation13", "segmentation37", "depth"]


def test_unmapped_column_exported_as_published(leaderboard_dir):
    regenerate(leaderboard_dir, "nyuv2")

    rows = list(csv.DictReader(io.StringIO((leaderboard_dir / "nyuv2.csv").read_text())))
    assert "published_surface_normal" in rows[0]
    assert "published_surface_normal_std" not in rows[0]
    assert "test_normal_mean_cosine_mean" not in rows[0]
    single = next(row for row in rows if row["label"] == "Single task")
    assert (single["published_surface_normal"], single["test_depth_rmse_mean"]) == ("0.051", "0.775")


def test_index_links_every_benchmark(leaderboard_dir):
    for benchmark in ("multidigitmnist", "nyuv2", "sunrgbd"):
        regenerate(leaderboard_dir, benchmark)

    index = (leaderboard_dir / "README.md").read_text()
    for benchmark, title in (("multidigitmnist", "MultiDigitMNIST"), ("nyuv2", "NYUv2"), ("sunrgbd", "SUN RGB-D")):
        assert f"- [{title}]({benchmark}.md) ([CSV]({benchmark}.csv), [JSON]({benchmark}.json))" in index
    assert check_leaderboard(leaderboard_dir, ["multidigitmnist", "nyuv2", "sunrgbd"]) == []


def test_check_reports_stale_published_page(leaderboard_dir):
    regenerate(leaderboard_dir, "nyuv2")
    path = leaderboard_dir / "published" / "nyuv2.toml"
    path.write_text(path.read_text().replace("depth_rmse = 0.775", "depth_rmse = 0.776"))

    problems = check_leaderboard(leaderboard_dir, ["nyuv2"])

    assert any("nyuv2.md is missing or out of date with results/nyuv2.jsonl and published/nyuv2.toml" in problem for problem in problems)


def test_measured_rows_beside_published(leaderboard_dir, nyuv2_sweep_runs):
    _append_nyuv2_runs(leaderboard_dir, nyuv2_sweep_runs, ("single", "equal"))

    text = regenerate(leaderboard_dir, "nyuv2")

    lines = text.splitlines()
    single = next(index for index, line in enumerate(lines) if line.startswith("| Single task | mtbench |"))
    assert lines[single + 1].startswith("| Single task (published) | published |")
    assert lines[single + 2].startswith("| No reg | mtbench |")
    assert lines[single + 3].startswith("| Equal weights (published) | published |")
    assert lines[single + 4].startswith("| CosReg (published) |")
    assert "No finished runs yet" not in text
    header = _line(text, "| Method |")
    assert "| Test segmentation_miou | Test depth_delta1 | Test depth_rmse | Test normal_mean_cosine | Test normal_within_22_5 | Surface Normal (published only) |" in header


def test_measured_dense_delta_m_and_mean_task_score(leaderboard_dir, nyuv2_sweep_runs):
    _append_nyuv2_runs(leaderboard_dir, nyuv2_sweep_runs, ("single", "equal"))

    text = regenerate(leaderboard_dir, "nyuv2")

    # Single task: mean task score (0.50 + 0.60 + 0.40) / 3 = 0.500, joined per seed from the task scores.
    # Equal weights: (0.55 + 0.66 + 0.36) / 3 = 0.523. Relative changes +10% (segmentation), +10% and +10% (depth),
    # -10% and -10% (normals): delta_m (10 + 10 - 10) / 3 = +3.33, Nash-MTL -(10 + 10 + 10 - 10 - 10) / 5 = -2.00.
    single = _line(text, "| Single task | mtbench |")
    equal = _line(text, "| No reg | mtbench |")
    assert single.split(" | ")[3:7] == ["0.500 (0.000)", "±0.000", "2", "0.500 (0.000)"]
    assert equal.split(" | ")[3:6] == ["0.523 (0.000)", "±0.000", "2"]
    assert "| 0.550 (0.000) | 0.660 (0.000) | 0.720 (0.000) | 0.720 (0.000) | 0.360 (0.000) | - | +3.33 (0.00) | -2.00 (0.00) |" in equal
    assert "| 0.500 (0.000) | 0.600 (0.000) | 0.800 (0.000) | 0.800 (0.000) | 0.400 (0.000) | - | +0.00 (0.00) | +0.00 (0.00) |" in single


def test_measured_rows_exported_with_published(leaderboard_dir, nyuv2_sweep_runs):
    _append_nyuv2_runs(leaderboard_dir, nyuv2_sweep_runs, ("single", "equal"))

    regenerate(leaderboard_dir, "nyuv2")

    document = json.loads((leaderboard_dir / "nyuv2.json").read_text())
    sources = [(row["source"], row["label"]) for row in document["rows"]][:4]
    assert sources == [("mtbench", "Single task"), ("published", "Single task"), ("mtbench", "No reg"), ("published", "Equal weights")]
    equal = document["rows"][2]
    assert equal["delta_m_mean"] == pytest.approx(10 / 3)
    assert equal["published_surface_normal"] is None
    assert document["rows"][3]["published_surface_normal"] == 0.053
    assert check_leaderboard(leaderboard_dir, ["nyuv2"]) == []


def test_joined_single_task_mean_task_score(nyuv2_sweep_runs):
    records = []
    for run in nyuv2_sweep_runs:
        if run.task is not None and run.seed == 0:
            metrics = SINGLE_TASK_METRICS[run.task]
            records.append(_record(run, metrics, next(iter(metrics))))

    leaderboard = aggregate(records, "nyuv2", "mean_task_score")

    (row,) = leaderboard.rows
    assert row.validation["mean_task_score"].mean == pytest.approx(0.5)
    assert row.selected
    assert "harmonic_accuracy" not in row.test


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[columns]]\nkey = "miou"\nheader = "mIoU"\nmetric = "segmentation_iou"\n', r"columns\[0\]\.metric.*no known direction"),
        ('[[columns]]\nkey = "miou"\nheader = "mIoU"\n[[columns]]\nkey = "miou"\nheader = "again"\n', r"columns\[1\]\.key.*repeats 'miou'"),
        (
            '[[columns]]\nkey = "a"\nheader = "A"\nmetric = "depth_rmse"\n[[columns]]\nkey = "b"\nheader = "B"\nmetric = "depth_rmse"\n',
            r"columns\[1\]\.metric.*repeats 'depth_rmse'",
        ),
        ('[[columns]]\nkey = "Depth RMSE"\nheader = "RMSE"\n', r"columns\[0\]\.key.*lower-case"),
        ('[[columns]]\nkey = "rmse_std"\nheader = "RMSE"\n', r"columns\[0\]\.key.*'_std'"),
        ('[[columns]]\nkey = "rmse"\nheader = 3\n', r"columns\[0\]\.header.*must be a string"),
    ],
)
def test_invalid_columns_rejected(tmp_path, body, message):
    _write_published(tmp_path, body + "[[rows]]\nlabel = \"X\"\nvariant = { method = \"equal\", batchnorm = false, dropout = false }\n")

    with pytest.raises(MtbenchError, match=message):
        read_published(tmp_path, "nyuv2")


def test_row_value_without_column_rejected(tmp_path):
    _write_published(
        tmp_path,
        '[[columns]]\nkey = "rmse"\nheader = "RMSE"\nmetric = "depth_rmse"\n'
        '[[rows]]\nlabel = "X"\nvariant = { method = "equal", batchnorm = false, dropout = false }\nrmse = 0.5\nrmse_std = 0.1\nmiou = 0.4\n',
    )

    with pytest.raises(MtbenchError, match=r"rows\[0\]\.miou.*matches no \[\[columns\]\] entry"):
        read_published(tmp_path, "nyuv2")


def test_missing_sweep_file_rejected(tmp_path):
    _write_published(tmp_path, "", top='sweep = "leaderboard/sweeps/nosuch.toml"\nrows = []\n')

    with pytest.raises(MtbenchError, match="'sweep' names leaderboard/sweeps/nosuch.toml, which is not a file"):
        read_published(tmp_path, "nyuv2")


def test_metric_the_benchmark_does_not_record_rejected(tmp_path):
    # depth_abs_err has a known direction (from abs_err) but dense runs record depth_abs_error.
    _write_published(
        tmp_path,
        '[[columns]]\nkey = "error"\nheader = "Abs. error"\nmetric = "depth_abs_err"\n'
        '[[rows]]\nlabel = "X"\nvariant = { method = "equal", batchnorm = false, dropout = false }\nerror = 0.5\n',
    )

    with pytest.raises(MtbenchError, match="column 'error' compares with metric 'depth_abs_err', which runs of nyuv2 do not record"):
        regenerate(tmp_path, "nyuv2")
    assert not (tmp_path / "nyuv2.md").exists()


def test_main_metric_other_than_selection_rejected(tmp_path):
    _write_published(tmp_path, "", top='metric = "segmentation_miou"\nrows = []\n')

    with pytest.raises(MtbenchError, match="reports 'segmentation_miou', but the nyuv2 table ranks by 'mean_task_score'"):
        regenerate(tmp_path, "nyuv2")

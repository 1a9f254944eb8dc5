"""Generated leaderboard files (markdown, CSV, JSON, figures, index) and `mtbench leaderboard --check`."""

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_leaderboard_table import BENCHMARK, REPOSITORY_LEADERBOARD, _single, make_record

from mtbench.cli.main import build_parser, main
from mtbench.leaderboard import append_record, check_leaderboard, read_records, regenerate
from mtbench.leaderboard.commands import reproduce_arguments, reproduce_command
from mtbench.leaderboard.figures import pearson_correlation


@pytest.fixture
def leaderboard_dir(tmp_path: Path) -> Path:
    (tmp_path / "published").mkdir()
    shutil.copy(REPOSITORY_LEADERBOARD / "published" / f"{BENCHMARK}.toml", tmp_path / "published")
    return tmp_path


def _multi(folder: Path, seed: int, left: float, right: float, first_sigma: float, **options) -> dict:
    """Return a two-task record with a cosines file and a two-epoch history."""
    record = make_record(seed, test={"left_accuracy": left, "right_accuracy": right}, first_epoch_sigma_cos=first_sigma, **options)
    relative = f"results/{BENCHMARK}/cosines/{record['run_id']}.npy"
    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    np.save(folder / relative, np.linspace(-0.5, 0.5 + seed / 10, 40, dtype=np.float32).reshape(40, 1))
    history = [{"epoch": epoch, "sigma_cos": first_sigma / epoch, "mu_cos": 0.0, "validation": {}, "train_loss": {}} for epoch in (1, 2)]
    return {**record, "cosines_file": relative, "history": history}


def _complete_leaderboard(folder: Path) -> None:
    for seed in (0, 1):
        append_record(folder, _single(seed, "left", 0.8))
        append_record(folder, _single(seed, "right", 0.7))
        append_record(folder, _multi(folder, seed, 0.88, 0.63, 0.3 + seed / 10, peak_memory_mb=100.0 + seed))
        append_record(folder, _multi(folder, seed, 0.9, 0.7, 0.2, batchnorm=True))


def test_regenerate_writes_every_file(leaderboard_dir):
    _complete_leaderboard(leaderboard_dir)

    text = regenerate(leaderboard_dir, BENCHMARK)

    for name in (f"{BENCHMARK}.md", f"{BENCHMARK}.csv", f"{BENCHMARK}.json", "README.md"):
        assert (leaderboard_dir / name).is_file()
    for figure in ("cosine_distribution", "sigma_cos_per_epoch", "first_epoch_sigma_cos"):
        assert f"(figures/{BENCHMARK}_{figure}.png)" in text
        assert (leaderboard_dir / "figures" / f"{BENCHMARK}_{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = (leaderboard_dir / "README.md").read_text()
    assert f"[MultiDigitMNIST]({BENCHMARK}.md) ([CSV]({BENCHMARK}.csv), [JSON]({BENCHMARK}.json))" in index


def test_markdown_delta_m_and_peak_memory(leaderboard_dir):
    _complete_leaderboard(leaderboard_dir)

    text = regenerate(leaderboard_dir, BENCHMARK)

    # No reg: left (0.88 - 0.8) / 0.8 = +10%, right (0.63 - 0.7) / 0.7 = -10%, so delta_m is 0 both ways.
    no_reg = next(line for line in text.splitlines() if line.startswith("| No reg | mtbench |"))
    assert "| +0.00 (0.00) | +0.00 (0.00) |" in no_reg
    assert no_reg.endswith("| 100 |")
    assert "Δm (%) = avg_t avg_k∈t s_k (M_k − S_k) / S_k, ↑" in text
    assert "Δm Nash-MTL (%) = avg_k (−1)^d_k (M_k − S_k) / S_k, ↓" in text
    assert "Student's t" in text
    assert "## Ranks" in text


def test_csv_and_json_rows(leaderboard_dir):
    _complete_leaderboard(leaderboard_dir)

    regenerate(leaderboard_dir, BENCHMARK)

    rows = list(csv.DictReader(io.StringIO((leaderboard_dir / f"{BENCHMARK}.csv").read_text())))
    document = json.loads((leaderboard_dir / f"{BENCHMARK}.json").read_text())
    assert [row["label"] for row in rows] == [row["label"] for row in document["rows"]]
    published = [row for row in rows if row["source"] == "published"]
    assert len(published) == 6
    assert next(row for row in published if row["label"] == "No reg")["sigma_cos_mean"] == "0.27"
    batchnorm = next(row for row in document["rows"] if row["label"] == "BatchNorm")
    # BatchNorm: left +12.5%, right 0%: delta_m = +6.25, Nash-MTL sign -6.25; accuracies exported in percent.
    assert batchnorm["delta_m_mean"] == pytest.approx(6.25)
    assert batchnorm["delta_m_metric_averaged_mean"] == pytest.approx(-6.25)
    assert batchnorm["test_left_accuracy_mean"] == pytest.approx(90.0)
    assert batchnorm["seeds"] == [0, 1]
    assert batchnorm["rank_left_accuracy"] == 1
    no_reg = next(row for row in rows if row["label"] == "No reg")
    assert no_reg["seeds"] == "0 1"
    assert no_reg["peak_memory_mb_mean"] == "100.5"
    assert document["delta_m_task_metrics"] == {"left": ["left_accuracy"], "right": ["right_accuracy"]}


def test_regeneration_is_byte_identical(leaderboard_dir):
    _complete_leaderboard(leaderboard_dir)
    regenerate(leaderboard_dir, BENCHMARK)
    first = {path.relative_to(leaderboard_dir): path.read_bytes() for path in leaderboard_dir.rglob("*") if path.is_file()}

    regenerate(leaderboard_dir, BENCHMARK)

    second = {path.relative_to(leaderboard_dir): path.read_bytes() for path in leaderboard_dir.rglob("*") if path.is_file()}
    assert first == second
    assert b"Software" not in first[Path("figures") / f"{BENCHMARK}_sigma_cos_per_epoch.png"]


def test_figure_removed_without_data(leaderboard_dir):
    _complete_leaderboard(leaderboard_dir)
    regenerate(leaderboard_dir, BENCHMARK)
    results = leaderboard_dir / "results" / f"{BENCHMARK}.jsonl"
    single_task_lines = [line for line in results.read_text().splitlines() if '"single"' in line]
    results.write_text("\n".join(single_task_lines) + "\n")

    text = regenerate(leaderboard_dir, BENCHMARK)

    assert "figures/" not in text
    assert not list((leaderboard_dir / "figures").glob("*.png"))


def test_pearson_correlation():
    assert pearson_correlation([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(1.0)
    assert pearson_correlation([1.0, 2.0, 3.0], [3.0, 1.0, 2.0]) == pytest.approx(-0.5)
    assert pearson_correlation([1.0, 2.0], [1.0, 2.0]) is None
    assert pearson_correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None


def test_check_clean_after_regenerate(leaderboard_dir):
    _complete_leaderboard(leaderboard_dir)
    regenerate(leaderboard_dir, BENCHMARK)

    assert check_leaderboard(leaderboard_dir, [BENCHMARK]) == []


def test_check_reports_stale_files(leaderboard_dir):
    _complete_leaderboard(leaderboard_dir)
    regenerate(leaderboard_dir, BENCHMARK)
    (leaderboard_dir / "figures" / f"{BENCHMARK}_sigma_cos_per_epoch.png").unlink()
    append_record(leaderboard_dir, make_record(0, "cosreg", {"lambda": 1.0}))
    append_record(leaderboard_dir, make_record(1, "cosreg", {"lambda": 1.0}))

    problems = check_leaderboard(leaderboard_dir, [BENCHMARK])

    assert sorted(Path(problem.split(" ")[0]).name for problem in problems) == [
        f"{BENCHMARK}.csv", f"{BENCHMARK}.json", f"{BENCHMARK}.md", f"{BENCHMARK}_sigma_cos_per_epoch.png",
    ]
    assert all("Run `mtbench leaderboard`" in problem for problem in problems)


def test_check_reports_incomplete_seeds(leaderboard_dir):
    _complete_leaderboard(leaderboard_dir)
    append_record(leaderboard_dir, make_record(0, "cosreg", {"lambda": 1.0}))
    append_record(leaderboard_dir, make_record(1, "cosreg", {"lambda": 1.0}))
    append_record(leaderboard_dir, make_record(0, "cosreg", {"lambda": 0.1}))
    regenerate(leaderboard_dir, BENCHMARK)

    problems = check_leaderboard(leaderboard_dir, [BENCHMARK])

    (problem,) = problems
    assert "CosReg (lambda=0.1)" in problem
    assert "has seeds 0, but its variant CosReg has seeds 0, 1" in problem
    assert problem.endswith("--param lambda=0.1 --task left --task right --epochs 10 --batch-size 64 --lr 0.001 --dropout 0.0 --hidden-units 50 --kernel-size 3 --width 20 --seed 1")


def test_check_reports_missing_single_task_runs(leaderboard_dir):
    _complete_leaderboard(leaderboard_dir)
    append_record(leaderboard_dir, _multi(leaderboard_dir, 2, 0.9, 0.7, 0.2))
    append_record(leaderboard_dir, _multi(leaderboard_dir, 2, 0.9, 0.7, 0.2, batchnorm=True))
    append_record(leaderboard_dir, _single(2, "left", 0.8))
    regenerate(leaderboard_dir, BENCHMARK)

    problems = check_leaderboard(leaderboard_dir, [BENCHMARK])

    assert len(problems) == 2
    assert "seeds 2 lack task right" in problems[0]
    assert "delta_m needs single-task runs (method single) of task right for seeds 2" in problems[1]
    assert "mtbench run --benchmark multidigitmnist --method single --task right --epochs 10" in problems[1]
    text = (leaderboard_dir / f"{BENCHMARK}.md").read_text()
    assert "| No reg | mtbench |" in text
    assert next(line for line in text.splitlines() if line.startswith("| No reg | mtbench |")).count("| - | - |") >= 1


def test_check_reports_unknown_metric_direction(leaderboard_dir):
    for seed in (0, 1):
        metrics = {"left_accuracy": 0.9, "right_accuracy": 0.8, "harmonic_accuracy": 0.85, "left_weirdness": 0.3}
        append_record(leaderboard_dir, make_record(seed, test=metrics, validation=metrics))
        append_record(leaderboard_dir, _single(seed, "left", 0.8))
        append_record(leaderboard_dir, _single(seed, "right", 0.7))
    regenerate(leaderboard_dir, BENCHMARK)

    problems = check_leaderboard(leaderboard_dir, [BENCHMARK])

    (problem,) = problems
    assert "'left_weirdness' has no known direction" in problem
    assert "METRIC_DIRECTIONS" in problem


def test_check_reports_mixed_training_lengths(leaderboard_dir):
    _complete_leaderboard(leaderboard_dir)
    shorter = {"epochs": 1, "batch_size": 64, "learning_rate": 0.001, "optimizer": "adam"}
    append_record(leaderboard_dir, make_record(0, "cosreg", {"lambda": 1.0}, train_config=shorter, selected_epoch=1))
    regenerate(leaderboard_dir, BENCHMARK)

    problems = check_leaderboard(leaderboard_dir, [BENCHMARK])

    (problem,) = problems
    assert "finished runs train for different numbers of epochs (1 epoch: 1 run; 10 epochs: 8 runs)" in problem
    assert problem.endswith("or keep trial runs in another --leaderboard-dir.")


def test_check_ignores_length_of_failed_runs(leaderboard_dir):
    _complete_leaderboard(leaderboard_dir)
    longer = {"epochs": 50, "batch_size": 64, "learning_rate": 0.001, "optimizer": "adam"}
    append_record(leaderboard_dir, make_record(0, "cosreg", {"lambda": 1.0}, status="failed", train_config=longer, selected_epoch=None))
    regenerate(leaderboard_dir, BENCHMARK)

    assert check_leaderboard(leaderboard_dir, [BENCHMARK]) == []


def test_check_published_only_benchmark(leaderboard_dir):
    regenerate(leaderboard_dir, BENCHMARK)

    assert check_leaderboard(leaderboard_dir, [BENCHMARK]) == []


def test_check_command_exit_status(leaderboard_dir, capsys):
    _complete_leaderboard(leaderboard_dir)
    regenerate(leaderboard_dir, BENCHMARK)
    assert main(["leaderboard", "--check", "--leaderboard-dir", str(leaderboard_dir)]) == 0

    with open(leaderboard_dir / "results" / f"{BENCHMARK}.jsonl", "ab") as handle:
        handle.write(b"{not json\n")

    assert main(["leaderboard", "--check", "--leaderboard-dir", str(leaderboard_dir)]) == 1
    err = capsys.readouterr().err
    assert f"{BENCHMARK}.jsonl:9: skipped: not valid JSON" in err
    assert "delete the line and run that run again" in err


def test_committed_leaderboard_passes_check():
    assert check_leaderboard(REPOSITORY_LEADERBOARD, [BENCHMARK]) == []


def _configuration_of(arguments: list[str], monkeypatch) -> object:
    import mtbench.train.run as run_module

    captured = []
    monkeypatch.setattr(run_module, "run_configuration", lambda config, seeds, console: captured.append(config))
    namespace = build_parser().parse_args(arguments)
    namespace.handler(namespace)
    return captured[0]


def test_reproduce_command_gives_same_configuration(monkeypatch):
    records = {record["config_id"]: record for record in read_records(REPOSITORY_LEADERBOARD, BENCHMARK)}

    for record in records.values():
        task = record["tasks"][0] if record["method"] == "single" else None
        config = _configuration_of(reproduce_arguments(record, [record["seed"]], task), monkeypatch)
        assert config.config_id == record["config_id"], reproduce_command(record, [record["seed"]], task)

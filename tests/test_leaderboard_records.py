"""Run records: validation on append, tolerant reading, duplicates, concurrent appends, checks."""

import hashlib
import json
import multiprocessing
import re
import warnings

import pytest

from mtbench.errors import MtbenchError
from mtbench.leaderboard import RecordWarning, append_record, check_records, read_records
from mtbench.leaderboard.records import results_path
from mtbench.train.config import configuration_id, run_id_for

BENCHMARK = "multidigitmnist"


def _hash(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def make_record(seed: int = 0, method: str = "equal", status: str = "finished", **overrides) -> dict:
    """Return a valid finished (or failed) schema-1 record of a two-task run."""
    model_config = {"width": 20, "kernel_size": 3, "hidden_units": 50, "batchnorm": False, "dropout": 0.0}
    config_id = _hash([method, model_config])
    record = {
        "schema_version": 1,
        "status": status,
        "failure": None if status == "finished" else "RuntimeError: CUDA out of memory",
        "run_id": _hash([config_id, seed]),
        "config_id": config_id,
        "benchmark": BENCHMARK,
        "protocol": "multidigitmnist-v1",
        "method": method,
        "method_config": {},
        "tasks": ["left", "right"],
        "model": "multidigit_cnn",
        "model_config": model_config,
        "train_config": {"epochs": 10, "batch_size": 64, "learning_rate": 0.001, "optimizer": "adam"},
        "seed": seed,
        "dataset_checksum": "sha256:0123abcd",
        "selection_metric": "harmonic_accuracy",
        "selected_epoch": 9,
        "validation": {"left_accuracy": 0.9, "right_accuracy": 0.8, "harmonic_accuracy": 0.847},
        "test": {"left_accuracy": 0.88, "right_accuracy": 0.79, "harmonic_accuracy": 0.833},
        "history": [{"epoch": 0, "train_loss": {"left": 1.2, "right": 1.4}, "validation": {}, "mu_cos": 0.0, "sigma_cos": 0.3, "seconds": 4.0}],
        "mu_cos": 0.01,
        "sigma_cos": 0.25,
        "first_epoch_sigma_cos": 0.31,
        "cosines_file": None,
        "seconds_per_step": 0.012,
        "peak_memory_mb": None,
        "wall_seconds": 120.0,
        "device": "cpu",
        "mtbench_version": "0.1.0",
        "torch_version": "2.4.0",
        "git_commit": None,
        "created_at": "2024-05-01T12:00:00+00:00",
    }
    if status == "failed":
        for key in ("validation", "test", "selected_epoch", "mu_cos", "sigma_cos", "first_epoch_sigma_cos"):
            record[key] = None
    record.update(overrides)
    if "config_id" not in overrides:
        record["config_id"] = configuration_id(record)
    if "run_id" not in overrides:
        record["run_id"] = run_id_for(record["config_id"], record["seed"])
    return record


def _lines(tmp_path) -> list[str]:
    return results_path(tmp_path, BENCHMARK).read_text().splitlines()


def test_append_then_read_round_trip(tmp_path):
    first = make_record(seed=0)
    second = make_record(seed=1)

    append_record(tmp_path, first)
    append_record(tmp_path, second)

    assert read_records(tmp_path, BENCHMARK) == [first, second]
    assert len(_lines(tmp_path)) == 2


def test_read_missing_file_is_empty(tmp_path):
    assert read_records(tmp_path, BENCHMARK) == []


def test_check_missing_file_or_folder(tmp_path):
    (problem,) = check_records(tmp_path, BENCHMARK)
    assert "results file not found" in problem
    (problem,) = check_records(tmp_path / "absent")
    assert "absent not found" in problem


def test_check_flags_forged_and_conflicting_records(tmp_path):
    genuine = make_record(seed=0)
    forged_seed = make_record(seed=0, run_id="0123456789abcdef")
    conflicting = make_record(seed=0, test={"left_accuracy": 0.5, "right_accuracy": 0.5, "harmonic_accuracy": 0.5})
    out_of_range = make_record(seed=3, test={"left_accuracy": 1e308, "right_accuracy": 0.5, "harmonic_accuracy": 0.5})
    for record in (genuine, forged_seed, conflicting, out_of_range):
        append_record(tmp_path, record)

    problems = check_records(tmp_path, BENCHMARK)

    assert any("0123456789abcdef does not match its configuration and seed 0" in problem for problem in problems)
    assert any("several finished records with different results" in problem for problem in problems)
    assert any("left_accuracy = 1e+308, outside [0, 1]" in problem for problem in problems)
    assert len(problems) == 3


def test_append_failed_record_with_null_results(tmp_path):
    record = make_record(status="failed")

    append_record(tmp_path, record)

    assert read_records(tmp_path, BENCHMARK) == [record]


def _without(key: str) -> dict:
    record = make_record()
    del record[key]
    return record


@pytest.mark.parametrize(
    ("record", "key"),
    [
        (_without("seed"), "seed"),
        (_without("test"), "test"),
        (make_record(seed="3"), "seed"),
        (make_record(seed=True), "seed"),
        (make_record(status="done"), "status"),
        (make_record(schema_version=2), "schema_version"),
        (make_record(tasks=[]), "tasks"),
        (make_record(benchmark="../outside"), "benchmark"),
        (make_record(method_config=[]), "method_config"),
        (make_record(created_at="yesterday"), "created_at"),
        (make_record(created_at="2024-05-01T12:00:00+02:00"), "created_at"),
        (make_record(failure="crashed"), "failure"),
        (make_record(validation={}), "validation"),
        (make_record(validation={"left_accuracy": 0.9, "right_accuracy": "0.8", "harmonic_accuracy": 0.85}), "validation.right_accuracy"),
        (make_record(test={"left_accuracy": float("nan"), "right_accuracy": 0.8, "harmonic_accuracy": 0.85}), "test.left_accuracy"),
        (make_record(test={"left_accuracy": 0.9, "right_accuracy": 0.8}), "test.harmonic_accuracy"),
        (make_record(selection_metric="mean_accuracy"), "selection_metric"),
        (make_record(sigma_cos=float("inf")), "sigma_cos"),
        (make_record(history=[{"epoch": 0, "train_loss": {"left": float("nan")}}]), "history[0].train_loss.left"),
        (make_record(method="single"), "tasks"),
        (make_record(status="failed", failure=""), "failure"),
        (make_record(runtime={"channels_last": "yes", "compile_backend": None}), "runtime"),
        (make_record(runtime={"channels_last": False}), "runtime"),
        (make_record(selected_epoch=11), "selected_epoch"),
        (make_record(selected_epoch=0), "selected_epoch"),
        (make_record(wall_seconds=10**400), "wall_seconds"),
        (make_record(train_config={"batch_size": 64, "learning_rate": 0.001, "optimizer": "adam"}, selected_epoch=-1), "train_config.epochs"),
        (make_record(train_config={"epochs": "10", "batch_size": 64, "learning_rate": 0.001, "optimizer": "adam"}), "train_config.epochs"),
    ],
)
def test_append_invalid_record_rejected(tmp_path, record, key):
    with pytest.raises(MtbenchError, match=re.escape(f"'{key}'")):
        append_record(tmp_path, record)

    assert not results_path(tmp_path, BENCHMARK).exists()


def test_runtime_settings_are_optional(tmp_path):
    append_record(tmp_path, make_record(seed=0))
    append_record(tmp_path, make_record(seed=1, runtime={"channels_last": True, "compile_backend": "inductor"}))

    assert [record.get("runtime") for record in read_records(tmp_path, BENCHMARK)] == [
        None,
        {"channels_last": True, "compile_backend": "inductor"},
    ]


@pytest.mark.parametrize("epoch", [1, 10])
def test_selected_epoch_may_be_the_first_or_last(tmp_path, epoch):
    append_record(tmp_path, make_record(selected_epoch=epoch))

    assert read_records(tmp_path, BENCHMARK)[0]["selected_epoch"] == epoch


def test_append_invalid_keeps_lines(tmp_path):
    append_record(tmp_path, make_record(seed=0))
    before = results_path(tmp_path, BENCHMARK).read_bytes()

    with pytest.raises(MtbenchError, match="'seed'"):
        append_record(tmp_path, make_record(seed=None))

    assert results_path(tmp_path, BENCHMARK).read_bytes() == before


def test_append_accepts_z_and_extras(tmp_path):
    record = make_record(created_at="2024-05-01T12:00:00Z", notes="extra keys are kept")

    append_record(tmp_path, record)

    assert read_records(tmp_path, BENCHMARK)[0]["notes"] == "extra keys are kept"


def _write_lines(tmp_path, lines: list[bytes]) -> None:
    path = results_path(tmp_path, BENCHMARK)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines))


def _json_line(record: dict) -> bytes:
    return (json.dumps(record) + "\n").encode()


def test_read_skips_corrupt_line_with_warning(tmp_path):
    _write_lines(tmp_path, [_json_line(make_record(seed=0)), b"{not json\n", _json_line(make_record(seed=2))])

    with pytest.warns(RecordWarning) as caught:
        records = read_records(tmp_path, BENCHMARK)

    assert [record["seed"] for record in records] == [0, 2]
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"{BENCHMARK}.jsonl:2:" in message
    assert "not valid JSON" in message


def test_read_skips_truncated_line(tmp_path):
    whole = _json_line(make_record(seed=0))
    partial = _json_line(make_record(seed=1))[:57]
    _write_lines(tmp_path, [whole, partial])

    with pytest.warns(RecordWarning) as caught:
        records = read_records(tmp_path, BENCHMARK)

    assert [record["seed"] for record in records] == [0]
    assert len(caught) == 1
    assert f"{BENCHMARK}.jsonl:2:" in str(caught[0].message)
    assert "truncated" in str(caught[0].message)


def test_read_skips_invalid_records(tmp_path):
    invalid = make_record(seed=1)
    del invalid["test"]
    _write_lines(tmp_path, [_json_line(invalid), _json_line(make_record(seed=2, benchmark="nyuv2")), _json_line(make_record(seed=3))])

    with pytest.warns(RecordWarning) as caught:
        records = read_records(tmp_path, BENCHMARK)

    assert [record["seed"] for record in records] == [3]
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 2
    assert ":1:" in messages[0]
    assert "'test'" in messages[0]
    assert ":2:" in messages[1]
    assert "nyuv2" in messages[1]


def test_read_valid_file_emits_no_warning(tmp_path):
    append_record(tmp_path, make_record())

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_records(tmp_path, BENCHMARK)) == 1


def test_duplicate_run_id_last_finished_wins(tmp_path):
    first = make_record(seed=0, wall_seconds=1.0)
    second = make_record(seed=0, wall_seconds=2.0)
    failed_retry = make_record(seed=0, status="failed")
    other = make_record(seed=1)
    for record in (first, other, second, failed_retry):
        append_record(tmp_path, record)

    records = read_records(tmp_path, BENCHMARK)

    assert [record["seed"] for record in records] == [1, 0]
    assert records[1]["wall_seconds"] == 2.0
    assert records[1]["status"] == "finished"


def test_duplicate_failed_keeps_last(tmp_path):
    append_record(tmp_path, make_record(status="failed", failure="first error"))
    append_record(tmp_path, make_record(status="failed", failure="second error"))

    records = read_records(tmp_path, BENCHMARK)

    assert len(records) == 1
    assert records[0]["failure"] == "second error"


def _append_many(leaderboard_dir: str, worker: int, count: int) -> None:
    for index in range(count):
        seed = worker * 1000 + index
        # A long history makes each line several kilobytes, so unlocked writes could interleave.
        history = [{"epoch": epoch, "train_loss": {"left": 0.5, "right": 0.5}, "validation": {}, "seconds": 1.0} for epoch in range(40)]
        append_record(leaderboard_dir, make_record(seed=seed, history=history))


def test_concurrent_appends_keep_lines_whole(tmp_path):
    workers, per_worker = 4, 50
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_append_many, args=(str(tmp_path), worker, per_worker)) for worker in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)

    assert [process.exitcode for process in processes] == [0] * workers
    lines = _lines(tmp_path)
    assert len(lines) == workers * per_worker
    for line in lines:
        assert json.loads(line)["schema_version"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seeds = sorted(record["seed"] for record in read_records(tmp_path, BENCHMARK))
    assert seeds == sorted(worker * 1000 + index for worker in range(workers) for index in range(per_worker))


def test_check_records_clean_file_has_no_problems(tmp_path):
    append_record(tmp_path, make_record(seed=0))
    append_record(tmp_path, make_record(seed=1))

    assert check_records(tmp_path) == []


def test_check_records_reports_problems(tmp_path):
    append_record(tmp_path, make_record(seed=0))
    append_record(tmp_path, make_record(seed=1, protocol="multidigitmnist-v2", dataset_checksum="sha256:ffff"))
    append_record(tmp_path, make_record(seed=2, cosines_file="cosines/run2.npy"))
    with open(results_path(tmp_path, BENCHMARK), "ab") as handle:
        handle.write(_json_line(make_record(seed=3, schema_version=7)))

    problems = check_records(tmp_path, BENCHMARK)

    assert len(problems) == 4
    assert ":4:" in problems[0]
    assert "schema_version" in problems[0]
    assert "protocol" in problems[1]
    assert "multidigitmnist-v2 (1 run)" in problems[1]
    assert "dataset_checksum" in problems[2]
    assert "sha256:ffff" in problems[2]
    assert "cosines/run2.npy" in problems[3]


def test_check_records_ignores_failed_runs(tmp_path):
    append_record(tmp_path, make_record(seed=0))
    append_record(tmp_path, make_record(seed=1, status="failed", protocol="multidigitmnist-v2"))

    assert check_records(tmp_path, BENCHMARK) == []

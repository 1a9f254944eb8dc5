"""`mtbench sweep`: skip finished runs, list them, report failures, keep concurrently appended lines whole.

The tests replace `mtbench run` with a fake runner (a small Python script
given with --runner) that waits, then appends the record the real run would
append, so a sweep takes seconds. test_sweep_resume.py stops and restarts
sweeps; test_sweep_real_run.py runs the real `mtbench run`.
"""

import json
import shlex
import sys
import warnings
from pathlib import Path

import pytest

from mtbench.cli.main import main
from mtbench.leaderboard import read_records
from mtbench.leaderboard.records import results_path
from mtbench.sweep import read_definition, resolve_runs
from mtbench.sweep.executor import ExecutionSettings, child_environment

BENCHMARK = "multidigitmnist"

FAKE_RUNNER = '''
import json, os, shlex, sys, time
from mtbench.io import append_json_line

arguments = sys.argv[1:]
run_arguments = shlex.join(arguments[: arguments.index("--device")])
leaderboard_dir = arguments[arguments.index("--leaderboard-dir") + 1]
with open(os.environ["FAKE_PLAN"]) as handle:
    record = json.load(handle)[run_arguments]
time.sleep(float(os.environ.get("FAKE_SECONDS", "0")))
if os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] in run_arguments:
    print("mtbench: error: the fake run failed on purpose", file=sys.stderr)
    sys.exit(2)
append_json_line(os.path.join(leaderboard_dir, "results", record["benchmark"] + ".jsonl"), record)
print("threads", os.environ["OMP_NUM_THREADS"], "resume" if "--resume" in arguments else "")
'''


def _record(run) -> dict:
    """Return the finished record `mtbench run` would write for ``run``, with a history long enough for multi-kilobyte lines."""
    history = [{"epoch": epoch, "train_loss": {"left": 0.5, "right": 0.5}, "validation": {}, "mu_cos": 0.0, "sigma_cos": 0.3} for epoch in range(60)]
    metrics = {"left_accuracy": 0.9, "right_accuracy": 0.8, "harmonic_accuracy": 0.847}
    if run.task is not None:
        metrics = {f"{run.task}_accuracy": 0.9}
    return {
        **run.identity, "schema_version": 1, "status": "finished", "failure": None, "run_id": run.run_id, "config_id": run.config_id,
        "seed": run.seed, "dataset_checksum": "sha256:0123", "selection_metric": next(iter(metrics)), "selected_epoch": 1,
        "validation": metrics, "test": metrics, "history": history, "mu_cos": None, "sigma_cos": None, "first_epoch_sigma_cos": None,
        "cosines_file": None, "seconds_per_step": 0.01, "peak_memory_mb": None, "wall_seconds": 1.0, "device": "cpu",
        "mtbench_version": "0.1.0", "torch_version": "2.4.0", "git_commit": None, "created_at": "2024-05-01T12:00:00+00:00",
    }


def make_sweep(tmp_path: Path, tiny_data_root: Path, monkeypatch) -> dict:
    """Write a sweep of 6 runs (equal and CosReg, 3 seeds) with a fake runner; return its paths and the `mtbench sweep` arguments."""
    definition = tmp_path / "sweep.toml"
    definition.write_text('benchmark = "multidigitmnist"\nseeds = [0, 1, 2]\n[options]\nepochs = 1\n[[runs]]\nmethod = ["equal", "cosreg"]\n')
    runs = resolve_runs(read_definition(definition))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({shlex.join(run.arguments): _record(run) for run in runs}))
    runner = tmp_path / "fake_run.py"
    runner.write_text(FAKE_RUNNER)
    monkeypatch.setenv("FAKE_PLAN", str(plan))
    monkeypatch.setenv("FAKE_SECONDS", "0")
    leaderboard = tmp_path / "leaderboard"
    arguments = [
        "sweep", str(definition), "--jobs", "2", "--device", "cpu", "--runner", shlex.join([sys.executable, str(runner)]),
        "--leaderboard-dir", str(leaderboard), "--runs-dir", str(tmp_path / "runs"), "--data-root", str(tiny_data_root),
    ]
    return {"arguments": arguments, "runs": runs, "leaderboard": leaderboard, "runs_dir": tmp_path / "runs", "definition": definition}


@pytest.fixture
def sweep(tmp_path: Path, tiny_data_root: Path, monkeypatch) -> dict:
    return make_sweep(tmp_path, tiny_data_root, monkeypatch)


def _recorded_run_ids(leaderboard: Path) -> list[str]:
    path = results_path(leaderboard, BENCHMARK)
    if not path.is_file():
        return []
    return [json.loads(line)["run_id"] for line in path.read_text().splitlines()]


def test_sweep_runs_every_run_once_then_skips(sweep, capsys):
    assert main(sweep["arguments"]) == 0
    first = _recorded_run_ids(sweep["leaderboard"])

    assert main(sweep["arguments"]) == 0

    assert sorted(first) == sorted(run.run_id for run in sweep["runs"])
    assert _recorded_run_ids(sweep["leaderboard"]) == first
    out = capsys.readouterr().out
    assert "6 runs: 6 done, 0 to run" in out
    assert "Every run is done" in out
    log = (sweep["runs_dir"] / BENCHMARK / sweep["runs"][0].run_id / "sweep.log").read_text()
    # One thread per run on CPU, and --resume so a killed run continues from its checkpoint.
    assert "threads 1 resume" in log


def test_sweep_dry_run_lists_status(sweep, capsys):
    done = sweep["runs"][0]
    results = results_path(sweep["leaderboard"], BENCHMARK)
    results.parent.mkdir(parents=True)
    results.write_text(json.dumps(_record(done)) + "\n")

    assert main([*sweep["arguments"], "--dry-run"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert "6 runs: 1 done, 5 to run, 0 running in another process" in lines[0]
    assert lines[1] == f"done     {done.run_id}  {done.command}"
    assert sum(line.startswith("to run   ") for line in lines) == 5
    assert _recorded_run_ids(sweep["leaderboard"]) == [done.run_id]


def test_sweep_failure_reported_and_retried(sweep, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "--method cosreg")

    assert main(sweep["arguments"]) == 1

    out = capsys.readouterr().out
    assert out.count("FAILED") == 3
    assert "last line: mtbench: error: the fake run failed on purpose" in out
    cosreg = [run for run in sweep["runs"] if run.identity["method"] == "cosreg"]
    assert f"log: {sweep['runs_dir'] / BENCHMARK / cosreg[0].run_id / 'sweep.log'}" in out
    assert "--method cosreg --epochs 1 --seed 0 --device cpu" in out
    assert len(_recorded_run_ids(sweep["leaderboard"])) == 3

    monkeypatch.delenv("FAKE_FAIL")
    assert main(sweep["arguments"]) == 0
    assert sorted(_recorded_run_ids(sweep["leaderboard"])) == sorted(run.run_id for run in sweep["runs"])


def test_concurrent_appends_stay_whole(sweep):
    arguments = list(sweep["arguments"])
    arguments[arguments.index("--jobs") + 1] = "6"

    assert main(arguments) == 0

    lines = results_path(sweep["leaderboard"], BENCHMARK).read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert all(len(line) > 4096 for line in lines[:-1])
    assert sorted(json.loads(line)["run_id"] for line in lines[:-1]) == sorted(run.run_id for run in sweep["runs"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_records(sweep["leaderboard"], BENCHMARK)) == 6


def test_child_environment_per_device(tmp_path):
    settings = ExecutionSettings(tmp_path, tmp_path, None, "cuda", jobs=4, gpus=2, runner=("mtbench",))

    assert [child_environment(settings, slot, {})["CUDA_VISIBLE_DEVICES"] for slot in range(4)] == ["0", "1", "0", "1"]
    visible = {"CUDA_VISIBLE_DEVICES": "3,5"}
    assert [child_environment(settings, slot, visible)["CUDA_VISIBLE_DEVICES"] for slot in range(3)] == ["3", "5", "3"]

    cpu = ExecutionSettings(tmp_path, tmp_path, None, "cpu", jobs=2, gpus=0, runner=("mtbench",))
    environment = child_environment(cpu, 1, {"OMP_NUM_THREADS": "8"})
    assert environment["OMP_NUM_THREADS"] == "1"
    assert environment["MKL_NUM_THREADS"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in environment


def test_sweep_rejects_missing_data(sweep, tmp_path, capsys):
    arguments = list(sweep["arguments"])
    arguments[arguments.index("--data-root") + 1] = str(tmp_path / "no-data")

    assert main(arguments) == 2

    assert "pass the same --data-root to prepare and sweep" in capsys.readouterr().err
    assert not (sweep["runs_dir"]).exists()


def test_sweep_runner_not_found(sweep, tmp_path, capsys):
    arguments = list(sweep["arguments"])
    arguments[arguments.index("--runner") + 1] = str(tmp_path / "no-such-runner")

    assert main(arguments) == 1

    out = capsys.readouterr().out
    assert out.count("could not start") >= 6
    assert "6 failed" in out

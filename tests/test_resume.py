"""A run killed with SIGKILL and continued with --resume ends with the record of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_trainer import without_timings

RUN = ["run", "--method", "rlw", "--epochs", "3", "--batch-size", "16", "--width", "8", "--hidden-units", "16", "--device", "cpu", "--dropout", "0.25"]


def _arguments(data_root: Path, folder: Path) -> list[str]:
    return [*RUN, "--data-root", str(data_root), "--leaderboard-dir", str(folder / "leaderboard"), "--runs-dir", str(folder / "runs")]


def _records(folder: Path) -> list[dict]:
    path = folder / "leaderboard" / "results" / "multidigitmnist.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _start(data_root: Path, folder: Path, *extra: str) -> subprocess.Popen:
    """Start ``mtbench run`` in a child process; one thread, so that sums are reduced in the same order every time."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "mtbench", *_arguments(data_root, folder), *extra]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment, text=True)


def _finish(process: subprocess.Popen) -> None:
    _, errors = process.communicate(timeout=300)
    assert process.returncode == 0, errors


def _kill_when(process: subprocess.Popen, condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail("the run ended before the point where the test kills it")
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def uninterrupted(tiny_data_root, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("uninterrupted")
    _finish(_start(tiny_data_root, folder))
    (record,) = _records(folder)
    return record


def _checkpoint_epoch(folder: Path) -> int:
    """Return the epoch of the newest checkpoint, or 0 when there is none yet."""
    paths = list((folder / "runs").glob("multidigitmnist/*/checkpoint.pt"))
    if not paths:
        return 0
    try:
        return torch.load(paths[0], weights_only=True)["epoch"]
    except Exception:
        return 0


@pytest.mark.parametrize("kill_after_epoch", [0, 1, 2])
def test_sigkill_then_resume_gives_the_uninterrupted_record(kill_after_epoch, uninterrupted, tiny_data_root, tmp_path):
    process = _start(tiny_data_root, tmp_path)
    if kill_after_epoch == 0:
        # Killed while the first epoch trains: there is no checkpoint yet.
        _kill_when(process, lambda: (tmp_path / "runs").exists())
    else:
        _kill_when(process, lambda: _checkpoint_epoch(tmp_path) >= kill_after_epoch)
    assert _records(tmp_path) == []

    _finish(_start(tiny_data_root, tmp_path, "--resume"))

    (record,) = _records(tmp_path)
    assert without_timings(record) == without_timings(uninterrupted)


def test_same_seed_gives_the_same_record(uninterrupted, tiny_data_root, tmp_path):
    _finish(_start(tiny_data_root, tmp_path))

    (record,) = _records(tmp_path)
    assert without_timings(record) == without_timings(uninterrupted)


def test_resume_refuses_a_checkpoint_of_another_run(tiny_data_root, tmp_path):
    process = _start(tiny_data_root, tmp_path)
    _kill_when(process, lambda: _checkpoint_epoch(tmp_path) >= 1)
    (checkpoint,) = (tmp_path / "runs").glob("multidigitmnist/*/checkpoint.pt")
    state = torch.load(checkpoint, weights_only=True)
    torch.save({**state, "run_id": "0123456789abcdef"}, checkpoint)

    resumed = _start(tiny_data_root, tmp_path, "--resume")
    _, errors = resumed.communicate(timeout=300)

    assert resumed.returncode == 2
    assert "belongs to run 0123456789abcdef" in errors
    assert "Traceback" not in errors
    assert _records(tmp_path) == []


def test_resume_skips_recorded_run(uninterrupted, tiny_data_root, tmp_path):
    _finish(_start(tiny_data_root, tmp_path))
    _finish(_start(tiny_data_root, tmp_path, "--resume"))

    assert len(_records(tmp_path)) == 1

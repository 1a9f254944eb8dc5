"""`mtbench sweep` stopped by SIGTERM or killed with SIGKILL, then started again: no finished run lost or repeated.

The sweeps use the fake runner of test_sweep.py. The first sweep runs in a
forked process so that the test can signal it.
"""

import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from test_sweep import _recorded_run_ids, make_sweep

from mtbench.cli.main import main


@pytest.fixture
def sweep(tmp_path: Path, tiny_data_root: Path, monkeypatch) -> dict:
    return make_sweep(tmp_path, tiny_data_root, monkeypatch)


def _sweep_in_child(arguments: list[str]) -> None:
    sys.exit(main(arguments))


def _start_sweep(arguments: list[str]) -> multiprocessing.Process:
    process = multiprocessing.get_context("fork").Process(target=_sweep_in_child, args=(arguments,))
    process.start()
    return process


def _wait_for_records(leaderboard: Path, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_recorded_run_ids(leaderboard)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} records after {timeout} s"
        time.sleep(0.05)


def test_sweep_sigterm_then_resume(sweep, monkeypatch):
    monkeypatch.setenv("FAKE_SECONDS", "0.6")
    process = _start_sweep(sweep["arguments"])
    _wait_for_records(sweep["leaderboard"], 2)

    os.kill(process.pid, signal.SIGTERM)
    process.join(timeout=30)

    assert process.exitcode == 143
    stopped = _recorded_run_ids(sweep["leaderboard"])
    assert 2 <= len(stopped) < 6
    # The runs in flight were terminated, so they append nothing later.
    time.sleep(0.9)
    assert _recorded_run_ids(sweep["leaderboard"]) == stopped

    monkeypatch.setenv("FAKE_SECONDS", "0")
    assert main(sweep["arguments"]) == 0
    recorded = _recorded_run_ids(sweep["leaderboard"])
    assert recorded[: len(stopped)] == stopped
    assert sorted(recorded) == sorted(run.run_id for run in sweep["runs"])


def test_sweep_sigkill_then_resume(sweep, monkeypatch, capsys):
    # Runs long enough that the killed sweep's runs are still going when the new sweep starts.
    monkeypatch.setenv("FAKE_SECONDS", "1.5")
    process = _start_sweep(sweep["arguments"])
    _wait_for_records(sweep["leaderboard"], 2)
    # Each started run has a log file: wait until the next two runs are in flight.
    deadline = time.monotonic() + 30
    while len(list((sweep["runs_dir"] / "multidigitmnist").glob("*/sweep.log"))) < 4:
        assert time.monotonic() < deadline, "the sweep did not start its next runs"
        time.sleep(0.02)

    os.kill(process.pid, signal.SIGKILL)
    process.join(timeout=30)
    monkeypatch.setenv("FAKE_SECONDS", "0")
    # The killed sweep's runs go on; the new sweep waits for their locks instead of running them again.
    assert main(sweep["arguments"]) == 0

    recorded = _recorded_run_ids(sweep["leaderboard"])
    assert sorted(recorded) == sorted(run.run_id for run in sweep["runs"])
    assert "done elsewhere" in capsys.readouterr().out

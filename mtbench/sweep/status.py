"""Whether each run of a sweep is done, running in another process, or still to run."""

from pathlib import Path

from mtbench.leaderboard.records import finished_runs
from mtbench.sweep.locks import is_locked, lock_path
from mtbench.sweep.plan import SweepRun

DONE = "done"
RUNNING = "running"
TO_RUN = "to run"


def run_statuses(runs: list[SweepRun], leaderboard_dir: Path) -> dict[str, str]:
    """Return each run's status by run id: "done" when the results file holds its finished record
    (same config_id and seed), "running" when another process holds its lock, else "to run"."""
    done: dict[str, set[tuple[str, int]]] = {}
    statuses = {}
    for run in runs:
        if run.benchmark not in done:
            done[run.benchmark] = finished_runs(leaderboard_dir, run.benchmark)
        if (run.config_id, run.seed) in done[run.benchmark]:
            statuses[run.run_id] = DONE
        elif is_locked(lock_path(leaderboard_dir, run.benchmark, run.run_id)):
            statuses[run.run_id] = RUNNING
        else:
            statuses[run.run_id] = TO_RUN
    return statuses

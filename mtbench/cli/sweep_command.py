"""``mtbench sweep``: run a grid of methods, hyper-parameters, model options and seeds from a TOML file."""

import argparse
import os
import shlex
import sys
from pathlib import Path

from rich.console import Console

from mtbench.cli.help import DefaultsHelpFormatter
from mtbench.errors import MtbenchError
from mtbench.paths import data_root, project_root

# Exit statuses of a sweep stopped by a signal, as a shell reports a process killed by it: 128 + the signal number.
STOP_STATUSES = {"SIGINT": 130, "SIGHUP": 129, "SIGTERM": 143}


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "sweep",
        help="run a grid of methods, hyper-parameters and seeds from a TOML file, skipping finished runs",
        description=(
            "Expand a sweep file (see leaderboard/sweeps/ and docs/leaderboard.md) into `mtbench run` runs, one per model "
            "and seed, and run those without a record in the results file, several at a time. Stop it with Ctrl-C or "
            "SIGTERM and run the same command again to continue: finished runs are never repeated."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("file", type=Path, help="sweep definition, e.g. leaderboard/sweeps/multidigitmnist_table1.toml")
    parser.add_argument(
        "--jobs", type=int, default=None,
        help="runs at once (default: the number of GPUs with --device cuda, else the number of CPU cores; each CPU run uses one thread)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when PyTorch sees a GPU, else CPU")
    parser.add_argument("--dry-run", action="store_true", help="list every run and whether it is done, running elsewhere or to run; run nothing")
    parser.add_argument("--data-root", type=Path, default=None, help="folder with prepared data (default: $MTBENCH_DATA, else $MTBENCH_HOME/data, else ~/.cache/mtbench/data)")
    parser.add_argument("--leaderboard-dir", type=Path, default=None, help="folder for result records (default: leaderboard/ in the repository)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="folder for checkpoints and the log of each run")
    parser.add_argument(
        "--runner", default=None, metavar="COMMAND",
        help="command that starts mtbench for each run, split like a shell line (default: this Python with -m mtbench)",
    )
    parser.set_defaults(handler=run)


def _device_and_gpus(requested: str) -> tuple[str, int]:
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "cuda" and gpus == 0:
        raise MtbenchError("--device cuda requested, but PyTorch sees no CUDA GPU. Use --device cpu or auto.")
    device = "cuda" if requested == "cuda" or (requested == "auto" and gpus > 0) else "cpu"
    return device, gpus


def _default_jobs(device: str, gpus: int) -> int:
    if device == "cuda":
        return gpus
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _print_listing(console: Console, runs, statuses: dict[str, str]) -> None:
    for run in runs:
        console.print(f"{statuses[run.run_id]:<8} {run.run_id}  {run.command}", markup=False, highlight=False)


def _summary_counts(runs, statuses: dict[str, str]) -> str:
    from mtbench.sweep import DONE, RUNNING, TO_RUN

    counts = {status: sum(1 for run in runs if statuses[run.run_id] == status) for status in (DONE, TO_RUN, RUNNING)}
    return f"{len(runs)} runs: {counts[DONE]} done, {counts[TO_RUN]} to run, {counts[RUNNING]} running in another process"


def _report(console: Console, file: Path, result) -> int:
    console.print(
        f"Sweep {file}: {len(result.finished)} finished now, {len(result.finished_elsewhere)} finished by another process, "
        f"{len(result.failures)} failed, {len(result.not_run)} not run.",
        markup=False, highlight=False,
    )
    for failure in result.failures:
        console.print(f"failed: {failure.run.label} ({failure.reason}); log {failure.log_path}; command: {failure.command}", markup=False, highlight=False)
    if result.stopped_by is not None:
        console.print("Stopped. Run the same command again to continue; finished runs are kept and skipped.", markup=False, highlight=False)
        return STOP_STATUSES.get(result.stopped_by, 1)
    if result.failures:
        console.print("Fix the failures (see each log) and run the same command again to retry them.", markup=False, highlight=False)
        return 1
    console.print("Run `mtbench leaderboard` to regenerate the tables.", markup=False, highlight=False)
    return 0


def run(arguments: argparse.Namespace) -> int:
    from mtbench.benchmarks import get_benchmark
    from mtbench.io import check_appendable, check_writable
    from mtbench.sweep import DONE, ExecutionSettings, execute_runs, read_definition, resolve_runs, run_statuses

    if arguments.jobs is not None and arguments.jobs < 1:
        raise MtbenchError(f"Invalid --jobs {arguments.jobs}: use a positive number of runs at once.")
    runner = tuple(shlex.split(arguments.runner)) if arguments.runner else (sys.executable, "-m", "mtbench")
    if not runner:
        raise MtbenchError("Invalid --runner '': give the command that starts mtbench, e.g. 'python -m mtbench'.")

    # Soft wrap keeps each listed command on one line, whatever the terminal width.
    console = Console(soft_wrap=True)
    definition = read_definition(arguments.file)
    runs = resolve_runs(definition)
    leaderboard_dir = (arguments.leaderboard_dir or project_root() / "leaderboard").resolve()
    statuses = run_statuses(runs, leaderboard_dir)
    console.print(f"Sweep {arguments.file} ({definition.benchmark}): {_summary_counts(runs, statuses)}.", markup=False, highlight=False)
    if arguments.dry_run:
        _print_listing(console, runs, statuses)
        return 0

    pending = [run for run in runs if statuses[run.run_id] != DONE]
    if not pending:
        console.print("Every run is done. Run `mtbench leaderboard` to regenerate the tables.", markup=False, highlight=False)
        return 0

    # Fail before starting any run: every run would fail the same way.
    root = (arguments.data_root or data_root()).resolve()
    try:
        get_benchmark(definition.benchmark).verify(root)
    except MtbenchError as error:
        raise MtbenchError(f"{error} (data root: {root}; pass the same --data-root to prepare and sweep.)") from error
    check_appendable(leaderboard_dir / "results" / f"{definition.benchmark}.jsonl")
    check_writable(arguments.runs_dir)

    device, gpus = _device_and_gpus(arguments.device)
    jobs = arguments.jobs or _default_jobs(device, gpus)
    console.print(f"Running {len(pending)} runs, {jobs} at a time on {device}; logs under {arguments.runs_dir / definition.benchmark}.", markup=False, highlight=False)
    settings = ExecutionSettings(leaderboard_dir, arguments.runs_dir.resolve(), root, device, jobs, gpus, runner)
    return _report(console, arguments.file, execute_runs(pending, settings, console))

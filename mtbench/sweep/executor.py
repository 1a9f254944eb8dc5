"""Run the runs of a sweep as `mtbench run` subprocesses, several at a time, and survive being stopped.

Each run is one process with its own process group, its output in
``<runs_dir>/<benchmark>/<run_id>/sweep.log`` (appended, one header line per
attempt) and its run lock (see :mod:`mtbench.sweep.locks`). A run counts as
finished only when the results file contains its record. `mtbench run`
appends that record atomically at the end of training, so a killed run
leaves none and runs again, with ``--resume`` continuing from its last epoch
checkpoint.

On SIGINT (Ctrl-C), SIGTERM or SIGHUP the sweep sends SIGTERM to every
running run, waits up to STOP_GRACE_SECONDS, sends SIGKILL to what is left,
and returns. A sweep killed with SIGKILL cannot do that: its runs go on,
still holding their locks, and finish or fail on their own; a restarted
sweep waits for them instead of starting them twice.
"""

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mtbench.leaderboard.records import finished_runs
from mtbench.sweep.locks import RunLock, lock_path
from mtbench.sweep.plan import SweepRun

POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 10.0
# Thread variables of the numerical libraries that PyTorch and NumPy use.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class ExecutionSettings:
    """Settings of the run processes: output folders, device, parallelism and the command that starts mtbench.

    ``device`` is "cpu" or "cuda". ``jobs`` runs execute at once; on "cuda"
    job slot i uses GPU i modulo ``gpus``, counted within
    CUDA_VISIBLE_DEVICES when it is set. ``runner`` is the command that starts
    mtbench, such as (python, "-m", "mtbench").
    """

    leaderboard_dir: Path
    runs_dir: Path
    data_root: Path | None
    device: str
    jobs: int
    gpus: int
    runner: tuple[str, ...]


@dataclass(frozen=True)
class Failure:
    """A run that exited with an error or without writing its record."""

    run: SweepRun
    reason: str
    command: str
    log_path: Path
    last_line: str


@dataclass
class SweepResult:
    """The outcome of each run of one sweep invocation."""

    finished: list[SweepRun] = field(default_factory=list)
    finished_elsewhere: list[SweepRun] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    not_run: list[SweepRun] = field(default_factory=list)
    stopped_by: str | None = None


class SweepStopped(Exception):
    """A stop signal arrived; ``args[0]`` is its name."""


def log_path(settings: ExecutionSettings, run: SweepRun) -> Path:
    """Return the log file of ``run``."""
    return settings.runs_dir / run.benchmark / run.run_id / "sweep.log"


def child_command(settings: ExecutionSettings, run: SweepRun) -> list[str]:
    """Return the command line of ``run``: the runner, its arguments, the device, output folders and ``--resume``."""
    command = [*settings.runner, *run.arguments, "--device", settings.device]
    command += ["--leaderboard-dir", str(settings.leaderboard_dir), "--runs-dir", str(settings.runs_dir)]
    if settings.data_root is not None:
        command += ["--data-root", str(settings.data_root)]
    return command + ["--resume"]


def child_environment(settings: ExecutionSettings, slot: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment of the run in job ``slot``: one thread per run on CPU, one GPU per slot on CUDA."""
    environment = dict(os.environ if base is None else base)
    environment["PYTHONUNBUFFERED"] = "1"
    if settings.device == "cuda":
        visible = [device for device in environment.get("CUDA_VISIBLE_DEVICES", "").split(",") if device.strip()]
        devices = visible or [str(index) for index in range(max(settings.gpus, 1))]
        environment["CUDA_VISIBLE_DEVICES"] = devices[slot % len(devices)]
        threads = max(1, (os.cpu_count() or 1) // settings.jobs)
    else:
        threads = 1
    for variable in THREAD_VARIABLES:
        environment[variable] = str(threads)
    return environment


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into SweepStopped while the block runs (SIGINT already raises KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(number: int, frame) -> None:
        raise SweepStopped(signal.Signals(number).name)

    previous = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@dataclass
class _Running:
    run: SweepRun
    process: subprocess.Popen
    slot: int
    command: str
    log_path: Path
    started: float


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - 4096))
            lines = [line.strip() for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


class _Executor:
    def __init__(self, runs: list[SweepRun], settings: ExecutionSettings, progress: Progress) -> None:
        self.queue = list(runs)
        self.settings = settings
        self.progress = progress
        self.bar = progress.add_task("sweep", total=len(runs))
        self.running: list[_Running] = []
        self.free_slots = list(range(settings.jobs))
        self.result = SweepResult()

    def print(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def is_done(self, run: SweepRun) -> bool:
        return (run.config_id, run.seed) in finished_runs(self.settings.leaderboard_dir, run.benchmark)

    def start(self, run: SweepRun, lock: RunLock) -> None:
        """Start ``run`` in the first free job slot and hand it ``lock``; raises OSError when the runner cannot start."""
        slot = self.free_slots[0]
        command = child_command(self.settings, run)
        path = log_path(self.settings, run)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"== {datetime.now(timezone.utc).isoformat(timespec='seconds')} {shlex.join(command)}\n")
            log.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_environment(self.settings, slot),
                start_new_session=True,
                pass_fds=(lock.descriptor,),
            )
        self.free_slots.remove(slot)
        self.running.append(_Running(run, process, slot, shlex.join(command), path, time.monotonic()))
        # The child holds the lock now; it is released when the child exits.
        lock.close()

    def start_available(self) -> None:
        for run in list(self.queue):
            if not self.free_slots:
                return
            lock = RunLock(lock_path(self.settings.leaderboard_dir, run.benchmark, run.run_id))
            if not lock.acquire():
                continue
            self.queue.remove(run)
            if self.is_done(run):
                lock.close()
                self.result.finished_elsewhere.append(run)
                self.print(f"done elsewhere  {run.label}")
                self.progress.advance(self.bar)
                continue
            try:
                self.start(run, lock)
            except OSError as error:
                lock.close()
                command = shlex.join(child_command(self.settings, run))
                failure = Failure(run, f"could not start: {error}", command, log_path(self.settings, run), "")
                self.result.failures.append(failure)
                self.print(f"FAILED  {run.label} ({failure.reason})\n  command: {command}")
                self.progress.advance(self.bar)
            except BaseException:
                lock.close()
                self.queue.insert(0, run)
                raise

    def collect_finished(self) -> None:
        for running in list(self.running):
            status = running.process.poll()
            if status is None:
                continue
            self.running.remove(running)
            self.free_slots.append(running.slot)
            self.free_slots.sort()
            seconds = time.monotonic() - running.started
            if self.is_done(running.run):
                self.result.finished.append(running.run)
                self.print(f"finished  {running.run.label} ({seconds:.0f} s)")
            else:
                reason = f"exit status {status}" if status != 0 else "exit status 0 but no record in the results file"
                failure = Failure(running.run, reason, running.command, running.log_path, _last_line(running.log_path))
                self.result.failures.append(failure)
                self.print(f"FAILED  {running.run.label} ({reason})\n  command: {failure.command}\n  log: {failure.log_path}\n  last line: {failure.last_line}")
            self.progress.advance(self.bar)

    def describe(self) -> str:
        waiting = len(self.queue) if self.queue and not self.running and self.free_slots else 0
        text = f"sweep: {len(self.running)} running, {len(self.result.failures)} failed"
        return text + (f", waiting for {waiting} runs held by other processes" if waiting else "")

    def stop(self) -> None:
        """Send SIGTERM to every running run, then SIGKILL to those still alive after the grace period."""
        for running in self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(running.process.poll() is None for running in self.running) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        for running in list(self.running):
            if running.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(running.process.pid, signal.SIGKILL)
                running.process.wait()
            # A run that ended with its record just before the signal counts as finished; the others are not run.
            if self.is_done(running.run):
                self.running.remove(running)
                self.result.finished.append(running.run)

    def execute(self) -> SweepResult:
        try:
            while self.queue or self.running:
                self.start_available()
                self.collect_finished()
                self.progress.update(self.bar, description=self.describe())
                time.sleep(POLL_SECONDS)
        except (KeyboardInterrupt, SweepStopped) as stop:
            self.result.stopped_by = stop.args[0] if isinstance(stop, SweepStopped) and stop.args else "SIGINT"
            self.print(f"Stopping ({self.result.stopped_by}): terminating {len(self.running)} running run(s).")
            self.stop()
        self.result.not_run = self.queue + [running.run for running in self.running]
        return self.result


def execute_runs(runs: list[SweepRun], settings: ExecutionSettings, console: Console) -> SweepResult:
    """Run each run of ``runs``, ``settings.jobs`` at a time, with a progress bar; skip one whose record appears meanwhile.

    A failing run is reported (command, log file, last log line) and does not
    stop the others. Returns when every run is finished or failed, or when a
    stop signal arrived; the result lists what happened to each run.
    """
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with _stop_signals(), Progress(*columns, console=console) as progress:
        return _Executor(runs, settings, progress).execute()

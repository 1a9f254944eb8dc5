"""Run a configuration for one or more seeds and store each result record."""

import io
import os
from dataclasses import replace

import numpy as np
from rich.console import Console

from mtbench.benchmarks import get_benchmark
from mtbench.errors import MtbenchError
from mtbench.io import atomic_write_bytes, check_appendable, check_writable
from mtbench.leaderboard import append_record, finished_runs
from mtbench.methods import get_method
from mtbench.train.config import RunConfig
from mtbench.train.trainer import Trainer


def expand_tasks(config: RunConfig) -> list[RunConfig]:
    """Return one configuration per model: one per task for single-task methods, else ``config`` itself."""
    if get_method(config.method).single_task and len(config.tasks) > 1:
        return [replace(config, tasks=(task,)) for task in config.tasks]
    return [config]


def store_result(config: RunConfig, record: dict, cosines: np.ndarray) -> dict:
    """Save the per-step cosines beside the results and append the record; return the record."""
    if cosines.size:
        relative = f"results/{config.benchmark}/cosines/{config.run_id}.npy"
        buffer = io.BytesIO()
        np.save(buffer, cosines)
        atomic_write_bytes(config.leaderboard_dir / relative, buffer.getvalue())
        record = {**record, "cosines_file": relative}
    append_record(config.leaderboard_dir, record)
    return record


def run_configuration(config: RunConfig, seeds: list[int], console: Console) -> list[dict]:
    """Train every model of ``config`` for every seed; return the stored records."""
    # Fail fast, before any training: the data must be prepared and the output folders writable.
    try:
        get_benchmark(config.benchmark).verify(config.data_root)
    except MtbenchError as error:
        raise MtbenchError(f"{error} (data root: {config.data_root}; pass the same --data-root to prepare and run.)") from error
    check_writable(config.leaderboard_dir / "results" / config.benchmark / "cosines")
    check_appendable(config.leaderboard_dir / "results" / f"{config.benchmark}.jsonl")
    check_writable(config.runs_dir)
    if int(os.environ.get("RANK", "0")) != 0:
        # In data-parallel training only the first process reports.
        console = Console(quiet=True)
    records = []
    finished = finished_runs(config.leaderboard_dir, config.benchmark) if config.resume else set()
    for seed in seeds:
        for model_config in expand_tasks(replace(config, seed=seed)):
            if (model_config.config_id, model_config.seed) in finished:
                # Resuming a finished run would append a second record of it.
                console.print(f"Run {model_config.run_id} (seed {seed}) already has a record; skipped.")
                continue
            console.print(_run_title(model_config), markup=False, highlight=False)
            trainer = Trainer(model_config, console)
            record = trainer.run()
            if trainer.distributed.is_main:
                records.append(store_result(model_config, record, trainer.cosines.steps()))
                _print_summary(console, record)
    return records


def _run_title(config: RunConfig) -> str:
    settings = [f"{name}={value}" for name, value in config.method_config.items()]
    if config.model_config.get("batchnorm"):
        settings.append("batchnorm")
    if config.model_config.get("dropout"):
        settings.append(f"dropout={config.model_config['dropout']}")
    method = " ".join([config.method, *settings])
    return (
        f"== run {config.run_id}: {config.benchmark}, method {method}, "
        f"tasks {', '.join(config.tasks)}, seed {config.seed}, {config.train.epochs} epochs"
    )


def _print_summary(console: Console, record: dict) -> None:
    scores = ", ".join(f"{name} {value:.4f}" for name, value in record["test"].items())
    sigma = record["sigma_cos"]
    sigma_text = "-" if sigma is None else f"{sigma:.3f}"
    console.print(
        f"test (epoch {record['selected_epoch']} selected on validation): {scores}; "
        f"sigma_cos {sigma_text}; {record['seconds_per_step'] * 1000:.1f} ms/step; {record['wall_seconds']:.0f} s"
    )

"""Measure the step cost of every configuration in a benchmark's leaderboard records, for its benchmark columns.

The training records carry the trainer's own seconds per step, measured
while other runs may have shared the machine. This script rebuilds each
configuration of the records: model options, method and hyper-parameters,
tasks, batch size and precision. It times them as the other speed scripts do (see
``benchmarks/measure.py``). Every configuration trains its own model on the
same random batches in this one process, round by round in turn with the
others, and multi-task models track cosines as the trainer does by default.
It writes ``<leaderboard>/step_costs/<benchmark>.json``
with, per configuration, the median step time, its ratio to the reference in
CPU and wall-clock time, the FLOPs of one step and the peak tensor memory of
one step. ``mtbench leaderboard`` shows these columns; rerun it afterwards.

    python benchmarks/leaderboard_step_cost.py --benchmark multidigitmnist
    mtbench leaderboard

The reference is the configuration of equal weighting with the benchmark's
default model options ("No reg"), unless ``--reference`` names a config id
or its prefix.
"""

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import add_timing_arguments, count_flops, interleaved_timings, machine_line, peak_memory, round_ratio, set_up_process  # noqa: E402
from runtime_options import under_autocast  # noqa: E402
from workloads import Workload, cnn_workload, train_step  # noqa: E402

from mtbench.benchmarks import get_benchmark  # noqa: E402
from mtbench.errors import MtbenchError  # noqa: E402
from mtbench.io import atomic_write_text  # noqa: E402
from mtbench.leaderboard.records import read_records  # noqa: E402
from mtbench.leaderboard.step_costs import SCHEMA_VERSION, step_costs_path  # noqa: E402
from mtbench.methods import load_plugin  # noqa: E402
from mtbench.train.config import DEFAULT_PRECISION  # noqa: E402
from mtbench.train.optimizer import build_adam  # noqa: E402
from mtbench.train.runtime_options import ForwardOptions, autocast_dtype  # noqa: E402
from mtbench.train.trainer import build_method  # noqa: E402

# Benchmarks whose random batches the workloads module can make, with the model width taken from each record.
BATCHES = {"multidigitmnist": cnn_workload}


class ConfigurationRun:
    """One configuration of the records training its own model with Adam at the record's learning rate."""

    def __init__(self, record: dict, workload: Workload) -> None:
        benchmark = get_benchmark(record["benchmark"])
        self.workload = dataclasses.replace(workload, tasks=list(record["tasks"]))
        torch.manual_seed(0)
        self.model = benchmark.build_model(self.workload.tasks, record["model_config"])
        forward = ForwardOptions(autocast_dtype(record["train_config"].get("precision", DEFAULT_PRECISION), workload.device))
        if forward.autocast_dtype is not None:
            # As `mtbench run --precision bf16`: the forward pass and the task losses under autocast.
            self.model.forward = under_autocast(forward, workload.device, self.model.forward)
            self.workload = dataclasses.replace(self.workload, task_loss=under_autocast(forward, workload.device, workload.task_loss))
        self.model.train()
        self.method = build_method(record["method"], self.workload.tasks, record["method_config"])
        parameters = list(self.model.parameters()) + list(self.method.parameters())
        self.optimizer = build_adam(parameters, record["train_config"]["learning_rate"], self.workload.device)
        self.track_cosines = len(self.workload.tasks) > 1

    def step(self, index: int) -> None:
        batch = self.workload.batches[index % len(self.workload.batches)]
        train_step(self.model, self.method, self.optimizer, self.workload, batch, index, self.track_cosines)


def configurations(records: list[dict]) -> dict[str, dict]:
    """Return the first finished record of every config_id, in first-seen order."""
    first: dict[str, dict] = {}
    for record in records:
        if record.get("status") == "finished":
            first.setdefault(record["config_id"], record)
    return first


def choose_reference(configs: dict[str, dict], benchmark: str, requested: str | None) -> str:
    """Return the config id of the reference: ``requested`` (a config id or prefix) or equal weighting with default model options."""
    if requested:
        matches = [config_id for config_id in configs if config_id.startswith(requested)]
        if not matches:
            raise MtbenchError(f"--reference {requested} matches no configuration of {benchmark}; give a config id of its records (lower-case hex).")
        if len(matches) > 1:
            raise MtbenchError(f"--reference {requested} matches {len(matches)} configurations of {benchmark}; give a longer config id prefix.")
        return matches[0]
    defaults = get_benchmark(benchmark).model_options({})
    for config_id, record in configs.items():
        if record["method"] == "equal" and len(record["tasks"]) > 1 and record["model_config"] == defaults:
            return config_id
    raise MtbenchError(f"No finished equal-weighting run with default model options in {benchmark}'s records; pass --reference CONFIG_ID.")


def measure(runs: dict[str, ConfigurationRun], reference: str, arguments: argparse.Namespace) -> dict[str, dict]:
    """Time all runs interleaved, then count FLOPs and peak memory of one more step each."""
    timings = interleaved_timings({config_id: run.step for config_id, run in runs.items()}, arguments.rounds, arguments.steps, arguments.warmup)
    results = {}
    for config_id, run in runs.items():
        flops = count_flops(lambda run=run: run.step(0))
        with peak_memory(torch.device("cpu"), gradients_of=(run.model, run.method)) as peak:
            run.step(1)
        results[config_id] = {
            "ms_per_step": round(timings[config_id].median_wall() * 1000, 2),
            "ratio_cpu": round(round_ratio(timings[config_id].cpu, timings[reference].cpu), 3),
            "ratio_wall": round(round_ratio(timings[config_id].wall, timings[reference].wall), 3),
            "gflop_per_step": round(flops / 1e9, 4),
            "peak_tensor_mib": round(peak["peak_mb"], 2),
        }
    return results


def cpu_name() -> str:
    """Return the processor's model name from /proc/cpuinfo, or "unknown processor"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown processor"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", choices=sorted(BATCHES), default="multidigitmnist", help="benchmark whose records to measure")
    parser.add_argument("--leaderboard-dir", type=Path, default=Path("leaderboard"), help="leaderboard folder with results/")
    parser.add_argument("--reference", default=None, help="config id (or prefix) of the reference configuration")
    add_timing_arguments(parser, rounds=10, steps=3, warmup=3, candidate="configuration")
    parser.add_argument("--plugin", action="append", default=[], type=Path, metavar="FILE", help="Python file that registers methods of the records")
    arguments = parser.parse_args()
    if arguments.reference is not None and not arguments.reference.strip():
        parser.error("--reference needs a config id or its prefix")
    set_up_process(arguments.threads)

    try:
        for plugin in arguments.plugin:
            load_plugin(plugin)
        configs = configurations(read_records(arguments.leaderboard_dir, arguments.benchmark))
        if not configs:
            raise MtbenchError(f"No finished runs of {arguments.benchmark} in {arguments.leaderboard_dir}/results; train some first.")
        reference = choose_reference(configs, arguments.benchmark, arguments.reference)
    except MtbenchError as error:
        sys.exit(f"Error: {error}")

    workloads: dict[tuple[int, int], Workload] = {}
    runs = {}
    for config_id, record in configs.items():
        shape = (record["model_config"]["width"], record["train_config"]["batch_size"])
        if shape not in workloads:
            workloads[shape] = BATCHES[arguments.benchmark](width=shape[0], batch_size=shape[1])
        runs[config_id] = ConfigurationRun(record, workloads[shape])

    print(f"{len(runs)} configurations of {arguments.benchmark}; {machine_line()}", flush=True)
    results = measure(runs, reference, arguments)
    command = "python benchmarks/leaderboard_step_cost.py " + shlex.join(sys.argv[1:])
    document = {
        "schema_version": SCHEMA_VERSION,
        "benchmark": arguments.benchmark,
        "measured_on": datetime.date.today().isoformat(),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores; {machine_line()}",
        "command": command.strip(),
        "reference": reference,
        "configurations": results,
    }
    path = step_costs_path(arguments.leaderboard_dir, arguments.benchmark)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
    except (OSError, MtbenchError) as error:
        sys.exit(f"Error: cannot write {path}: {error}. Remove what is in the way and run this command again.")
    for config_id, result in results.items():
        print(f"{config_id[:8]} {configs[config_id]['method']:12s} {result['ratio_cpu']:.2f} x reference, {result['gflop_per_step']:.2f} GFLOP")
    print(f"wrote {path}; run `mtbench leaderboard` to show it")


if __name__ == "__main__":
    main()

"""Measure every registered method's training step: time and peak memory relative to equal weighting.

Each multi-task method trains its own copy of the same model, from the same
initial weights, on the same random batches in this one process. Methods run
interleaved, a few steps each per round (see ``benchmarks/measure.py``), and
every ratio is a median over rounds of per-round ratios to equal weighting.
Cosine tracking runs every step, as with the trainer's default
``--cosine-every 1``; equal weighting is also timed without it. After the
timed rounds, one more step per method is run to count autograd calls and
backward passes through the encoder, one to count FLOPs, and one to measure
peak tensor memory.

    python benchmarks/method_step_time.py --workload cnn
    python benchmarks/method_step_time.py --workload segnet --rounds 6

Single-task methods are left out, because they train one task only.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import BackwardCounter, add_timing_arguments, count_flops, format_table, interleaved_timings, machine_line, peak_memory, round_ratio, set_up_process  # noqa: E402
from workloads import WORKLOADS, Workload, train_step  # noqa: E402

from mtbench.methods import get_method, list_methods  # noqa: E402
from mtbench.methods.jacobian import current_strategy  # noqa: E402
from mtbench.train.optimizer import build_adam  # noqa: E402

REFERENCE = "equal"
UNTRACKED_REFERENCE = "equal (no cosine tracking)"


class MethodRun:
    """One method training its own model with its own Adam optimiser (learning rate 1e-3)."""

    def __init__(self, workload: Workload, method: str, track_cosines: bool) -> None:
        self.workload = workload
        self.model = workload.build_model()
        self.model.train()
        self.method = get_method(method)(workload.tasks)
        self.optimizer = build_adam(list(self.model.parameters()) + list(self.method.parameters()), 1e-3, workload.device)
        self.track_cosines = track_cosines

    def step(self, index: int) -> None:
        batch = self.workload.batches[index % len(self.workload.batches)]
        train_step(self.model, self.method, self.optimizer, self.workload, batch, index, self.track_cosines)


def multi_task_methods(selected: str) -> list[str]:
    """Return the registered multi-task methods, or the comma-separated ``selected`` ones, equal weighting first."""
    names = [name for name in list_methods() if not get_method(name).single_task]
    if selected:
        names = [name.strip() for name in selected.split(",")]
        for name in names:
            get_method(name)
    return [REFERENCE] + [name for name in names if name != REFERENCE]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="cnn", help="model and data to train")
    parser.add_argument("--methods", default="", help="comma-separated method names (default: every multi-task method)")
    add_timing_arguments(parser, rounds=10, steps=3, warmup=3, candidate="method")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to measure on the GPU")
    arguments = parser.parse_args()

    set_up_process(arguments.threads)
    workload = WORKLOADS[arguments.workload](device=torch.device(arguments.device))
    runs = {name: MethodRun(workload, name, track_cosines=True) for name in multi_task_methods(arguments.methods)}
    runs[UNTRACKED_REFERENCE] = MethodRun(workload, REFERENCE, track_cosines=False)

    print(f"{workload.description}; {machine_line()}; task gradients: {current_strategy()}")
    print(f"{arguments.rounds} rounds of {arguments.steps} steps after {arguments.warmup} warm-up steps", flush=True)
    timings = interleaved_timings({name: run.step for name, run in runs.items()}, arguments.rounds, arguments.steps, arguments.warmup)

    device = workload.device
    memory: dict[str, float] = {}
    counts: dict[str, BackwardCounter] = {}
    flops: dict[str, int] = {}
    for name, run in runs.items():
        with BackwardCounter(run.model.shared_parameters()[0]) as counter:
            run.step(0)
        counts[name] = counter
        flops[name] = count_flops(lambda: run.step(1))
        with peak_memory(device, gradients_of=(run.model, run.method)) as peak:
            run.step(2)
        memory[name] = peak["peak_mb"]

    reference = timings[REFERENCE]
    untracked = timings[UNTRACKED_REFERENCE]
    header = [
        "method",
        "median ms/step",
        "ratio to equal (wall)",
        "ratio to equal (CPU)",
        "ratio to untracked equal (CPU)",
        "GFLOP/step",
        "FLOP ratio to equal",
        "peak MiB",
        "memory ratio to equal",
        "autograd calls",
        "encoder passes",
    ]
    rows = []
    for name in runs:
        rows.append(
            [
                name,
                f"{timings[name].median_wall() * 1000:.1f}",
                f"{round_ratio(timings[name].wall, reference.wall):.2f}",
                f"{round_ratio(timings[name].cpu, reference.cpu):.2f}",
                f"{round_ratio(timings[name].cpu, untracked.cpu):.2f}",
                f"{flops[name] / 1e9:.2f}",
                f"{flops[name] / flops[REFERENCE]:.2f}",
                f"{memory[name]:.1f}",
                f"{memory[name] / memory[REFERENCE]:.2f}",
                str(counts[name].autograd_calls),
                str(counts[name].encoder_passes),
            ]
        )
    print()
    print(format_table(header, rows))


if __name__ == "__main__":
    main()

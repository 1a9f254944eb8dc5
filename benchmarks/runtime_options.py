"""Measure the training step with `mtbench run`'s speed switches: bf16 autocast, channels-last and torch.compile.

For each method, four candidates train their own copy of the same model from
the same initial weights on the same random batches, in this one process:

- ``default``: float32, contiguous tensors, eager execution;
- ``bf16``: the forward pass and the task losses under bfloat16 autocast
  (``--precision bf16``); the method runs outside it;
- ``channels-last``: the model and the 4-D inputs in channels-last memory
  format (``--channels-last``);
- ``compile``: the encoder and each decoder compiled with torch.compile as
  ``--compile`` does (``mtbench.train.runtime_options.compile_in_place``), inductor
  by default.

CosReg needs double backward, which torch.compile does not support, so it has
no compile candidate. Candidates run interleaved (see ``benchmarks/measure.py``)
and each ratio is a median over rounds of the per-round ratio to the method's
default candidate. The first step of every candidate is timed on its own: for
``compile`` it includes the compilation. Peak memory is measured in one more
step; on the CPU the tracker cannot see inside compiled graphs, so ``compile``
has none there.

    python benchmarks/runtime_options.py --workload cnn
    python benchmarks/runtime_options.py --workload segnet --rounds 6 --steps 2
    python benchmarks/runtime_options.py --workload cnn --device cuda
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import add_timing_arguments, format_table, interleaved_timings, machine_line, peak_memory, round_ratio, set_up_process  # noqa: E402
from workloads import WORKLOADS, Workload, train_step  # noqa: E402

from mtbench.methods import get_method  # noqa: E402
from mtbench.train.optimizer import build_adam  # noqa: E402
from mtbench.train.runtime_options import ForwardOptions, prepare_model  # noqa: E402

OPTIONS = ("default", "bf16", "channels-last", "compile")


def under_autocast(forward: ForwardOptions, device: torch.device, function):
    """Return ``function`` run under the autocast of ``forward``, as the trainer runs the forward pass and the task losses."""

    def wrapped(*arguments, **keywords):
        with forward.autocast(device):
            return function(*arguments, **keywords)

    return wrapped


class OptionRun:
    """One method with one runtime option, training its own model with its own Adam optimiser (learning rate 1e-3)."""

    def __init__(self, workload: Workload, method: str, option: str, backend: str) -> None:
        self.option = option
        self.model = workload.build_model()
        self.forward = ForwardOptions(torch.bfloat16 if option == "bf16" else None, option == "channels-last")
        self.model = prepare_model(self.model, option == "channels-last", backend if option == "compile" else None)
        if option == "bf16":
            self.model.forward = under_autocast(self.forward, workload.device, self.model.forward)
            workload = dataclasses.replace(workload, task_loss=under_autocast(self.forward, workload.device, workload.task_loss))
        self.model.train()
        self.workload = workload
        self.batches = [(self.forward.inputs(inputs), targets) for inputs, targets in workload.batches]
        self.method = get_method(method)(workload.tasks)
        self.optimizer = build_adam(list(self.model.parameters()) + list(self.method.parameters()), 1e-3, workload.device)

    def step(self, index: int) -> None:
        batch = self.batches[index % len(self.batches)]
        train_step(self.model, self.method, self.optimizer, self.workload, batch, index, track_cosines=True)


def build_runs(workload: Workload, methods: list[str], options: list[str], backend: str) -> dict[str, OptionRun]:
    """Return the candidates, keyed "method / option"; methods that need double backward get no compile candidate."""
    runs = {}
    for method in methods:
        for option in options:
            if option == "compile" and get_method(method).needs_double_backward:
                continue
            runs[f"{method} / {option}"] = OptionRun(workload, method, option, backend)
    return runs


def first_step_seconds(runs: dict[str, OptionRun]) -> dict[str, float]:
    """Run and time each candidate's first step (for ``compile``, the compilation included)."""
    seconds = {}
    for name, run in runs.items():
        started = time.perf_counter()
        run.step(0)
        if run.workload.device.type == "cuda":
            torch.cuda.synchronize(run.workload.device)
        seconds[name] = time.perf_counter() - started
        print(f"  first step of {name}: {seconds[name]:.2f} s", flush=True)
    return seconds


def peak_megabytes(run: OptionRun) -> float | None:
    """Return the peak tensor memory of one step, or None for a compiled model on the CPU."""
    if run.option == "compile" and run.workload.device.type != "cuda":
        return None
    with peak_memory(run.workload.device, gradients_of=(run.model, run.method)) as peak:
        run.step(1)
    return peak["peak_mb"]


def table_rows(runs: dict[str, OptionRun], timings, first_steps: dict[str, float], memory: dict[str, float | None]) -> list[list[str]]:
    rows = []
    for name, run in runs.items():
        method = name.split(" / ")[0]
        reference = timings[f"{method} / default"]
        rows.append(
            [
                method,
                run.option,
                f"{timings[name].median_wall() * 1000:.1f}",
                f"{round_ratio(timings[name].wall, reference.wall):.2f}",
                f"{round_ratio(timings[name].cpu, reference.cpu):.2f}",
                f"{first_steps[name]:.2f}",
                "-" if memory[name] is None else f"{memory[name]:.1f}",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="cnn", help="model and data to train")
    parser.add_argument("--methods", default="equal,mgda,pcgrad,cosreg", help="comma-separated method names")
    parser.add_argument("--options", default=",".join(OPTIONS), help=f"comma-separated candidates among {', '.join(OPTIONS)}; default always runs")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend of the compile candidate")
    add_timing_arguments(parser, rounds=10, steps=3, warmup=2, candidate="candidate", warmup_note=", after its first step")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to measure on the GPU")
    arguments = parser.parse_args()

    options = ["default"] + [option.strip() for option in arguments.options.split(",") if option.strip() not in ("", "default")]
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        parser.error(f"unknown option(s) {', '.join(unknown)}; choose among {', '.join(OPTIONS)}")
    methods = [name.strip() for name in arguments.methods.split(",")]

    set_up_process(arguments.threads)
    workload = WORKLOADS[arguments.workload](device=torch.device(arguments.device))
    runs = build_runs(workload, methods, options, arguments.compile_backend)

    print(f"{workload.description}; {machine_line()}; compile backend: {arguments.compile_backend}")
    print(f"{arguments.rounds} rounds of {arguments.steps} steps after 1 + {arguments.warmup} warm-up steps", flush=True)
    first_steps = first_step_seconds(runs)
    timings = interleaved_timings({name: run.step for name, run in runs.items()}, arguments.rounds, arguments.steps, arguments.warmup)
    memory = {name: peak_megabytes(run) for name, run in runs.items()}

    header = ["method", "option", "median ms/step", "ratio to default (wall)", "ratio to default (CPU)", "first step s", "peak MiB"]
    print()
    print(format_table(header, table_rows(runs, timings, first_steps, memory)))


if __name__ == "__main__":
    main()

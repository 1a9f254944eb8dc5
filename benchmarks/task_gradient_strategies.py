"""Compare the ways of computing per-task gradients, per method, on full training steps.

For each method below and each strategy of ``mtbench.methods.jacobian``
(``loop``, ``representation-loop``, ``representation-batched``), a fresh model
trains on the same batches. The strategies of one method run interleaved (see
``benchmarks/measure.py``). Reports the median step time, the ratio to the
``loop`` strategy of the same method (wall-clock and CPU time), the peak tensor
memory of one step, and the largest difference between the gradients that the
strategy and ``loop`` write after the first step from the same weights.

    python benchmarks/task_gradient_strategies.py --workload cnn --threads 1
    python benchmarks/task_gradient_strategies.py --workload segnet --threads 1
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import add_timing_arguments, format_table, interleaved_timings, machine_line, peak_memory, round_ratio, set_up_process  # noqa: E402
from workloads import WORKLOADS, Workload, train_step  # noqa: E402

from mtbench.methods import StepContext, get_method  # noqa: E402
from mtbench.methods.jacobian import TASK_GRADIENT_STRATEGIES, task_gradient_strategy  # noqa: E402
from mtbench.train.optimizer import build_adam  # noqa: E402

# (label, method, hyper-parameters, cosine tracking): the consumers of per-task gradients.
CONFIGURATIONS = [
    ("equal + cosine tracking", "equal", {}, True),
    ("cosreg", "cosreg", {}, True),
    ("gradnorm", "gradnorm", {}, True),
    ("mgda", "mgda", {}, True),
    ("pcgrad", "pcgrad", {}, True),
]


class Candidate:
    """One method trained with one strategy: its own model, method and optimiser."""

    def __init__(self, workload: Workload, method: str, hyperparameters: dict, track_cosines: bool, strategy: str) -> None:
        self.workload = workload
        self.model = workload.build_model()
        self.model.train()
        self.method = get_method(method)(workload.tasks, **hyperparameters)
        parameters = list(self.model.parameters()) + list(self.method.parameters())
        self.optimizer = build_adam(parameters, 1e-3, workload.device)
        self.hyperparameters = hyperparameters
        self.track_cosines = track_cosines
        self.strategy = strategy

    def step(self, index: int) -> None:
        batch = self.workload.batches[index % len(self.workload.batches)]
        with task_gradient_strategy(self.strategy):
            train_step(self.model, self.method, self.optimizer, self.workload, batch, index, self.track_cosines)

    def first_gradients(self) -> list[torch.Tensor]:
        """Return the model's gradients after one step's backward pass from the initial weights, without an update."""
        model = self.workload.build_model()
        model.train()
        method = type(self.method)(self.workload.tasks, **self.hyperparameters)
        inputs, targets = self.workload.batches[0]
        torch.manual_seed(1)
        with task_gradient_strategy(self.strategy):
            representation, outputs = model(inputs)
            losses = {task: self.workload.task_loss(task, outputs[task], targets[task]) for task in self.workload.tasks}
            context = StepContext(
                losses,
                model.shared_parameters(),
                model.last_shared_parameters(),
                representation,
                0,
                1,
                {task: model.task_parameters(task) for task in self.workload.tasks},
            )
            method.backward(context)
        return [parameter.grad.clone() if parameter.grad is not None else torch.zeros_like(parameter) for parameter in model.parameters()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="cnn", help="model and data to train")
    add_timing_arguments(parser, rounds=15, steps=4, warmup=3, candidate="candidate")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to measure on the GPU")
    arguments = parser.parse_args()

    set_up_process(arguments.threads)
    workload = WORKLOADS[arguments.workload](device=torch.device(arguments.device))
    print(f"{workload.description}; {machine_line()}")
    print(f"{arguments.rounds} rounds of {arguments.steps} steps after {arguments.warmup} warm-up steps\n")

    rows = []
    for label, method, hyperparameters, track_cosines in CONFIGURATIONS:
        candidates = {
            strategy: Candidate(workload, method, hyperparameters, track_cosines, strategy) for strategy in TASK_GRADIENT_STRATEGIES
        }
        timings = interleaved_timings(
            {strategy: candidate.step for strategy, candidate in candidates.items()}, arguments.rounds, arguments.steps, arguments.warmup
        )
        reference_gradients = candidates["loop"].first_gradients()
        for strategy, candidate in candidates.items():
            with peak_memory(workload.device, gradients_of=(candidate.model, candidate.method)) as memory:
                candidate.step(0)
            difference = max(
                float((own - reference).abs().max()) for own, reference in zip(candidate.first_gradients(), reference_gradients)
            )
            rows.append(
                [
                    label,
                    strategy,
                    f"{timings[strategy].median_wall() * 1000:.1f}",
                    f"{round_ratio(timings[strategy].wall, timings['loop'].wall):.2f}",
                    f"{round_ratio(timings[strategy].cpu, timings['loop'].cpu):.2f}",
                    f"{memory['peak_mb']:.1f}",
                    f"{difference:.1e}",
                ]
            )
        print(format_table(["method", "strategy", "median ms/step", "ratio to loop (wall)", "ratio to loop (CPU)", "peak MiB", "max abs gradient difference"], rows[-3:]), flush=True)
        print()

    print(format_table(["method", "strategy", "median ms/step", "ratio to loop (wall)", "ratio to loop (CPU)", "peak MiB", "max abs gradient difference"], rows))


if __name__ == "__main__":
    main()

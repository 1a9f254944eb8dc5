"""Measure the cost of a training step per method, as a ratio to equal weighting.

Every method trains the MultiDigitMNIST CNN on the same random batches in this
one process, so the ratios do not depend on the machine's speed as much as
the seconds do. Methods are interleaved over several rounds and the median
step time of each is reported. Also measures how long loading the prepared
training split takes, when it is prepared.

    python benchmarks/step_time.py --steps 40 --rounds 3
"""

import argparse
import statistics
import time

import torch

from mtbench.methods import StepContext, get_method
from mtbench.metrics.gradient_cosine import pairwise_cosines
from mtbench.models.multidigit_cnn import MultiDigitCNN, MultiDigitCNNConfig

CONFIGURATIONS = [
    ("equal", {}, False, "equal weights (cosines tracked)"),
    ("equal", {}, True, "equal weights + BatchNorm (cosines tracked)"),
    ("cosreg", {"lambda_": 1.0}, False, "CosReg"),
    ("cosreg", {"lambda_": 1.0}, True, "CosReg + BatchNorm"),
]


def time_steps(method_name: str, method_arguments: dict, batchnorm: bool, batches: list, track_cosines: bool = True) -> list[float]:
    torch.manual_seed(0)
    model = MultiDigitCNN({"left": 5, "right": 5}, MultiDigitCNNConfig(batchnorm=batchnorm))
    method = get_method(method_name)(["left", "right"], **method_arguments)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seconds = []
    for inputs, left, right in batches:
        began = time.perf_counter()
        representation, outputs = model(inputs)
        losses = {
            "left": torch.nn.functional.cross_entropy(outputs["left"], left),
            "right": torch.nn.functional.cross_entropy(outputs["right"], right),
        }
        context = StepContext(losses, model.shared_parameters(), model.last_shared_parameters(), representation, 0, 1)
        if track_cosines and not method.uses_task_gradients:
            context.last_shared_task_gradients()
        optimizer.zero_grad(set_to_none=True)
        method.backward(context)
        optimizer.step()
        if track_cosines:
            pairwise_cosines(context.cached_task_gradients())
        seconds.append(time.perf_counter() - began)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per method and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all methods")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step")
    arguments = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.rand(arguments.batch_size, 1, 64, 64, generator=generator),
            torch.randint(0, 5, (arguments.batch_size,), generator=generator),
            torch.randint(0, 5, (arguments.batch_size,), generator=generator),
        )
        for _ in range(arguments.steps + 5)
    ]

    samples: dict[str, list[float]] = {label: [] for *_, label in CONFIGURATIONS}
    samples["equal weights (no cosine tracking)"] = []
    for _ in range(arguments.rounds):
        for name, method_arguments, batchnorm, label in CONFIGURATIONS:
            samples[label] += time_steps(name, method_arguments, batchnorm, batches)[5:]
        samples["equal weights (no cosine tracking)"] += time_steps("equal", {}, False, batches, track_cosines=False)[5:]

    reference = statistics.median(samples["equal weights (no cosine tracking)"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {arguments.batch_size}")
    print("| configuration | median ms/step | ratio to equal weights without cosine tracking |")
    print("|---|---|---|")
    for label, values in samples.items():
        median = statistics.median(values)
        print(f"| {label} | {median * 1000:.1f} | {median / reference:.2f} |")


if __name__ == "__main__":
    main()

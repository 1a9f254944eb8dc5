"""Measure how long the prepared MultiDigitMNIST takes to load and to batch, against the model's step rate.

Reports the load time of each split (with and without the checksum
verification), the rate at which the trainer's indexing delivers batches of
64, and, in the same process, the rate at which equal weighting without
cosine tracking consumes batches on the MultiDigitMNIST CNN (median of
``--steps`` steps on random batches, see ``benchmarks/workloads.py``).

    python benchmarks/load_time.py --data-root DIR
    python benchmarks/load_time.py --synthetic

``--synthetic`` first prepares a full-size MultiDigitMNIST (16000 / 4000 /
5000 images) from random MNIST-shaped digits in a temporary folder. Load and
batching times depend on the array sizes, not on the pixel values, so it
replaces the real data where that is not prepared.
"""

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import machine_line, set_up_process  # noqa: E402
from workloads import cnn_workload, train_step  # noqa: E402

from mtbench.benchmarks.multidigitmnist import MultiDigitMNISTBenchmark  # noqa: E402
from mtbench.data.multidigitmnist import load_multidigitmnist, prepare_multidigitmnist  # noqa: E402
from mtbench.methods import get_method  # noqa: E402
from mtbench.paths import data_root  # noqa: E402
from mtbench.train.optimizer import build_adam  # noqa: E402

BATCH_SIZE = 64


@dataclass(frozen=True)
class RandomMnist:
    """MNIST-shaped random digits: 6000 training and 1000 test images per digit, as in MNIST."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str = "random MNIST-shaped digits"


def random_mnist(seed: int = 0) -> RandomMnist:
    rng = np.random.default_rng(seed)
    train_labels = np.repeat(np.arange(10, dtype=np.uint8), 6000)
    test_labels = np.repeat(np.arange(10, dtype=np.uint8), 1000)
    train_images = rng.integers(0, 256, size=(len(train_labels), 28, 28), dtype=np.uint8)
    test_images = rng.integers(0, 256, size=(len(test_labels), 28, 28), dtype=np.uint8)
    return RandomMnist(train_images, train_labels, test_images, test_labels)


def measure_loading(root: Path) -> None:
    folder = root / "multidigitmnist"
    for split in ("train", "val", "test"):
        for verify in (True, False):
            began = time.perf_counter()
            images, _ = load_multidigitmnist(folder, split, verify=verify)
            print(f"load {split:5s} ({images.shape[0]} images) verify={verify}: {time.perf_counter() - began:.3f} s")


def batches_per_second(root: Path) -> float:
    """Return the rate at which the trainer's indexing and ``prepare_batch`` deliver training batches."""
    benchmark = MultiDigitMNISTBenchmark()
    train = benchmark.load_split(root, "train")
    order = torch.randperm(len(train))
    began = time.perf_counter()
    for start in range(0, len(order), BATCH_SIZE):
        indices = order[start : start + BATCH_SIZE]
        benchmark.prepare_batch(train.inputs[indices])
        _ = {task: target[indices] for task, target in train.targets.items()}
    seconds = time.perf_counter() - began
    batches = len(range(0, len(order), BATCH_SIZE))
    print(f"batching: {batches / seconds:.0f} batches/s of {BATCH_SIZE} images ({seconds:.3f} s per epoch of {batches} batches)")
    return batches / seconds


def steps_per_second(steps: int) -> float:
    """Return the median rate of equal-weighting steps without cosine tracking on the MultiDigitMNIST CNN."""
    workload = cnn_workload(batch_size=BATCH_SIZE)
    model = workload.build_model()
    model.train()
    method = get_method("equal")(workload.tasks)
    optimizer = build_adam(list(model.parameters()), 1e-3, torch.device("cpu"))
    seconds = []
    for index in range(steps + 3):
        began = time.perf_counter()
        train_step(model, method, optimizer, workload, workload.batches[index % len(workload.batches)], index, track_cosines=False)
        seconds.append(time.perf_counter() - began)
    median = statistics.median(seconds[3:])
    print(f"model: {1 / median:.0f} steps/s ({median * 1000:.1f} ms per step of equal weighting, no cosine tracking)")
    return 1 / median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None, help="folder with prepared data (default: mtbench's data root)")
    parser.add_argument("--synthetic", action="store_true", help="prepare a full-size dataset from random digits in a temporary folder")
    parser.add_argument("--steps", type=int, default=30, help="model steps timed for the consumption rate")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (torch.set_num_threads)")
    arguments = parser.parse_args()
    set_up_process(arguments.threads)
    print(machine_line())

    with tempfile.TemporaryDirectory() as temporary:
        root = arguments.data_root or data_root()
        if arguments.synthetic:
            root = Path(temporary)
            began = time.perf_counter()
            prepare_multidigitmnist(random_mnist(), root / "multidigitmnist", log=lambda message: None)
            print(f"prepared a synthetic MultiDigitMNIST in {time.perf_counter() - began:.1f} s")
        measure_loading(root)
        delivered = batches_per_second(root)
    consumed = steps_per_second(arguments.steps)
    print(f"the input pipeline delivers batches {delivered / consumed:.0f} times as fast as the model consumes them")


if __name__ == "__main__":
    main()

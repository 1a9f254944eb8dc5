"""Measure how long the prepared MultiDigitMNIST takes to load and to batch.

Reports the load time of each split (with and without the checksum
verification) and the rate at which the trainer's indexing delivers batches
of 64, to compare with the rate at which the model consumes them.

    python benchmarks/load_time.py [--data-root DIR]
"""

import argparse
import time
from pathlib import Path

import torch

from mtbench.benchmarks.multidigitmnist import MultiDigitMNISTBenchmark
from mtbench.data.multidigitmnist import load_multidigitmnist
from mtbench.paths import data_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None, help="folder with prepared data")
    arguments = parser.parse_args()
    root = arguments.data_root or data_root()
    folder = root / "multidigitmnist"

    for split in ("train", "val", "test"):
        for verify in (True, False):
            began = time.perf_counter()
            images, _ = load_multidigitmnist(folder, split, verify=verify)
            print(f"load {split:5s} ({images.shape[0]} images) verify={verify}: {time.perf_counter() - began:.3f} s")

    benchmark = MultiDigitMNISTBenchmark()
    train = benchmark.load_split(root, "train")
    order = torch.randperm(len(train))
    began = time.perf_counter()
    for start in range(0, len(order), 64):
        indices = order[start : start + 64]
        benchmark.prepare_batch(train.inputs[indices])
        _ = {task: target[indices] for task, target in train.targets.items()}
    seconds = time.perf_counter() - began
    print(f"batching: {len(order) / 64 / seconds:.0f} batches/s of 64 images ({seconds:.3f} s per epoch)")


if __name__ == "__main__":
    main()

"""The interface the trainer uses to load, model and score a benchmark."""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from mtbench.benchmarks.definition import BenchmarkDefinition
from mtbench.models.multitask import MultiTaskModel


@dataclass
class SplitTensors:
    """One split in memory: model inputs and one target tensor per task."""

    inputs: torch.Tensor
    targets: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return self.inputs.shape[0]


class Evaluator(Protocol):
    def update(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> None: ...

    def compute(self) -> dict[str, float]: ...


class Benchmark(Protocol):
    definition: BenchmarkDefinition

    def data_folder(self, data_root: Path) -> Path: ...

    def dataset_checksum(self, data_root: Path) -> str: ...

    def verify(self, data_root: Path) -> str: ...

    def load_split(self, data_root: Path, split: str) -> SplitTensors: ...

    def prepare_batch(self, inputs: torch.Tensor) -> torch.Tensor: ...

    def model_options(self, model_config: dict) -> dict: ...

    def build_model(self, tasks: list[str], model_config: dict) -> MultiTaskModel: ...

    def task_loss(self, task: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...

    def evaluator(self, tasks: list[str]) -> Evaluator: ...

    def selection_metric(self, tasks: list[str]) -> str: ...


class AugmentingBenchmark(Benchmark, Protocol):
    """A benchmark that transforms training batches, e.g. with random flips.

    The trainer calls ``augment`` on the raw training batch before
    ``prepare_batch``, with the generator that also shuffles the batches, so
    a resumed run draws the same transformations.
    """

    def augment(
        self, inputs: torch.Tensor, targets: dict[str, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

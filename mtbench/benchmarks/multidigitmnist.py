"""The MultiDigitMNIST benchmark: two digit-classification tasks on one image."""

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from mtbench.benchmarks.base import SplitTensors
from mtbench.benchmarks.definition import read_definition
from mtbench.data.multidigitmnist import dataset_checksum, load_multidigitmnist, verify_multidigitmnist
from mtbench.errors import MtbenchError
from mtbench.metrics.classification import MultiTaskAccuracy
from mtbench.models.multidigit_cnn import MultiDigitCNN, MultiDigitCNNConfig


class MultiDigitMNISTBenchmark:
    """Classify the even left digit and the odd right digit of a 64x64 image."""

    def __init__(self) -> None:
        self.definition = read_definition("multidigitmnist")

    def data_folder(self, data_root: Path) -> Path:
        return Path(data_root) / "multidigitmnist"

    def dataset_checksum(self, data_root: Path) -> str:
        return dataset_checksum(self.data_folder(data_root))

    def verify(self, data_root: Path) -> str:
        """Check every prepared file against the manifest's SHA-256 and return the dataset checksum."""
        return verify_multidigitmnist(self.data_folder(data_root))

    def load_split(self, data_root: Path, split: str) -> SplitTensors:
        images, labels = load_multidigitmnist(self.data_folder(data_root), split)
        inputs = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
        labels = torch.from_numpy(np.ascontiguousarray(labels)).long()
        targets = {task: labels[:, index] for index, task in enumerate(self.definition.task_names)}
        return SplitTensors(inputs, targets)

    def prepare_batch(self, inputs: torch.Tensor) -> torch.Tensor:
        """Convert uint8 images to float32 in [0, 1]."""
        return inputs.float().div_(255.0)

    def model_options(self, model_config: dict) -> dict:
        """Return every CNN option: the defaults overridden by ``model_config``.

        Raises MtbenchError for an option the CNN does not have.
        """
        options = {"width": 20, "kernel_size": 3, "hidden_units": 50, "batchnorm": False, "dropout": 0.0}
        unknown = sorted(set(model_config) - set(options))
        if unknown:
            raise MtbenchError(f"Invalid model option(s) {unknown} for the MultiDigitMNIST CNN. Valid options: {', '.join(options)}.")
        return {**options, **model_config}

    def build_model(self, tasks: list[str], model_config: dict) -> MultiDigitCNN:
        classes = {task.name: len(task.classes) for task in self.definition.tasks if task.name in tasks}
        try:
            config = MultiDigitCNNConfig(**model_config)
        except TypeError as error:
            raise MtbenchError(f"Invalid model option for multidigit_cnn: {error}.") from error
        return MultiDigitCNN(classes, config)

    def task_loss(self, task: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(output, target)

    def evaluator(self, tasks: list[str]) -> MultiTaskAccuracy:
        return MultiTaskAccuracy(tasks)

    def selection_metric(self, tasks: list[str]) -> str:
        return self.definition.selection_metric if len(tasks) > 1 else f"{tasks[0]}_accuracy"

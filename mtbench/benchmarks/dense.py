"""Dense benchmarks: per-pixel tasks on RGB images (NYUv2, SUN RGB-D), solved by SegNet.

One class serves every dense benchmark. Its definition
(``datasets/<name>/benchmark.toml``) sets the tasks, sizes, losses,
augmentation and defaults. The prepared data lives in ``<data_root>/<name>/``
in the format of :mod:`mtbench.data.dense_format`, and each task reads the
field of its name.

Losses, averaged over the valid pixels of the batch (0 when a batch has none):

- segmentation ``cross_entropy``: pixel-wise cross-entropy, void pixels (255) ignored;
- depth ``l1``: |d - g| in metres, or ``mse``: (d - g)^2, over pixels with true depth > 0;
- normal ``cosine``: 1 - cos(prediction, truth), or ``mse``: the squared error of the unit
  prediction averaged over the three channels, over pixels with a non-zero true normal.

The CosReg publication ("Regularizing Deep Multi-Task Networks using
Orthogonal Gradients") trains NYUv2 depth and normals with the mean squared
error. mtbench's definitions use ``l1`` and ``cosine`` instead, the losses of
the MTAN NYUv2 benchmark (lorenmt/mtan, ``im2im_pred/utils.py``). For unit
vectors the squared error summed over channels is 2 (1 - cos), so the two
normal losses differ by a constant factor.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from mtbench.benchmarks.base import SplitTensors
from mtbench.benchmarks.definition import DENSE_KINDS, read_definition
from mtbench.data.dense_format import IGNORE_INDEX, dense_checksum, load_dense_split, read_dense_manifest, verify_dense_dataset
from mtbench.errors import MtbenchError
from mtbench.metrics.dense import MEAN_TASK_SCORE, DenseEvaluator, task_score_name
from mtbench.metrics.normals import normal_cosines
from mtbench.models.segnet import DenseHead, SegNet, SegNetConfig, decoder_stages_for

# ImageNet statistics of torchvision's VGG16-bn weights, per RGB channel of images in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SEGNET_OPTIONS = ("width", "pretrained")
# Options of the MultiDigitMNIST CNN that SegNet's fixed architecture accepts
# only at these values: 3 x 3 convolutions, no dropout, batch normalisation always on.
_FIXED_CNN_OPTIONS = {"kernel_size": 3, "dropout": 0.0, "batchnorm": True}


class DenseBenchmark:
    """A dense benchmark read from its definition ``datasets/<name>/benchmark.toml``."""

    def __init__(self, name: str) -> None:
        self.definition = read_definition(name)
        other = [task.name for task in self.definition.tasks if task.kind not in DENSE_KINDS]
        if other or self.definition.model != "segnet":
            raise MtbenchError(
                f"Benchmark definition '{name}' is not a dense SegNet benchmark (model {self.definition.model!r}, "
                f"non-dense tasks {other}). Restore datasets/{name}/benchmark.toml from the repository."
            )
        self.kinds = {task.name: task.kind for task in self.definition.tasks}
        self.losses = {task.name: task.loss for task in self.definition.tasks}
        self.num_classes = {task.name: len(task.classes) for task in self.definition.tasks if task.kind == "segmentation"}

    def data_folder(self, data_root: Path) -> Path:
        return Path(data_root) / self.definition.name

    def dataset_checksum(self, data_root: Path) -> str:
        return dense_checksum(self.data_folder(data_root))

    def verify(self, data_root: Path) -> str:
        """Check that the prepared data fits the definition and every file its SHA-256; return the dataset checksum."""
        folder = self.data_folder(data_root)
        self._check_manifest(folder)
        return verify_dense_dataset(folder)

    def load_split(self, data_root: Path, split: str) -> SplitTensors:
        """Load one split into memory: uint8 images (N, 3, H, W) and one target tensor per task, in the prepared dtypes."""
        folder = self.data_folder(data_root)
        self._check_manifest(folder)
        arrays = load_dense_split(folder, split)
        # np.array copies the read-only memory maps, so batches may be changed in place.
        inputs = torch.from_numpy(np.array(arrays["image"]))
        targets = {task: torch.from_numpy(np.array(arrays[task])) for task in self.kinds}
        return SplitTensors(inputs, targets)

    def _check_manifest(self, folder: Path) -> None:
        """Raise MtbenchError when the prepared data lacks a task field or has other sizes or classes than the definition."""
        manifest = read_dense_manifest(folder)
        redo = f"Prepare {folder} again for benchmark '{self.definition.name}' (see `mtbench prepare --help`)."
        missing = sorted(set(self.kinds) - set(manifest["fields"]))
        if missing:
            raise MtbenchError(f"{folder} has no field {', '.join(missing)}, which benchmark '{self.definition.name}' trains on. {redo}")
        for key, expected in (("image_size", self.definition.input_size), ("target_size", self.definition.target_size)):
            found = tuple(manifest.get(key, ()))
            if found != tuple(expected):
                raise MtbenchError(
                    f"{folder} was prepared with {key.replace('_', ' ')} {_size_text(found)}, "
                    f"but benchmark '{self.definition.name}' expects {_size_text(expected)}. {redo}"
                )
        for task in self.definition.tasks:
            found = list(manifest["class_names"].get(task.name, ()))
            if task.kind == "segmentation" and found != list(task.classes):
                raise MtbenchError(
                    f"{folder} lists the classes {found} for {task.name}, but benchmark '{self.definition.name}' "
                    f"expects {list(task.classes)} in this order. {redo}"
                )

    def prepare_batch(self, inputs: torch.Tensor) -> torch.Tensor:
        """Convert uint8 RGB images to float32 normalised with the ImageNet mean and standard deviation per channel."""
        mean = torch.tensor(IMAGENET_MEAN, device=inputs.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=inputs.device).view(1, 3, 1, 1)
        return (inputs.float() / 255.0 - mean) / std

    def augment(self, inputs: torch.Tensor, targets: dict[str, torch.Tensor], generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return a training batch with the definition's augmentation applied; the inputs are not changed.

        ``horizontal_flip`` mirrors each image left to right with probability
        0.5, drawn from ``generator`` (a CPU generator), and mirrors its
        targets with it. A mirrored normal also has its x component negated,
        since x points to the right of the image. Without augmentation the
        batch is returned as it is and ``generator`` is not used.
        """
        if "horizontal_flip" not in self.definition.augmentation:
            return inputs, targets
        flip = (torch.rand(len(inputs), generator=generator) < 0.5).to(inputs.device)
        flipped_targets = {task: _flip_where(target, flip, negate_x=self.kinds.get(task) == "normal") for task, target in targets.items()}
        return _flip_where(inputs, flip), flipped_targets

    def model_options(self, model_config: dict[str, Any]) -> dict[str, Any]:
        """Return the complete SegNet options: the definition's defaults overridden by ``model_config``.

        Raises MtbenchError for an unknown option and for CNN options that SegNet cannot honour.
        """
        unknown = sorted(set(model_config) - set(SEGNET_OPTIONS) - set(_FIXED_CNN_OPTIONS))
        if unknown:
            raise MtbenchError(f"Unknown model option(s) {unknown} for SegNet. Valid options: {', '.join(SEGNET_OPTIONS)}.")
        if model_config.get("kernel_size", 3) != 3:
            raise MtbenchError(f"Invalid kernel size {model_config['kernel_size']} for SegNet: its convolutions are 3 x 3.")
        if model_config.get("dropout", 0.0):
            raise MtbenchError(f"Invalid dropout {model_config['dropout']} for SegNet: it has no dropout, so use 0.")
        options = {**SegNetConfig().to_dict(), **self.definition.model_options}
        options.update({name: model_config[name] for name in SEGNET_OPTIONS if name in model_config})
        return options

    def build_model(self, tasks: list[str], model_config: dict[str, Any]) -> SegNet:
        """Build SegNet with one decoder per task in ``tasks``; its outputs have the definition's target size."""
        try:
            config = SegNetConfig(**self.model_options(model_config))
        except TypeError as error:
            raise MtbenchError(f"Invalid model option for SegNet: {error}.") from error
        heads = {task: _head(self.kinds[task], self.num_classes.get(task, 0)) for task in tasks}
        stages = decoder_stages_for(self.definition.input_size, self.definition.target_size)
        return SegNet(heads, config, stages)

    def task_loss(self, task: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the loss of ``task`` on one batch, a scalar averaged over the batch's valid pixels."""
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = _LOSSES[self.kinds[task], self.losses[task]]
        return loss(output, target)

    def evaluator(self, tasks: list[str]) -> DenseEvaluator:
        return DenseEvaluator({task: self.kinds[task] for task in tasks}, self.num_classes, IGNORE_INDEX)

    def selection_metric(self, tasks: list[str]) -> str:
        """Return the validation metric that selects the epoch: the definition's, or the task's score for one task.

        A per-task selection metric of a task that is not trained falls back to ``mean_task_score``.
        """
        if len(tasks) == 1:
            return task_score_name(tasks[0], self.kinds[tasks[0]])
        metric = self.definition.selection_metric
        if metric == MEAN_TASK_SCORE or any(metric.startswith(f"{task}_") for task in tasks):
            return metric
        return MEAN_TASK_SCORE


def _size_text(size: tuple) -> str:
    return "x".join(str(side) for side in size) if size else "no size"


def _head(kind: str, num_classes: int) -> DenseHead:
    if kind == "segmentation":
        return DenseHead(num_classes)
    if kind == "depth":
        return DenseHead(1)
    return DenseHead(3, unit_vectors=True)


def _flip_where(batch: torch.Tensor, flip: torch.Tensor, negate_x: bool = False) -> torch.Tensor:
    """Return ``batch`` with the samples where ``flip`` is true mirrored along the last (width) axis."""
    mirrored = batch.flip(-1)
    if negate_x:
        sign = torch.tensor([-1.0, 1.0, 1.0], dtype=batch.dtype, device=batch.device).view(1, 3, *([1] * (batch.ndim - 2)))
        mirrored = mirrored * sign
    mask = flip.view(-1, *([1] * (batch.ndim - 1)))
    return torch.where(mask, mirrored, batch)


def _check_shapes(name: str, prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.shape != target.shape:
        raise ValueError(f"The {name} loss expects predictions and targets of one shape, got {tuple(prediction.shape)} and {tuple(target.shape)}.")


def segmentation_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return the cross-entropy of logits (N, C, h, w) against class indices (N, h, w), averaged over non-void pixels."""
    target = target.long()
    labelled = (target != IGNORE_INDEX).sum()
    total = functional.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / labelled.clamp(min=1)


def _depth_loss(squared: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the depth error of outputs (N, 1, h, w) against depths (N, h, w) in metres, averaged over depths > 0."""
        prediction = output[:, 0]
        _check_shapes("depth", prediction, target)
        valid = (target > 0).to(prediction.dtype)
        error = prediction - target
        per_pixel = error.square() if squared else error.abs()
        return (per_pixel * valid).sum() / valid.sum().clamp(min=1)

    return loss


def normal_cosine_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return 1 - cos between normals (N, 3, h, w), averaged over pixels with a non-zero true normal."""
    _check_shapes("normal", output, target)
    valid = (target.square().sum(dim=1) > 0).to(output.dtype)
    return ((1 - normal_cosines(output, target)) * valid).sum() / valid.sum().clamp(min=1)


def normal_squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return the squared error of unit predictions (N, 3, h, w), averaged over channels and valid pixels."""
    _check_shapes("normal", output, target)
    valid = (target.square().sum(dim=1) > 0).to(output.dtype)
    per_pixel = (functional.normalize(output, dim=1) - target).square().mean(dim=1)
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1)


_LOSSES: dict[tuple[str, str], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    ("segmentation", "cross_entropy"): segmentation_cross_entropy,
    ("depth", "l1"): _depth_loss(squared=False),
    ("depth", "mse"): _depth_loss(squared=True),
    ("normal", "cosine"): normal_cosine_loss,
    ("normal", "mse"): normal_squared_error,
}


def nyuv2() -> DenseBenchmark:
    """NYUv2 at 320 x 320 inputs and 80 x 80 targets: segmentation (13 classes), depth, normals."""
    return DenseBenchmark("nyuv2")


def nyuv2_288x384() -> DenseBenchmark:
    """NYUv2 at 288 x 384 inputs and targets, the resolution of the MTAN benchmark."""
    return DenseBenchmark("nyuv2-288x384")


def sunrgbd() -> DenseBenchmark:
    """SUN RGB-D at 320 x 320 inputs and 80 x 80 targets: segmentation (13 and 37 classes), depth."""
    return DenseBenchmark("sunrgbd")

"""Synthetic training workloads and the training step that the speed scripts time.

A workload is a model builder, a task loss and a few random batches held in
memory, so the scripts need no prepared data. Two workloads exist:

- ``cnn``: the MultiDigitMNIST CNN with its benchmark's two classification
  tasks, 64 x 64 grey images in [0, 1] and uniformly drawn labels.
- ``segnet``: SegNet with the NYUv2 benchmark's three dense tasks
  (13-class segmentation, depth, surface normals) at a reduced resolution,
  random weights, standard normal inputs, random labels, depths in
  [0.5, 10) m and random unit normals.

:func:`train_step` repeats the work of ``Trainer.train_step`` for one process:
forward pass, task losses, step context, the cosine diagnostics' task
gradients when the method does not provide them, the method's backward pass,
the optimiser step, ``after_optimizer_step`` and the pairwise cosines. It
leaves out the trainer's NaN checks, which cost the same for every method.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mtbench.benchmarks.dense import DenseBenchmark
from mtbench.benchmarks.multidigitmnist import MultiDigitMNISTBenchmark
from mtbench.methods import Method, StepContext
from mtbench.metrics.gradient_cosine import pairwise_cosines
from mtbench.models.multitask import MultiTaskModel

Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]


@dataclass
class Workload:
    """A model and its data: ``build_model()`` gives a fresh model with the same initial weights every time."""

    name: str
    description: str
    tasks: list[str]
    build_model: Callable[[], MultiTaskModel]
    task_loss: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]
    batches: list[Batch]
    device: torch.device = torch.device("cpu")


def _to_device(batches: list[Batch], device: torch.device) -> list[Batch]:
    return [(inputs.to(device), {task: target.to(device) for task, target in targets.items()}) for inputs, targets in batches]


def cnn_workload(
    batch_size: int = 64, width: int = 20, batch_count: int = 8, seed: int = 0, device: torch.device = torch.device("cpu")
) -> Workload:
    """Return the MultiDigitMNIST CNN workload with ``batch_count`` random batches on ``device``."""
    benchmark = MultiDigitMNISTBenchmark()
    tasks = benchmark.definition.task_names
    classes = {task.name: len(task.classes) for task in benchmark.definition.tasks}
    options = benchmark.model_options({"width": width})

    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(batch_count):
        images = torch.rand(batch_size, 1, 64, 64, generator=generator)
        labels = {task: torch.randint(0, classes[task], (batch_size,), generator=generator) for task in tasks}
        batches.append((images, labels))

    def build_model() -> MultiTaskModel:
        torch.manual_seed(seed)
        return benchmark.build_model(tasks, options).to(device)

    description = f"MultiDigitMNIST CNN, width {width}, batch {batch_size}, 64x64 inputs, {len(tasks)} tasks"
    return Workload("cnn", description, tasks, build_model, benchmark.task_loss, _to_device(batches, device), device)


def segnet_workload(
    batch_size: int = 4,
    width: int = 8,
    input_size: int = 64,
    batch_count: int = 4,
    seed: int = 0,
    device: torch.device = torch.device("cpu"),
) -> Workload:
    """Return the SegNet workload on NYUv2's tasks, with targets a quarter of ``input_size`` per side.

    NYUv2's 320 x 320 inputs with 80 x 80 targets have the same ratio, so the
    decoders undo the same 3 of 5 poolings as in the full benchmark.
    """
    benchmark = DenseBenchmark("nyuv2")
    tasks = benchmark.definition.task_names
    target = input_size // 4

    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(batch_count):
        images = torch.randn(batch_size, 3, input_size, input_size, generator=generator)
        targets = {}
        for task in tasks:
            kind = benchmark.kinds[task]
            if kind == "segmentation":
                classes = benchmark.num_classes[task]
                targets[task] = torch.randint(0, classes, (batch_size, target, target), generator=generator)
            elif kind == "depth":
                targets[task] = 0.5 + 9.5 * torch.rand(batch_size, target, target, generator=generator)
            else:
                normals = torch.randn(batch_size, 3, target, target, generator=generator)
                targets[task] = torch.nn.functional.normalize(normals, dim=1)
        batches.append((images, targets))

    def build_model() -> MultiTaskModel:
        torch.manual_seed(seed)
        return benchmark.build_model(tasks, {"width": width, "pretrained": False}).to(device)

    description = (
        f"SegNet, width {width}, random weights, batch {batch_size}, {input_size}x{input_size} inputs, "
        f"{target}x{target} targets, {len(tasks)} tasks"
    )
    return Workload("segnet", description, tasks, build_model, benchmark.task_loss, _to_device(batches, device), device)


WORKLOADS: dict[str, Callable[..., Workload]] = {"cnn": cnn_workload, "segnet": segnet_workload}


def train_step(
    model: MultiTaskModel,
    method: Method,
    optimizer: torch.optim.Optimizer,
    workload: Workload,
    batch: Batch,
    step: int,
    track_cosines: bool,
) -> dict[str, float]:
    """Train ``model`` on ``batch`` with ``method`` as ``Trainer.train_step`` does, and return the logged values."""
    inputs, targets = batch
    optimizer.zero_grad(set_to_none=True)
    representation, outputs = model(inputs)
    task_losses = {task: workload.task_loss(task, outputs[task], targets[task]) for task in workload.tasks}

    context = StepContext(
        task_losses=task_losses,
        shared_parameters=model.shared_parameters(),
        last_shared_parameters=model.last_shared_parameters(),
        shared_representation=representation,
        step=step,
        epoch=1,
        task_parameters={task: model.task_parameters(task) for task in workload.tasks},
    )
    if track_cosines and not method.fills_last_shared_gradients():
        context.last_shared_task_gradients(create_graph=False)

    logged = method.backward(context)
    optimizer.step()
    with torch.no_grad():
        method.after_optimizer_step()
        if method.needs_losses_after_step():
            _, outputs = model(inputs)
            method.losses_after_step({task: workload.task_loss(task, outputs[task], targets[task]) for task in workload.tasks})

    gradients = context.cached_task_gradients()
    if track_cosines and gradients is not None:
        pairwise_cosines(gradients)
    return {name: float(value) for name, value in logged.items()}

"""Memory stays flat over many training steps for every registered method.

Each method trains a tiny model for 1000 steps, as the trainer does (cosine
diagnostics included). Between step 30 and step 1000 the bytes that the C
allocator reports in use may not grow by more than ``GROWTH_BOUND``. They come
from glibc's ``mallinfo2``, which counts tensor memory, unlike ``tracemalloc``.
The number of tensors that Python's garbage collector tracks may not grow at all.
A method that kept one step's graph per step would add at least one 32 x 32
float32 activation (4 KiB) per step, 3.8 MiB over the measured steps.
"""

import gc

import pytest
import torch
from malloc_info import malloc_in_use, mallinfo2
from torch import nn

from mtbench.methods import Method, StepContext, get_method, list_methods
from mtbench.models.multitask import MultiTaskModel
from mtbench.train.optimizer import build_adam

WARMUP_STEPS = 30
TOTAL_STEPS = 1000
GROWTH_BOUND = 64 * 1024
STEPS_PER_EPOCH = 20


pytestmark = pytest.mark.usefixtures("one_thread")


needs_mallinfo2 = pytest.mark.skipif(mallinfo2 is None, reason="needs glibc 2.33 or later for mallinfo2")


class TinyModel(MultiTaskModel):
    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.last_shared_layer = self.encoder[2]
        self.decoders = nn.ModuleDict({task: nn.Linear(32, 4) for task in tasks})


class LeakingEqual(Method):
    """Equal weighting that keeps every step's losses, and so every step's graph: the leak this file detects."""

    name = "leaking-equal-test"

    def __init__(self, tasks: list[str]) -> None:
        super().__init__(tasks)
        self.kept_totals = []

    def loss(self, context):
        total = context.loss_vector().sum()
        self.kept_totals.append(total)
        return total, {}


def tensor_count() -> int:
    # type() rather than isinstance(), whose __class__ lookup makes deprecated torch objects warn.
    return sum(1 for value in gc.get_objects() if issubclass(type(value), torch.Tensor))


def tensors_with_graph(method: Method) -> list[str]:
    """Return the names of the method's attributes that hold a tensor with an autograd graph."""
    names = []
    for name, value in vars(method).items():
        if isinstance(value, dict):
            values = list(value.values())
        elif isinstance(value, (list, tuple)):
            values = list(value)
        else:
            values = [value]
        if any(isinstance(item, torch.Tensor) and item.grad_fn is not None for item in values):
            names.append(name)
    return names


def train(method: Method, tasks: list[str]) -> tuple[int, int, int, int]:
    """Train a tiny model; return the malloc bytes and tensor counts after the warm-up and at the end."""
    torch.manual_seed(0)
    model = TinyModel(tasks)
    optimizer = build_adam(list(model.parameters()) + list(method.parameters()), 1e-3, torch.device("cpu"))
    inputs = torch.randn(32, 16)
    labels = torch.randint(0, 4, (32,))

    marks = {}
    for step in range(TOTAL_STEPS):
        optimizer.zero_grad(set_to_none=True)
        representation, outputs = model(inputs)
        losses = {task: nn.functional.cross_entropy(output, labels) for task, output in outputs.items()}
        context = StepContext(
            losses,
            model.shared_parameters(),
            model.last_shared_parameters(),
            representation,
            step,
            1 + step // STEPS_PER_EPOCH,
            {task: model.task_parameters(task) for task in tasks},
        )
        if len(tasks) > 1 and not method.fills_last_shared_gradients():
            context.last_shared_task_gradients()
        method.backward(context)
        optimizer.step()
        with torch.no_grad():
            method.after_optimizer_step()
        del representation, outputs, losses, context

        if step + 1 in (WARMUP_STEPS, TOTAL_STEPS):
            gc.collect()
            marks[step + 1] = (malloc_in_use(), tensor_count())
    return marks[WARMUP_STEPS][0], marks[TOTAL_STEPS][0], marks[WARMUP_STEPS][1], marks[TOTAL_STEPS][1]


@needs_mallinfo2
@pytest.mark.parametrize("name", list_methods())
def test_memory_flat(name):
    method_class = get_method(name)
    tasks = ["a"] if method_class.single_task else ["a", "b", "c"]
    method = method_class(tasks)

    bytes_before, bytes_after, tensors_before, tensors_after = train(method, tasks)

    assert bytes_after - bytes_before <= GROWTH_BOUND
    assert tensors_after <= tensors_before
    assert tensors_with_graph(method) == []


@needs_mallinfo2
def test_leaking_method_is_detected():
    method = LeakingEqual(["a", "b"])
    bytes_before, bytes_after, tensors_before, tensors_after = train(method, ["a", "b"])

    assert bytes_after - bytes_before > GROWTH_BOUND
    assert tensors_after - tensors_before >= TOTAL_STEPS - WARMUP_STEPS
    assert tensors_with_graph(method) == ["kept_totals"]

"""Methods that use task gradients stay finite under bfloat16 autocast on the CPU, with float32 task gradients."""

import math

import pytest
import torch
from torch import nn

from mtbench.methods import StepContext, get_method, list_methods
from mtbench.methods.gradient_method import GradientMethod
from mtbench.methods.jacobian import TASK_GRADIENT_STRATEGIES, task_gradient_strategy
from mtbench.models.multitask import MultiTaskModel

TASKS = ["a", "b", "c"]
GRADIENT_METHODS = [name for name in list_methods() if get_method(name).uses_task_gradients and not get_method(name).single_task]


pytestmark = pytest.mark.usefixtures("one_thread")


class SmallConvModel(MultiTaskModel):
    """Convolution and BatchNorm encoder with linear heads, small enough for many steps."""

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten()
        )
        self.last_shared_layer = self.encoder[3]
        self.decoders = nn.ModuleDict({task: nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3)) for task in tasks})


def autocast_context(model: SmallConvModel, seed: int) -> StepContext:
    """Run the forward pass and the losses under bfloat16 autocast and return the step context."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(8, 1, 16, 16, generator=generator)
    labels = torch.randint(0, 3, (8,), generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        representation, outputs = model(inputs)
        losses = {task: nn.functional.cross_entropy(output, labels) for task, output in outputs.items()}
    return StepContext(
        losses,
        model.shared_parameters(),
        model.last_shared_parameters(),
        representation,
        seed,
        1,
        {task: model.task_parameters(task) for task in model.tasks},
    )


def recording(method_class: type) -> type:
    """Return a subclass of a GradientMethod that records the dtype of the matrix that combine() receives."""

    class Recording(method_class):
        def combine(self, gradients, context):
            self.received_dtypes.append(gradients.dtype)
            return super().combine(gradients, context)

    Recording.received_dtypes = []
    return Recording


def test_forward_really_runs_in_bfloat16():
    model = SmallConvModel(TASKS)
    context = autocast_context(model, seed=0)
    assert context.shared_representation.dtype == torch.bfloat16


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_gradient_method_finite_under_autocast(name):
    torch.manual_seed(0)
    model = SmallConvModel(TASKS)
    method_class = get_method(name)
    if issubclass(method_class, GradientMethod):
        method_class = recording(method_class)
    method = method_class(TASKS)
    optimizer = torch.optim.SGD(list(model.parameters()) + list(method.parameters()), lr=0.01)

    for step in range(3):
        context = autocast_context(model, seed=step)
        if not method.fills_last_shared_gradients():
            # As the trainer does: taken before backward() frees the graph.
            context.last_shared_task_gradients()
        optimizer.zero_grad(set_to_none=True)
        logged = method.backward(context)
        last_shared = context.cached_task_gradients()

        assert last_shared.dtype == torch.float32
        assert bool(last_shared.isfinite().all())
        for parameter in model.parameters():
            assert parameter.grad is not None
            assert parameter.grad.dtype == torch.float32
            assert bool(parameter.grad.isfinite().all())
        assert all(math.isfinite(float(value)) for value in logged.values())
        optimizer.step()
        with torch.no_grad():
            method.after_optimizer_step()

    if isinstance(method, GradientMethod):
        assert method.received_dtypes == [torch.float32] * 3


@pytest.mark.parametrize("strategy", TASK_GRADIENT_STRATEGIES)
def test_task_gradient_matrix_float32_every_strategy(strategy):
    torch.manual_seed(0)
    model = SmallConvModel(TASKS)
    method = get_method("mgda")(TASKS)
    context = autocast_context(model, seed=0)

    with task_gradient_strategy(strategy):
        matrix = method.task_gradient_matrix(context)

    shared_size = sum(parameter.numel() for parameter in model.shared_parameters())
    assert matrix.shape == (3, shared_size)
    assert matrix.dtype == torch.float32
    assert bool(matrix.isfinite().all())
    assert bool((matrix.norm(dim=1) > 0).all())
    gram = matrix @ matrix.T
    assert gram.dtype == torch.float32
    assert bool(gram.isfinite().all())


def test_cosreg_penalty_differentiable_under_autocast():
    torch.manual_seed(0)
    model = SmallConvModel(TASKS)
    context = autocast_context(model, seed=0)

    gradients = context.last_shared_task_gradients(create_graph=True)

    assert gradients.dtype == torch.float32
    assert gradients.requires_grad
    penalty = (gradients @ gradients.T).sum()
    penalty.backward()
    assert bool(model.encoder[0].weight.grad.isfinite().all())
    assert model.encoder[0].weight.grad.abs().sum() > 0

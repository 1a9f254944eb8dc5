import pytest
import torch
from torch import nn

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method
from mtbench.methods.mgda import MGDA
from mtbench.methods.mgda_ub import MGDAUB
from test_mgda import LinearTasks, logged_weights, run_step


class TanhNetwork:
    """A tanh encoder Linear(3, 2) on a batch of 4 and two linear heads with squared-error losses.

    The encoder is non-linear, so the task gradients with respect to the
    representation and with respect to the encoder parameters give different
    MGDA weights.
    """

    def __init__(self, seed: int = 6) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.encoder = nn.Linear(3, 2)
        self.heads = {"a": nn.Linear(2, 1), "b": nn.Linear(2, 1)}
        for module in [self.encoder, *self.heads.values()]:
            with torch.no_grad():
                for parameter in module.parameters():
                    parameter.copy_(torch.randn(parameter.shape, generator=generator))
        self.inputs = torch.randn(4, 3, generator=generator)
        self.targets = {"a": torch.randn(4, generator=generator), "b": 3 * torch.randn(4, generator=generator)}

    def context(self) -> StepContext:
        for parameter in self.all_parameters():
            parameter.grad = None
        representation = torch.tanh(self.encoder(self.inputs))
        losses = {
            task: (head(representation)[:, 0] - self.targets[task]).pow(2).mean() for task, head in self.heads.items()
        }
        shared = list(self.encoder.parameters())
        heads = {task: list(head.parameters()) for task, head in self.heads.items()}
        return StepContext(losses, shared, shared, representation, step=0, epoch=1, task_parameters=heads)

    def all_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters()) + [p for head in self.heads.values() for p in head.parameters()]


def two_task_min_norm_weight(first: torch.Tensor, second: torch.Tensor) -> float:
    """Return w minimising ||w g_1 + (1 - w) g_2||, clipped to [0, 1]: Algorithm 1 of the MGDA publication."""
    difference = first - second
    return float((second @ (second - first) / (difference @ difference)).clamp(0, 1))


def task_gradients(network: TanhNetwork, inputs_of) -> list[torch.Tensor]:
    context = network.context()
    rows = []
    for loss in context.task_losses.values():
        inputs = inputs_of(context)
        gradients = torch.autograd.grad(loss, inputs, retain_graph=True)
        rows.append(torch.cat([gradient.flatten() for gradient in gradients]))
    return rows


def test_weights_come_from_representation_gradients():
    network = TanhNetwork()
    representation_rows = task_gradients(network, lambda context: [context.shared_representation])
    parameter_rows = task_gradients(network, lambda context: context.shared_parameters)
    expected = two_task_min_norm_weight(*representation_rows)
    from_parameters = two_task_min_norm_weight(*parameter_rows)
    # Guards the test: the two sources must give clearly different interior weights.
    assert 0.05 < expected < 0.95
    assert abs(expected - from_parameters) > 0.05

    logged = MGDAUB(["a", "b"]).backward(network.context())
    assert logged["weight/a"] == pytest.approx(expected, abs=1e-5)
    assert logged["weight/b"] == pytest.approx(1 - expected, abs=1e-5)


def test_encoder_update_is_weighted_parameter_gradient():
    network = TanhNetwork()
    logged = MGDAUB(["a", "b"]).backward(network.context())
    encoder_gradients = [parameter.grad.clone() for parameter in network.encoder.parameters()]
    head_gradients = {task: [p.grad.clone() for p in head.parameters()] for task, head in network.heads.items()}

    context = network.context()
    weighted = sum(logged[f"weight/{task}"] * loss for task, loss in context.task_losses.items())
    expected = torch.autograd.grad(weighted, context.shared_parameters)
    for actual, reference in zip(encoder_gradients, expected):
        assert torch.allclose(actual, reference, atol=1e-6)

    # Each head still receives the unweighted gradient of its own loss.
    context = network.context()
    for task, loss in context.task_losses.items():
        own = torch.autograd.grad(loss, context.task_parameters[task])
        for actual, reference in zip(head_gradients[task], own):
            assert torch.allclose(actual, reference, atol=1e-6)


def test_is_mgda_with_representation_default():
    method = MGDAUB(["a", "b"])
    assert isinstance(method, MGDA)
    assert get_method("mgda-ub") is MGDAUB
    assert method.config() == {
        "gradients": "representation",
        "normalization": "none",
        "max_iterations": 250,
        "tolerance": 1e-5,
    }


def test_worked_example_on_identity_encoder():
    logged, tasks = run_step(MGDAUB, [(1.0, 0.0), (-1.0, 1.0)])
    assert logged_weights(logged) == pytest.approx([0.6, 0.4], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([0.2, 0.4], abs=1e-6)


def test_zero_and_single_task_cases():
    logged, tasks = run_step(MGDAUB, [(0.0, 0.0), (0.0, 0.0)])
    assert tasks.shared_gradient() == [0.0, 0.0]
    assert sum(logged_weights(logged)) == pytest.approx(1.0)

    logged, tasks = run_step(MGDAUB, [(3.0, 4.0)])
    assert logged == {"weight/task0": 1.0}
    assert tasks.shared_gradient() == [3.0, 4.0]


def test_state_round_trip_gives_same_direction():
    network = TanhNetwork()
    method = MGDAUB(["a", "b"], normalization="loss+")
    method.backward(network.context())
    expected = [parameter.grad.clone() for parameter in network.encoder.parameters()]

    restored = MGDAUB(["a", "b"], **method.config())
    restored.load_state_dict(method.state_dict())
    restored.backward(network.context())
    for parameter, reference in zip(network.encoder.parameters(), expected):
        assert torch.equal(parameter.grad, reference)


def test_mismatched_tasks_raise():
    tasks = LinearTasks([(1.0, 0.0), (0.0, 1.0)])
    with pytest.raises(MtbenchError, match="built for the tasks"):
        MGDAUB(["left", "right"]).backward(tasks.context())

"""Per-task gradients: every strategy of mtbench.methods.jacobian against a plain per-task loop."""

import warnings

import pytest
import torch
from torch import nn

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, jacobian
from mtbench.methods.gradient_method import GradientMethod
from mtbench.methods.jacobian import (
    TASK_GRADIENT_STRATEGIES,
    current_strategy,
    flows_only_through,
    task_gradient_strategy,
    task_gradients,
)
from mtbench.models.multidigit_cnn import MultiDigitCNN, MultiDigitCNNConfig
from mtbench.models.multitask import MultiTaskModel
from mtbench.models.segnet import DenseHead, SegNet, SegNetConfig

REPRESENTATION_STRATEGIES = [strategy for strategy in TASK_GRADIENT_STRATEGIES if strategy != "loop"]


pytestmark = pytest.mark.usefixtures("one_thread")


class SmallModel(MultiTaskModel):
    """Linear encoder with BatchNorm and dropout, an encoder parameter the forward pass never uses, and two heads.

    The second head also has a parameter it never uses.
    """

    def __init__(self, skip_connection: bool = False) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        self.encoder = nn.Module()
        self.encoder.layers = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 5), nn.Tanh())
        self.encoder.unused = nn.Linear(2, 2)
        self.last_shared_layer = self.encoder.layers[4]
        self.decoders = nn.ModuleDict({"first": nn.Linear(5, 1), "second": nn.Sequential(nn.Linear(5, 3), nn.Linear(3, 1))})
        self.decoders["second"].unused = nn.Parameter(torch.ones(2))

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hidden = self.encoder.layers[:4](inputs)
        representation = self.encoder.layers[4:](hidden)
        outputs = {task: decoder(representation) for task, decoder in self.decoders.items()}
        if self.skip_connection:
            # The first head also reads an earlier encoder layer, so its loss bypasses the representation.
            outputs["first"] = outputs["first"] + hidden[:, :1]
        return representation, outputs


def small_step(seed: int = 0, skip_connection: bool = False) -> tuple[SmallModel, torch.Tensor, list[torch.Tensor]]:
    """Return a model in training mode, its representation and two task losses from one forward pass."""
    torch.manual_seed(seed)
    model = SmallModel(skip_connection)
    model.train()
    inputs = torch.randn(8, 4)
    representation, outputs = model(inputs)
    losses = [outputs["first"].pow(2).mean(), (outputs["second"] - 1).abs().mean()]
    return model, representation, losses


def plain_loop(losses: list[torch.Tensor], inputs: list[torch.Tensor]) -> torch.Tensor:
    """Return the K x N matrix of d loss_k / d inputs, one autograd.grad per task and input."""
    rows = []
    for loss in losses:
        pieces = []
        for tensor in inputs:
            (gradient,) = torch.autograd.grad(loss, [tensor], retain_graph=True, allow_unused=True)
            pieces.append(torch.zeros(tensor.numel()) if gradient is None else gradient.reshape(-1))
        rows.append(torch.cat(pieces))
    return torch.stack(rows)


def test_hand_computed_rows_every_strategy():
    # z = w . x = 3 + 8 = 11; L1 = 2 z gives 2 x = (2, 4); L2 = z^2 / 2 gives z x = (11, 22).
    weight = nn.Parameter(torch.tensor([3.0, 4.0]))
    inputs = torch.tensor([1.0, 2.0])
    for strategy in TASK_GRADIENT_STRATEGIES:
        representation = (weight * inputs).sum()
        losses = [2 * representation, representation.pow(2) / 2]
        with task_gradient_strategy(strategy):
            matrix, heads = task_gradients(losses, [weight], representation=representation)
        assert torch.equal(matrix, torch.tensor([[2.0, 4.0], [11.0, 22.0]])), strategy
        assert heads == []


@pytest.mark.parametrize("strategy", TASK_GRADIENT_STRATEGIES)
def test_strategy_matches_plain_loop(strategy):
    model, representation, losses = small_step()
    shared = model.shared_parameters()
    expected = plain_loop(losses, shared)

    with task_gradient_strategy(strategy):
        matrix, _ = task_gradients(losses, shared, representation=representation)

    assert matrix.dtype == torch.float32
    assert not matrix.requires_grad
    assert torch.allclose(matrix, expected, atol=1e-6)
    unused_columns = jacobian.column_positions(shared, list(model.encoder.unused.parameters()))
    assert torch.equal(matrix[:, unused_columns], torch.zeros(2, len(unused_columns)))


@pytest.mark.parametrize("strategy", TASK_GRADIENT_STRATEGIES)
def test_head_gradients_match_plain_loop(strategy):
    model, representation, losses = small_step()
    heads = [model.task_parameters("first"), model.task_parameters("second")]

    with task_gradient_strategy(strategy):
        _, head_gradients = task_gradients(losses, model.shared_parameters(), representation=representation, task_parameters=heads)

    for loss, parameters, gradients in zip(losses, heads, head_gradients):
        expected = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
        for gradient, reference in zip(gradients, expected):
            if reference is None:
                assert gradient is None
            else:
                assert torch.allclose(gradient, reference, atol=1e-6)
    unused_position = [id(parameter) for parameter in heads[1]].index(id(model.decoders["second"].unused))
    assert head_gradients[1][unused_position] is None


def test_dropout_masks_are_those_of_the_forward_pass():
    # Dropout draws its mask in the forward pass, so every strategy differentiates through the same mask.
    results = {}
    for strategy in TASK_GRADIENT_STRATEGIES:
        model, representation, losses = small_step(seed=3)
        with task_gradient_strategy(strategy):
            results[strategy], _ = task_gradients(losses, model.shared_parameters(), representation=representation)
    for strategy in REPRESENTATION_STRATEGIES:
        assert torch.allclose(results[strategy], results["loop"], atol=1e-6)


def test_loss_without_representation_gives_zero_row():
    model, representation, losses = small_step()
    head_only = model.decoders["first"].bias.sum()
    for strategy in TASK_GRADIENT_STRATEGIES:
        with task_gradient_strategy(strategy):
            matrix, _ = task_gradients([losses[0], head_only], model.shared_parameters(), representation=representation)
        assert torch.equal(matrix[1], torch.zeros(matrix.shape[1])), strategy
        assert matrix[0].abs().sum() > 0


def test_flows_only_through_plain_model():
    model, representation, losses = small_step()
    assert flows_only_through(losses, representation, model.shared_parameters())


def test_flows_only_through_rejects_skip_connection():
    model, representation, losses = small_step(skip_connection=True)
    assert not flows_only_through(losses, representation, model.shared_parameters())
    assert flows_only_through(losses[1:], representation, model.shared_parameters())


def test_flows_only_through_rejects_detached_representation():
    model, representation, losses = small_step()
    assert not flows_only_through(losses, representation.detach(), model.shared_parameters())


@pytest.mark.parametrize("strategy", REPRESENTATION_STRATEGIES)
def test_skip_connection_falls_back_to_loop(strategy):
    model, representation, losses = small_step(skip_connection=True)
    shared = model.shared_parameters()
    expected = plain_loop(losses, shared)
    with task_gradient_strategy(strategy):
        matrix, _ = task_gradients(losses, shared, representation=representation)
    assert torch.allclose(matrix, expected, atol=1e-6)


class ScalarItemSquare(torch.autograd.Function):
    """x^2 whose backward reads a Python float, which torch.vmap cannot batch."""

    @staticmethod
    def forward(ctx, inputs):
        ctx.save_for_backward(inputs)
        return inputs * inputs

    @staticmethod
    def backward(ctx, gradient):
        (inputs,) = ctx.saved_tensors
        factor = 2.0 if float(gradient.sum()) == float(gradient.sum()) else 0.0
        return factor * inputs * gradient


def test_batched_falls_back_when_vmap_fails(monkeypatch):
    monkeypatch.setattr(jacobian, "_warned_batching_failure", False)
    torch.manual_seed(0)
    layer = nn.Linear(3, 4)
    head = nn.Linear(4, 1)
    representation = ScalarItemSquare.apply(layer(torch.randn(5, 3)))
    losses = [head(representation).sum(), representation.pow(2).mean()]
    parameters = list(layer.parameters())
    expected = plain_loop(losses, parameters)

    with task_gradient_strategy("representation-batched"), pytest.warns(UserWarning, match="one task at a time"):
        matrix, _ = task_gradients(losses, parameters, representation=representation)
    assert torch.allclose(matrix, expected, atol=1e-6)

    with task_gradient_strategy("representation-batched"), warnings.catch_warnings():
        warnings.simplefilter("error")
        again, _ = task_gradients(losses, parameters, representation=representation)
    assert torch.allclose(again, expected, atol=1e-6)


@pytest.mark.parametrize("strategy", REPRESENTATION_STRATEGIES)
def test_create_graph_second_derivatives_match_loop(strategy):
    def penalty_gradients(name: str) -> list[torch.Tensor]:
        model, representation, losses = small_step(seed=5)
        with task_gradient_strategy(name):
            matrix, _ = task_gradients(losses, model.last_shared_parameters(), representation=representation, create_graph=True)
        assert matrix.requires_grad
        penalty = (matrix[0] @ matrix[1]) ** 2 + sum(losses)
        return torch.autograd.grad(penalty, list(model.parameters()), allow_unused=True)

    for own, reference in zip(penalty_gradients(strategy), penalty_gradients("loop")):
        if reference is None:
            assert own is None
        else:
            assert torch.allclose(own, reference, atol=1e-6)


def test_representation_inputs_are_representation_gradients():
    model, representation, losses = small_step()
    expected = plain_loop(losses, [representation])
    for strategy in TASK_GRADIENT_STRATEGIES:
        with task_gradient_strategy(strategy):
            matrix, _ = task_gradients(losses, [representation], representation=representation)
        assert torch.allclose(matrix, expected, atol=1e-7), strategy


def test_unknown_strategy_is_rejected():
    with pytest.raises(MtbenchError, match="Unknown task-gradient strategy 'vmap'"):
        with task_gradient_strategy("vmap"):
            pass


def test_strategy_is_restored_after_block():
    before = current_strategy()
    with pytest.raises(ValueError):
        with task_gradient_strategy("loop"):
            assert current_strategy() == "loop"
            raise ValueError
    assert current_strategy() == before


class RowSum(GradientMethod):
    """The sum of the task gradients, for checking what GradientMethod writes into .grad."""

    name = "row-sum-test"
    supports_representation = True

    def combine(self, gradients, context):
        return gradients.sum(dim=0), {}


def cnn_context(seed: int, **options) -> tuple[MultiDigitCNN, StepContext]:
    torch.manual_seed(seed)
    model = MultiDigitCNN({"left": 5, "right": 5}, MultiDigitCNNConfig(width=4, hidden_units=8, **options))
    model.train()
    inputs = torch.rand(6, 1, 64, 64)
    representation, outputs = model(inputs)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    losses = {task: nn.functional.cross_entropy(output, labels) for task, output in outputs.items()}
    context = StepContext(
        losses,
        model.shared_parameters(),
        model.last_shared_parameters(),
        representation,
        0,
        1,
        {task: model.task_parameters(task) for task in losses},
    )
    return model, context


@pytest.mark.parametrize("strategy", REPRESENTATION_STRATEGIES)
def test_gradient_method_writes_loop_gradients(strategy):
    written = {}
    for name in ("loop", strategy):
        model, context = cnn_context(seed=2, batchnorm=True, dropout=0.25)
        with task_gradient_strategy(name):
            RowSum(["left", "right"]).backward(context)
        written[name] = [parameter.grad.clone() for parameter in model.parameters()]
    for own, reference in zip(written[strategy], written["loop"]):
        assert torch.allclose(own, reference, atol=1e-6)


@pytest.mark.parametrize("strategy", REPRESENTATION_STRATEGIES)
def test_last_shared_gradients_cnn_match_loop(strategy):
    results = {}
    for name in ("loop", strategy):
        _, context = cnn_context(seed=4, batchnorm=True, dropout=0.25)
        with task_gradient_strategy(name):
            results[name] = context.last_shared_task_gradients()
    assert results[strategy].shape == results["loop"].shape == (2, 4 * 4 * 9)
    assert torch.allclose(results[strategy], results["loop"], atol=1e-6)


@pytest.mark.parametrize("strategy", REPRESENTATION_STRATEGIES)
def test_segnet_gradients_match_loop(strategy):
    def gradients(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        model = SegNet({"segmentation": DenseHead(3), "depth": DenseHead(1)}, SegNetConfig(width=2, pretrained=False), 3)
        model.train()
        representation, outputs = model(torch.randn(2, 3, 32, 32))
        losses = [outputs["segmentation"].pow(2).mean(), outputs["depth"].abs().mean()]
        with task_gradient_strategy(name):
            shared, _ = task_gradients(losses, model.shared_parameters(), representation=representation)
            last, _ = task_gradients(losses, model.last_shared_parameters(), representation=representation)
        return shared, last

    shared, last = gradients(strategy)
    reference_shared, reference_last = gradients("loop")
    assert torch.allclose(shared, reference_shared, atol=1e-5)
    assert torch.allclose(last, reference_last, atol=1e-5)

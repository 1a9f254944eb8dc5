import math

import pytest
import torch
from torch import nn

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method
from mtbench.methods.gradnorm import MINIMUM_WEIGHT, GradNorm, gradnorm_loss, relative_inverse_training_rates
from mtbench.train.run import run_configuration
from test_trainer import QUIET, make_config


class LinearTasks:
    """A last shared layer W (2 x 1) on input 1 and task losses L_k = head_k . W + offset_k.

    The task gradient at W is head_k whatever W is, so g_1 = (3, 4) and
    g_2 = (0, 1) for the default heads.
    """

    def __init__(self, heads=((3.0, 4.0), (0.0, 1.0)), offsets=(4.0, 2.0)) -> None:
        self.shared = nn.Linear(1, 2, bias=False)
        self.heads = [torch.tensor(head) for head in heads]
        self.offsets = list(offsets)
        self.tasks = [f"task{index}" for index in range(len(heads))]

    def context(self, weight: tuple[float, float], step: int = 0) -> StepContext:
        with torch.no_grad():
            self.shared.weight.copy_(torch.tensor(weight).reshape(2, 1))
        self.shared.weight.grad = None
        representation = self.shared(torch.ones(1, 1))[0]
        losses = {task: head @ representation + offset for task, head, offset in zip(self.tasks, self.heads, self.offsets)}
        return StepContext(losses, [self.shared.weight], [self.shared.weight], representation, step=step, epoch=1)


def worked_example(alpha: float = 1.0, weights=(1.0, 1.0)):
    """Record L(0) = (4, 2) at W = (0, 0), then build the step at W = (-2, 1), where L = (2, 3)."""
    tasks = LinearTasks()
    method = GradNorm(tasks.tasks, alpha=alpha)
    method.backward(tasks.context((0.0, 0.0)))

    method.weights.grad = None
    with torch.no_grad():
        method.weights.copy_(torch.tensor(weights))
    return method, tasks, tasks.context((-2.0, 1.0), step=1)


def test_rates_are_normalised_loss_ratios():
    rates = relative_inverse_training_rates(torch.tensor([2.0, 3.0]), torch.tensor([4.0, 2.0]))
    assert rates.tolist() == [0.5, 1.5]


def test_rates_zero_initial_loss_counts_as_one():
    # Ratios (1, 3) have mean 2.
    rates = relative_inverse_training_rates(torch.tensor([5.0, 3.0]), torch.tensor([0.0, 1.0]))
    assert rates.tolist() == [0.5, 1.5]


def test_rates_all_losses_zero_are_one():
    rates = relative_inverse_training_rates(torch.tensor([0.0, 0.0]), torch.tensor([4.0, 2.0]))
    assert rates.tolist() == [1.0, 1.0]


def test_gradnorm_loss_worked_example():
    weights = torch.ones(2, requires_grad=True)
    loss = gradnorm_loss(weights, torch.tensor([5.0, 1.0]), torch.tensor([0.5, 1.5]), alpha=1.0)
    loss.backward()
    # G = (5, 1), mean 3, target = (1.5, 4.5).
    assert loss.item() == pytest.approx(7.0)
    assert weights.grad.tolist() == [5.0, -1.0]


def test_worked_example_step_and_renormalisation():
    method, _, context = worked_example()
    logged = method.backward(context)

    assert logged["gradnorm_loss"] == pytest.approx(7.0)
    assert logged["weight/task0"] == 1.0
    assert logged["weight/task1"] == 1.0

    torch.optim.SGD([method.weights], lr=0.1).step()
    assert method.weights.detach().tolist() == pytest.approx([0.5, 1.1])

    method.after_optimizer_step()
    assert method.weights.detach().tolist() == pytest.approx([0.625, 1.375])


def test_first_step_records_initial_losses():
    method, _, context = worked_example()
    assert bool(method.initial_losses_recorded)
    assert method.initial_losses.tolist() == [4.0, 2.0]

    method.backward(context)
    assert method.initial_losses.tolist() == [4.0, 2.0]


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.5, 2.0), (1.5, 0.5)])
def test_target_is_detached(weights):
    # At w = (1, 1), differentiating through mean(G) would give (7.5, -0.5) instead of (5, -1).
    method, _, context = worked_example(weights=weights)
    method.backward(context)

    norms = torch.tensor([5.0, 1.0])
    weighted_norms = torch.tensor(weights) * norms
    targets = weighted_norms.mean() * torch.tensor([0.5, 1.5])
    expected = torch.sign(weighted_norms - targets) * norms
    assert method.weights.grad.tolist() == pytest.approx(expected.tolist())


def test_model_gradient_linear_case():
    method, tasks, context = worked_example(weights=(0.5, 2.0))
    method.backward(context)
    # 0.5 * (3, 4) + 2 * (0, 1).
    assert tasks.shared.weight.grad.flatten().tolist() == pytest.approx([1.5, 4.0])


def _tanh_step(seed: int = 0):
    """A shared tanh layer feeding two quadratic heads, so the task gradients depend on the shared weight."""
    generator = torch.Generator().manual_seed(seed)
    shared = nn.Linear(3, 4)
    with torch.no_grad():
        shared.weight.copy_(torch.randn(4, 3, generator=generator))
        shared.bias.copy_(torch.randn(4, generator=generator))
    heads = {"a": torch.randn(4, generator=generator), "b": 3 * torch.randn(4, generator=generator)}
    inputs = torch.randn(5, 3, generator=generator)
    representation = torch.tanh(shared(inputs))
    losses = {task: (representation @ head).pow(2).mean() for task, head in heads.items()}
    parameters = [shared.weight, shared.bias]
    return StepContext(losses, parameters, parameters, representation, step=0, epoch=1), parameters


def test_model_gradient_excludes_gradnorm_loss():
    weights = torch.tensor([0.7, 1.3])
    context, parameters = _tanh_step()
    method = GradNorm(["a", "b"], alpha=1.5)
    with torch.no_grad():
        method.weights.copy_(weights)
    method.backward(context)

    reference_context, reference_parameters = _tanh_step()
    weighted_total = sum(weight * loss for weight, loss in zip(weights, reference_context.task_losses.values()))
    expected = torch.autograd.grad(weighted_total, reference_parameters)
    for parameter, gradient in zip(parameters, expected):
        assert torch.allclose(parameter.grad, gradient, atol=1e-6)


def test_tanh_gradnorm_loss_would_reach_model():
    # Guards the test above: here L_grad does depend on the model parameters through g_k.
    context, parameters = _tanh_step()
    gradients = context.last_shared_task_gradients(create_graph=True)
    rates = torch.tensor([0.5, 1.5])
    weights = torch.tensor([0.7, 1.3])
    weighted_norms = weights * gradients.norm(dim=1)
    loss = (weighted_norms - (weighted_norms.mean() * rates).detach()).abs().sum()
    leaked = torch.autograd.grad(loss, parameters)
    assert sum(gradient.abs().sum().item() for gradient in leaked) > 1e-3


def test_training_keeps_weights_normalised():
    torch.manual_seed(0)
    tasks = ["a", "b", "c"]
    encoder = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU())
    heads = nn.ModuleDict({task: nn.Linear(8, 1) for task in tasks})
    scales = {"a": 1.0, "b": 10.0, "c": 0.1}
    method = GradNorm(tasks, alpha=1.5)
    optimizer = torch.optim.Adam(list(encoder.parameters()) + list(heads.parameters()) + list(method.parameters()), lr=0.05)

    for step in range(50):
        inputs = torch.randn(16, 6)
        representation = encoder(inputs)
        losses = {task: ((heads[task](representation)[:, 0] - scales[task] * inputs[:, 0]) ** 2).mean() for task in tasks}
        context = StepContext(losses, list(encoder.parameters()), list(encoder[2].parameters()), representation, step, epoch=1)

        optimizer.zero_grad(set_to_none=True)
        logged = method.backward(context)
        optimizer.step()
        method.after_optimizer_step()

        weights = method.weights.detach()
        assert bool((weights > 0).all()), f"step {step}: weights {weights.tolist()}"
        assert weights.sum().item() == pytest.approx(3.0, abs=1e-5)
        assert math.isfinite(logged["gradnorm_loss"])
    assert not torch.allclose(method.weights.detach(), torch.ones(3))


def test_non_positive_weight_is_clamped():
    method = GradNorm(["a", "b"])
    with torch.no_grad():
        method.weights.copy_(torch.tensor([-0.5, 1.5]))
    method.after_optimizer_step()

    scale = 2.0 / (1.5 + MINIMUM_WEIGHT)
    assert method.weights.detach().tolist() == pytest.approx([MINIMUM_WEIGHT * scale, 1.5 * scale])
    assert method.weights[0].item() > 0


def test_zero_gradients_give_finite_weights():
    tasks = LinearTasks(heads=((0.0, 0.0), (0.0, 0.0)))
    method = GradNorm(tasks.tasks)
    logged = method.backward(tasks.context((1.0, 1.0)))

    assert logged["gradnorm_loss"] == 0.0
    assert method.weights.grad.tolist() == [0.0, 0.0]
    torch.optim.SGD([method.weights], lr=0.1).step()
    method.after_optimizer_step()
    assert method.weights.detach().tolist() == [1.0, 1.0]


def test_one_zero_gradient_gives_finite_weights():
    tasks = LinearTasks(heads=((3.0, 4.0), (0.0, 0.0)))
    method = GradNorm(tasks.tasks)
    method.backward(tasks.context((0.0, 0.0)))
    torch.optim.SGD([method.weights], lr=0.1).step()
    method.after_optimizer_step()

    weights = method.weights.detach()
    # G = (5, 0) and r = (1, 1), so the targets are 2.5, the gradient is (5, 0) and w = (0.5, 1) before rescaling.
    assert weights.tolist() == pytest.approx([2.0 / 3.0, 4.0 / 3.0])
    assert bool(weights.isfinite().all())


def test_identical_gradients_keep_weights():
    tasks = LinearTasks(heads=((1.0, 2.0), (1.0, 2.0)), offsets=(3.0, 3.0))
    method = GradNorm(tasks.tasks)
    method.backward(tasks.context((0.0, 0.0)))

    assert method.weights.grad.tolist() == [0.0, 0.0]
    method.after_optimizer_step()
    assert method.weights.detach().tolist() == [1.0, 1.0]


def test_single_task_weight_stays_one():
    tasks = LinearTasks(heads=((3.0, 4.0),), offsets=(2.0,))
    method = GradNorm(tasks.tasks)
    logged = method.backward(tasks.context((0.0, 0.0)))

    assert logged == {"weight/task0": 1.0, "gradnorm_loss": 0.0}
    assert tasks.shared.weight.grad.flatten().tolist() == [3.0, 4.0]
    with torch.no_grad():
        method.weights.fill_(0.7)
    method.after_optimizer_step()
    assert method.weights.item() == 1.0


def test_state_round_trips():
    method, _, context = worked_example()
    method.backward(context)
    torch.optim.SGD([method.weights], lr=0.1).step()
    method.after_optimizer_step()

    state = method.state_dict()
    assert set(state) == {"weights", "initial_losses", "initial_losses_recorded"}
    restored = GradNorm(method.tasks)
    restored.load_state_dict(state)

    assert restored.weights.detach().tolist() == pytest.approx([0.625, 1.375])
    assert restored.initial_losses.tolist() == [4.0, 2.0]
    assert bool(restored.initial_losses_recorded)


def test_restored_method_keeps_initial_losses():
    method, tasks, _ = worked_example()
    restored = GradNorm(method.tasks, alpha=1.0)
    restored.load_state_dict(method.state_dict())
    # The restored L(0) = (4, 2) gives r = (0.5, 1.5) and L_grad = 7 at W = (-2, 1).
    # Recording L(0) again there would give r = (1, 1) and L_grad = |5 - 3| + |1 - 3| = 4.
    logged = restored.backward(tasks.context((-2.0, 1.0)))
    assert logged["gradnorm_loss"] == pytest.approx(7.0)


def test_mismatched_tasks_raise():
    tasks = LinearTasks()
    method = GradNorm(["left", "right"])
    with pytest.raises(MtbenchError, match="built for the tasks"):
        method.backward(tasks.context((0.0, 0.0)))


@pytest.mark.parametrize("alpha", [-0.5, float("nan"), float("inf")])
def test_invalid_alpha_raises(alpha):
    with pytest.raises(MtbenchError, match="alpha"):
        GradNorm(["a", "b"], alpha=alpha)


def test_registered_with_published_default():
    assert get_method("gradnorm") is GradNorm
    assert GradNorm(["a", "b"]).config() == {"alpha": 1.5}
    assert GradNorm(["a", "b"]).weights.tolist() == [1.0, 1.0]


def test_run_writes_record(tiny_data_root, tmp_path):
    config = make_config(tiny_data_root, tmp_path, method="gradnorm", method_config={"alpha": 1.5}, epochs=1)
    (record,) = run_configuration(config, [0], QUIET)

    assert record["status"] == "finished"
    assert record["method_config"] == {"alpha": 1.5}
    train = record["history"][0]["train"]
    assert train["weight/left"] > 0
    assert train["weight/right"] > 0
    # The logged weights sum to K = 2 at every step, so their epoch means do too.
    assert train["weight/left"] + train["weight/right"] == pytest.approx(2.0, abs=1e-5)
    assert math.isfinite(train["gradnorm_loss"])
    assert train["gradnorm_loss"] >= 0

    checkpoint = torch.load(tmp_path / "runs" / "multidigitmnist" / record["run_id"] / "checkpoint.pt", weights_only=True)
    assert checkpoint["method"]["weights"].sum().item() == pytest.approx(2.0, abs=1e-5)
    assert bool(checkpoint["method"]["initial_losses_recorded"])

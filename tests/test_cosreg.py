import math

import pytest
import torch

from mtbench.methods import StepContext
from mtbench.methods.cosreg import CosReg, cosreg_penalty


def test_penalty_two_tasks_is_cos_squared():
    gradients = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert cosreg_penalty(gradients).item() == pytest.approx(0.5)


def test_penalty_orthogonal_is_zero():
    gradients = torch.tensor([[2.0, 0.0], [0.0, -3.0]])
    assert cosreg_penalty(gradients).item() == pytest.approx(0.0)


def test_penalty_identical_and_opposite_is_one():
    identical = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    opposite = torch.tensor([[1.0, 2.0], [-2.0, -4.0]])
    assert cosreg_penalty(identical).item() == pytest.approx(1.0)
    assert cosreg_penalty(opposite).item() == pytest.approx(1.0)


def test_penalty_zero_gradient_is_finite():
    gradients = torch.tensor([[0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    penalty = cosreg_penalty(gradients)
    penalty.backward()
    assert penalty.item() == 0.0
    assert torch.isfinite(gradients.grad).all()


def test_penalty_three_tasks_is_mean_cos_squared():
    # cos^2 for pairs: (a,b) = 0.5, (a,c) = 0, (b,c) = 0.5; mean over pairs = 1/3.
    gradients = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    assert cosreg_penalty(gradients).item() == pytest.approx(1.0 / 3.0)


def test_penalty_matches_frobenius_formula():
    gradients = torch.randn(4, 7, generator=torch.Generator().manual_seed(0))
    unit = gradients / gradients.norm(dim=1, keepdim=True)
    expected = ((unit @ unit.T - torch.eye(4)) ** 2).sum() / (4 * 3)
    assert cosreg_penalty(gradients).item() == pytest.approx(expected.item(), rel=1e-6)


def test_penalty_single_task_is_zero():
    assert cosreg_penalty(torch.tensor([[3.0, 4.0]])).item() == 0.0


def _toy_step(lambda_: float, scheduled: bool):
    """A shared linear layer W (2x2) feeding two linear task heads, with fixed inputs."""
    torch.manual_seed(0)
    shared = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        shared.weight.copy_(torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    heads = {"a": torch.tensor([[1.0, 1.0]]), "b": torch.tensor([[1.0, 0.0]])}
    inputs = torch.tensor([[1.0, 2.0]])
    representation = torch.tanh(shared(inputs))
    losses = {task: (representation @ head.T).pow(2).sum() for task, head in heads.items()}
    context = StepContext(losses, [shared.weight], [shared.weight], representation, step=0, epoch=1)
    method = CosReg(["a", "b"], lambda_=lambda_, scheduled=scheduled)
    return method, context, shared, losses


def test_penalty_gradient_nonzero_for_non_orthogonal_pair():
    method, context, shared, _ = _toy_step(lambda_=1.0, scheduled=False)
    gradients = context.last_shared_task_gradients(create_graph=True)
    penalty = cosreg_penalty(gradients)
    assert 0.0 < penalty.item() < 1.0
    (penalty_gradient,) = torch.autograd.grad(penalty, shared.weight)
    assert penalty_gradient.abs().sum().item() > 1e-6


def test_loss_adds_weighted_penalty():
    method, context, _, losses = _toy_step(lambda_=2.0, scheduled=False)
    total, logged = method.loss(context)
    expected = losses["a"].item() + losses["b"].item() + 2.0 * logged["penalty"]
    assert total.item() == pytest.approx(expected, rel=1e-6)


def test_scheduled_lambda_scales_with_detached_mean_loss():
    method, context, _, losses = _toy_step(lambda_=2.0, scheduled=True)
    total, logged = method.loss(context)
    mean_loss = (losses["a"].item() + losses["b"].item()) / 2
    expected = losses["a"].item() + losses["b"].item() + 2.0 * mean_loss * logged["penalty"]
    assert total.item() == pytest.approx(expected, rel=1e-6)


def test_scheduled_weight_receives_no_gradient():
    # With the schedule detached, d(total)/d(loss_a) is 1 plus the penalty path only.
    method, context, shared, _ = _toy_step(lambda_=2.0, scheduled=True)
    total, _ = method.loss(context)
    method_plain, context_plain, shared_plain, _ = _toy_step(lambda_=2.0, scheduled=False)
    mean_loss = sum(loss.item() for loss in context_plain.task_losses.values()) / 2
    method_plain.lambda_ = 2.0 * mean_loss
    total_plain, _ = method_plain.loss(context_plain)
    (gradient,) = torch.autograd.grad(total, shared.weight)
    (gradient_plain,) = torch.autograd.grad(total_plain, shared_plain.weight)
    assert torch.allclose(gradient, gradient_plain, atol=1e-6)


def test_config_uses_record_names():
    assert CosReg(["a", "b"], lambda_=0.3, scheduled=True).config() == {"lambda": 0.3, "scheduled": True}
    assert math.isclose(CosReg(["a", "b"]).lambda_, 1.0)

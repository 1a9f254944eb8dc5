import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method
from mtbench.methods.cagrad import CAGrad, conflict_averse_weights


class LinearTasks:
    """A shared layer W (N x 1) on input 1 and decoders h_k with task losses L_k = h_k . W + offset_k.

    The task gradient at W is h_k whatever W is, so G is the matrix of heads,
    and the gradient of L_k with respect to its decoder h_k is W.
    """

    def __init__(self, heads, offsets=None) -> None:
        self.heads = [nn.Parameter(torch.tensor(head, dtype=torch.float32)) for head in heads]
        self.shared = nn.Linear(1, len(heads[0]), bias=False)
        self.offsets = list(offsets) if offsets is not None else [10.0] * len(heads)
        self.tasks = [f"task{index}" for index in range(len(heads))]

    def context(self, weight, step: int = 0) -> StepContext:
        with torch.no_grad():
            self.shared.weight.copy_(torch.tensor(weight, dtype=torch.float32).reshape(-1, 1))
        self.shared.weight.grad = None
        for head in self.heads:
            head.grad = None
        representation = self.shared(torch.ones(1, 1))[0]
        losses = {task: head @ representation + offset for task, head, offset in zip(self.tasks, self.heads, self.offsets)}
        decoders = {task: [head] for task, head in zip(self.tasks, self.heads)}
        return StepContext(
            losses, [self.shared.weight], [self.shared.weight], representation, step=step, epoch=1, task_parameters=decoders
        )


def direction_of(method, gradients):
    direction, logged = method.combine(torch.tensor(gradients, dtype=torch.float32), None)
    return direction, logged


def test_vertex_example_without_rescaling():
    # g0 = (1.5, 2), ||g0|| = 2.5, radius 0.4 * 2.5 = 1. Task 1 improves least, so w = (1, 0),
    # g_w = g1, and d = g0 + 1 * g1 / 3 = (2.5, 2): <g1, d> = 7.5 <= <g2, d> = 8.
    direction, logged = direction_of(CAGrad(["a", "b"], c=0.4, rescale=0), [[3.0, 0.0], [0.0, 4.0]])
    assert direction.tolist() == pytest.approx([2.5, 2.0], abs=1e-6)
    # a = (1/2 + 1/3, 1/2).
    assert logged["weight/a"] == pytest.approx(5.0 / 6.0, abs=1e-6)
    assert logged["weight/b"] == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("rescale, divisor", [(0, 1.0), (1, 1.16), (2, 1.4)])
def test_rescale_divides_direction(rescale, divisor):
    # 1 + c^2 = 1.16 and 1 + c = 1.4 for c = 0.4.
    direction, _ = direction_of(CAGrad(["a", "b"], c=0.4, rescale=rescale), [[3.0, 0.0], [0.0, 4.0]])
    assert direction.tolist() == pytest.approx([2.5 / divisor, 2.0 / divisor], abs=1e-6)


def test_interior_example_equalises_improvements():
    # g0 = (0.5, 0.5), radius r = 0.8 / sqrt(2). At the interior optimum <g1 - g2, d> = 0, so d = (x, 3x),
    # and ||d - g0|| = r gives 10 x^2 - 4 x + 0.18 = 0, whose larger root is x = (4 + sqrt(8.8)) / 20.
    gradients = torch.tensor([[2.0, 0.0], [-1.0, 1.0]])
    direction, _ = CAGrad(["a", "b"], c=0.8, rescale=0).combine(gradients, None)
    x = (4.0 + math.sqrt(8.8)) / 20.0
    assert direction.tolist() == pytest.approx([x, 3.0 * x], abs=1e-5)

    improvements = gradients @ direction
    assert improvements[0].item() == pytest.approx(improvements[1].item(), abs=1e-5)
    assert (direction - gradients.mean(0)).norm().item() == pytest.approx(0.8 / math.sqrt(2.0), abs=1e-5)


def test_interior_example_beats_every_direction_on_ball():
    gradients = torch.tensor([[2.0, 0.0], [-1.0, 1.0]])
    direction, _ = CAGrad(["a", "b"], c=0.8, rescale=0).combine(gradients, None)

    angles = torch.linspace(0.0, 2.0 * math.pi, 20001)
    candidates = gradients.mean(0) + 0.8 / math.sqrt(2.0) * torch.stack([angles.cos(), angles.sin()], dim=1)
    best_worst_improvement = (candidates @ gradients.T).min(dim=1).values.max().item()
    assert (gradients @ direction).min().item() >= best_worst_improvement - 1e-5


def test_three_tasks_match_sampled_optimum():
    generator = torch.Generator().manual_seed(3)
    gradients = torch.randn(3, 4, generator=generator)
    c = 0.5
    direction, _ = CAGrad(["a", "b", "c"], c=c, rescale=0).combine(gradients, None)

    mean = gradients.mean(0)
    radius = c * mean.norm()
    assert (direction - mean).norm().item() <= radius.item() + 1e-5

    samples = torch.randn(200000, 4, generator=generator)
    candidates = mean + radius * samples / samples.norm(dim=1, keepdim=True)
    best_worst_improvement = (candidates @ gradients.T).min(dim=1).values.max().item()
    assert (gradients @ direction).min().item() >= best_worst_improvement - 1e-4


def test_zero_c_gives_mean_gradient():
    gradients = torch.tensor([[1.0, -2.0, 3.0], [4.0, 0.5, -1.0], [0.0, 2.0, 2.0]])
    for rescale in (0, 1, 2):
        direction, logged = CAGrad(["a", "b", "c"], c=0.0, rescale=rescale).combine(gradients, None)
        assert torch.allclose(direction, gradients.mean(0), atol=1e-6)
        assert list(logged.values()) == pytest.approx([1.0 / 3.0] * 3)


def test_opposite_unequal_gradients():
    # g0 = (0.5, 0), radius 0.2. F(w) = 0.5 (3 w1 - 1) + 0.2 |3 w1 - 1| is smallest at w = (0, 1),
    # so d = g0 + 0.2 * (-1, 0) = (0.3, 0) with a = (1/2, 1/2 + 0.2): the first task gains 0.6, the second loses 0.3.
    direction, logged = direction_of(CAGrad(["a", "b"], c=0.4, rescale=0), [[2.0, 0.0], [-1.0, 0.0]])
    assert direction.tolist() == pytest.approx([0.3, 0.0], abs=1e-6)
    assert logged["weight/b"] == pytest.approx(0.7, abs=1e-6)


def test_opposite_equal_gradients_give_zero():
    direction, logged = direction_of(CAGrad(["a", "b"], c=0.4), [[1.0, 2.0], [-1.0, -2.0]])
    assert direction.tolist() == [0.0, 0.0]
    assert all(math.isfinite(value) for value in logged.values())


def test_one_zero_gradient_gives_mean_gradient():
    # w = (0, 1) makes g_w = 0, the dual optimum F = 0, so the correction is left out and d = g0 = (1.5, 0).
    direction, logged = direction_of(CAGrad(["a", "b"], c=0.4, rescale=0), [[3.0, 0.0], [0.0, 0.0]])
    assert direction.tolist() == pytest.approx([1.5, 0.0], abs=1e-6)
    assert list(logged.values()) == pytest.approx([0.5, 0.5])


def test_zero_gradients_give_zero_direction():
    direction, logged = direction_of(CAGrad(["a", "b"]), [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert direction.tolist() == [0.0, 0.0, 0.0]
    assert all(math.isfinite(value) for value in logged.values())


def test_tiny_gradients_keep_weights():
    direction, logged = direction_of(CAGrad(["a", "b"], c=0.4, rescale=0), [[3e-20, 0.0], [0.0, 4e-20]])
    assert direction.tolist() == pytest.approx([2.5e-20, 2e-20], rel=1e-5)
    assert logged["weight/a"] == pytest.approx(5.0 / 6.0, abs=1e-6)


def test_huge_gradients_keep_weights():
    direction, _ = direction_of(CAGrad(["a", "b"], c=0.4, rescale=0), [[3e25, 0.0], [0.0, 4e25]])
    assert direction.tolist() == pytest.approx([2.5e25, 2e25], rel=1e-5)


def test_identical_gradients_scale_by_one_plus_c():
    direction, _ = direction_of(CAGrad(["a", "b"], c=0.5, rescale=0), [[3.0, 4.0], [3.0, 4.0]])
    assert direction.tolist() == pytest.approx([4.5, 6.0], abs=1e-5)


def test_single_task():
    # d = (1 + c) g / (1 + c^2) = 1.4 / 1.16 g.
    direction, logged = direction_of(CAGrad(["a"], c=0.4), [[3.0, 4.0]])
    assert direction.tolist() == pytest.approx([3.0 * 1.4 / 1.16, 4.0 * 1.4 / 1.16], abs=1e-5)
    assert logged["weight/a"] == pytest.approx(1.4 / 1.16, abs=1e-6)


def test_weights_ignore_gradient_scale():
    gram = np.array([[9.0, 0.0], [0.0, 16.0]])
    assert conflict_averse_weights(gram, 0.4) == pytest.approx(conflict_averse_weights(gram * 1e-6, 0.4), abs=1e-7)


def test_backward_writes_direction_and_decoder_gradients():
    tasks = LinearTasks([[3.0, 0.0], [0.0, 4.0]])
    method = CAGrad(tasks.tasks, c=0.4, rescale=0)
    logged = method.backward(tasks.context([1.0, 2.0]))

    assert tasks.shared.weight.grad.flatten().tolist() == pytest.approx([2.5, 2.0], abs=1e-6)
    # Each decoder gets the gradient of its own, unweighted loss: W.
    for head in tasks.heads:
        assert head.grad.tolist() == [1.0, 2.0]
    assert set(logged) == {"weight/task0", "weight/task1"}


def test_solver_failure_warns_once_and_uses_mean(monkeypatch):
    def failing_solver(*arguments):
        raise ValueError("matrix G is not positive definite")

    monkeypatch.setattr("mtbench.methods.cagrad.quadprog", SimpleNamespace(solve_qp=failing_solver))
    method = CAGrad(["a", "b"], c=0.4, rescale=0)
    gradients = torch.tensor([[3.0, 0.0], [0.0, 4.0]])

    with pytest.warns(RuntimeWarning, match="quadratic programme failed") as caught:
        direction, _ = method.combine(gradients, None)
        method.combine(gradients, None)
    assert len(caught) == 1
    assert direction.tolist() == pytest.approx([1.5, 2.0])


def test_state_is_empty_and_round_trips():
    method = CAGrad(["a", "b"], c=0.4)
    assert method.state_dict() == {}
    restored = CAGrad(["a", "b"], c=0.4)
    restored.load_state_dict(method.state_dict())
    gradients = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    assert torch.equal(restored.combine(gradients, None)[0], method.combine(gradients, None)[0])


def test_representation_mode_rejected():
    with pytest.raises(MtbenchError, match="cannot use gradients with respect to the shared representation"):
        CAGrad(["a", "b"], gradients="representation")


@pytest.mark.parametrize("c", [-0.1, float("nan"), float("inf")])
def test_invalid_c_raises(c):
    with pytest.raises(MtbenchError, match="Invalid c="):
        CAGrad(["a", "b"], c=c)


@pytest.mark.parametrize("rescale", [3, -1, True, 1.5])
def test_invalid_rescale_raises(rescale):
    with pytest.raises(MtbenchError, match="Invalid rescale="):
        CAGrad(["a", "b"], rescale=rescale)


def test_registered_with_published_defaults():
    assert get_method("cagrad") is CAGrad
    assert CAGrad(["a", "b"]).config() == {"c": 0.4, "rescale": 1, "gradients": "parameters"}

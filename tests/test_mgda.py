import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import nn

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method
from mtbench.methods.mgda import MGDA, frank_wolfe_weights, normalization_factors


class LinearTasks:
    """A shared vector W, used as the representation, and task losses L_k = h_k . W + offset_k.

    The gradient of L_k is h_k with respect to both W and the representation,
    whatever W is, so the heads are the rows of G. Each head h_k is task k's
    decoder parameter and receives the gradient W.
    """

    def __init__(self, heads, offsets=None, weight=(1.0, 1.0)) -> None:
        self.shared = nn.Parameter(torch.tensor(weight))
        self.heads = [nn.Parameter(torch.tensor(head, dtype=torch.float32)) for head in heads]
        self.offsets = list(offsets) if offsets is not None else [10.0] * len(heads)
        self.tasks = [f"task{index}" for index in range(len(heads))]

    def context(self, step: int = 0) -> StepContext:
        for parameter in [self.shared, *self.heads]:
            parameter.grad = None
        representation = self.shared * 1.0
        losses = {
            task: head @ representation + offset for task, head, offset in zip(self.tasks, self.heads, self.offsets)
        }
        heads = {task: [head] for task, head in zip(self.tasks, self.heads)}
        return StepContext(
            losses, [self.shared], [self.shared], representation, step=step, epoch=1, task_parameters=heads
        )

    def shared_gradient(self) -> list[float]:
        return self.shared.grad.tolist()


def run_step(method_class, heads, offsets=None, **options):
    """Build the method for ``heads``, run one backward pass, and return (logged, tasks)."""
    tasks = LinearTasks(heads, offsets)
    method = method_class(tasks.tasks, **options)
    logged = method.backward(tasks.context())
    return logged, tasks


def logged_weights(logged: dict[str, float]) -> list[float]:
    return [value for key, value in logged.items() if key.startswith("weight/")]


def test_two_tasks_worked_example():
    logged, tasks = run_step(MGDA, [(1.0, 0.0), (-1.0, 1.0)])
    # ||w (1, 0) + (1 - w) (-1, 1)||^2 = (2w - 1)^2 + (1 - w)^2 has derivative 10 w - 6, so w = 0.6
    # and d = 0.6 (1, 0) + 0.4 (-1, 1) = (0.2, 0.4).
    assert logged_weights(logged) == pytest.approx([0.6, 0.4], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([0.2, 0.4], abs=1e-6)


def test_three_balanced_tasks_cancel():
    logged, tasks = run_step(MGDA, [(1.0, 0.0), (0.0, 1.0), (-1.0, -1.0)])
    # (1, 0) + (0, 1) + (-1, -1) = 0, so the uniform weights reach the min-norm point 0.
    assert logged_weights(logged) == pytest.approx([1 / 3, 1 / 3, 1 / 3], abs=1e-5)
    assert tasks.shared_gradient() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_identical_gradients_keep_gradient():
    logged, tasks = run_step(MGDA, [(1.0, 1.0), (1.0, 1.0)])
    # Every point of the hull is (1, 1); Frank-Wolfe's first step goes to the first task.
    assert tasks.shared_gradient() == [1.0, 1.0]
    assert logged_weights(logged) == [1.0, 0.0]


def test_opposite_gradients_cancel():
    logged, tasks = run_step(MGDA, [(1.0, 0.0), (-1.0, 0.0)])
    assert logged_weights(logged) == [0.5, 0.5]
    assert tasks.shared_gradient() == [0.0, 0.0]


def test_zero_gradients_give_zero_direction():
    logged, tasks = run_step(MGDA, [(0.0, 0.0), (0.0, 0.0)])
    weights = logged_weights(logged)
    assert all(math.isfinite(weight) for weight in weights)
    assert sum(weights) == pytest.approx(1.0)
    assert tasks.shared_gradient() == [0.0, 0.0]


def test_one_zero_gradient_is_min_norm_point():
    logged, tasks = run_step(MGDA, [(1.0, 0.0), (0.0, 0.0)])
    assert logged_weights(logged) == [0.0, 1.0]
    assert tasks.shared_gradient() == [0.0, 0.0]


@pytest.mark.parametrize("scale", [1e-20, 1e-23])
def test_tiny_gradients_keep_weights(scale):
    # Squares of 1e-23 are below the smallest float32 subnormal without the rescaling.
    logged, tasks = run_step(MGDA, [(scale, 0.0), (-scale, scale)])
    assert logged_weights(logged) == pytest.approx([0.6, 0.4], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([0.2 * scale, 0.4 * scale], rel=1e-5, abs=0)


def test_single_task_takes_its_gradient():
    logged, tasks = run_step(MGDA, [(3.0, 4.0)])
    assert logged == {"weight/task0": 1.0}
    assert tasks.shared_gradient() == [3.0, 4.0]


def test_decoders_get_own_gradient():
    _, tasks = run_step(MGDA, [(1.0, 0.0), (-1.0, 1.0)])
    # dL_k / dh_k = W = (1, 1), unweighted.
    for head in tasks.heads:
        assert head.grad.tolist() == [1.0, 1.0]


def test_representation_mode_same_for_identity_encoder():
    logged, tasks = run_step(MGDA, [(1.0, 0.0), (-1.0, 1.0)], gradients="representation")
    # The representation is W itself, so its gradients are the same rows.
    assert logged_weights(logged) == pytest.approx([0.6, 0.4], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([0.2, 0.4], abs=1e-6)


@pytest.mark.parametrize(
    "normalization, expected_weights, expected_direction",
    [
        # Rows (2, 0) and (0, 1) are orthogonal, so w_k is proportional to 1 / ||g_k||^2 = (1/4, 1).
        ("none", [0.2, 0.8], [0.4, 0.8]),
        # Unit rows (1, 0) and (0, 1) get equal weights; d combines the raw rows: (1, 0.5).
        ("l2", [0.5, 0.5], [1.0, 0.5]),
        # Losses (2, 1) turn the rows into (1, 0) and (0, 1).
        ("loss", [0.5, 0.5], [1.0, 0.5]),
        # Normalisers L ||g|| = (4, 1) give rows (0.5, 0) and (0, 1), so w is proportional to (4, 1).
        ("loss+", [0.8, 0.2], [1.6, 0.2]),
    ],
)
def test_normalization_worked_examples(normalization, expected_weights, expected_direction):
    # W = (1, 1) and zero offsets give the losses (2, 1).
    logged, tasks = run_step(MGDA, [(2.0, 0.0), (0.0, 1.0)], offsets=(0.0, 0.0), normalization=normalization)
    assert logged_weights(logged) == pytest.approx(expected_weights, abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx(expected_direction, abs=1e-6)


def test_normalization_factors_divide_by_largest():
    gramian = torch.tensor([[4.0, 0.0], [0.0, 1.0]])
    factors = normalization_factors(gramian, torch.tensor([2.0, 4.0]), "loss")
    # 1 / L = (1/2, 1/4), divided by 1/2.
    assert factors.tolist() == [1.0, 0.5]


def test_zero_normalizer_leaves_row_unscaled():
    gramian = torch.tensor([[4.0, 0.0], [0.0, 1.0]])
    factors = normalization_factors(gramian, torch.tensor([0.0, 4.0]), "loss")
    # Factors (1, 1/4): the zero loss gets 1.
    assert factors.tolist() == [1.0, 0.25]


def test_negative_loss_rejected_by_loss_normalization():
    with pytest.raises(MtbenchError, match="'none' or 'l2'"):
        run_step(MGDA, [(1.0, 0.0), (0.0, 1.0)], offsets=(-5.0, 0.0), normalization="loss")


def test_matches_quadratic_program_solution():
    generator = torch.Generator().manual_seed(3)
    gradients = torch.randn(4, 6, generator=generator)
    method = MGDA([f"task{index}" for index in range(4)])
    weights = method.min_norm_weights(gradients @ gradients.T).double().numpy()

    gramian = (gradients @ gradients.T).double().numpy()
    reference = minimize(
        lambda weights: weights @ gramian @ weights,
        np.full(4, 0.25),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * 4,
        constraints=[{"type": "eq", "fun": lambda weights: weights.sum() - 1.0}],
        options={"ftol": 1e-12},
    )
    assert weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert weights @ gramian @ weights == pytest.approx(reference.fun, rel=1e-3)


def test_iteration_limit_is_respected():
    gradients = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    gramian = gradients @ gradients.T
    one_step = MGDA(["a", "b", "c"], max_iterations=1).min_norm_weights(gramian)
    converged = MGDA(["a", "b", "c"]).min_norm_weights(gramian)
    # Orthogonal rows: w is proportional to 1 / ||g_k||^2 = (1, 1/4, 1/9), so w = (36, 9, 4) / 49.
    assert converged.tolist() == pytest.approx([36 / 49, 9 / 49, 4 / 49], abs=1e-3)
    assert one_step.tolist() != pytest.approx(converged.tolist(), abs=1e-3)


def test_non_finite_gradient_raises():
    tasks = LinearTasks([(1.0, 0.0), (0.0, 1.0)])
    context = tasks.context()
    method = MGDA(tasks.tasks)
    with pytest.raises(MtbenchError, match="task1"):
        method.combine(torch.tensor([[1.0, 0.0], [float("nan"), 1.0]]), context)


def test_state_round_trip_gives_same_direction():
    tasks = LinearTasks([(1.0, 0.0), (-1.0, 1.0)])
    method = MGDA(tasks.tasks, normalization="l2", max_iterations=50, tolerance=1e-4)
    method.backward(tasks.context())
    expected = tasks.shared_gradient()

    restored = MGDA(tasks.tasks, **method.config())
    restored.load_state_dict(method.state_dict())
    restored.backward(tasks.context())
    assert tasks.shared_gradient() == expected


@pytest.mark.parametrize(
    "options, message",
    [
        ({"normalization": "l1"}, "normalization"),
        ({"max_iterations": 0}, "max_iterations"),
        ({"max_iterations": 2.5}, "max_iterations"),
        ({"tolerance": 0.0}, "tolerance"),
        ({"tolerance": float("nan")}, "tolerance"),
        ({"gradients": "inputs"}, "gradients"),
    ],
)
def test_invalid_hyperparameters_raise(options, message):
    with pytest.raises(MtbenchError, match=message):
        MGDA(["a", "b"], **options)


def test_registered_with_defaults():
    assert get_method("mgda") is MGDA
    assert MGDA(["a", "b"]).config() == {
        "gradients": "parameters",
        "normalization": "none",
        "max_iterations": 250,
        "tolerance": 1e-5,
    }


def test_frank_wolfe_worked_example():
    weights = frank_wolfe_weights(torch.tensor([[1.0, -1.0], [-1.0, 2.0]]), 1e-5, 250)

    assert weights.tolist() == pytest.approx([0.6, 0.4], abs=1e-5)


def test_frank_wolfe_matches_torchjd_loop():
    # The same Frank-Wolfe loop as TorchJD's MGDAWeighting; only float64 against float32 arithmetic differs.
    from torchjd.aggregation import MGDAWeighting

    generator = torch.Generator().manual_seed(0)
    for task_count in (2, 3, 5):
        for _ in range(20):
            gradients = torch.randn(task_count, 50, generator=generator)
            gramian = gradients @ gradients.T
            gramian = gramian / gramian.abs().max()

            expected = MGDAWeighting(epsilon=1e-5, max_iters=250)(gramian)

            assert torch.allclose(frank_wolfe_weights(gramian, 1e-5, 250), expected, atol=1e-4)

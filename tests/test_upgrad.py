import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.methods import get_method
from mtbench.methods.upgrad import UPGrad
from test_mgda import LinearTasks, logged_weights, run_step

# TorchJD solves on M / trace(M) + 1e-4 I, so weights are exact to about 1e-4.
SOLVER_TOLERANCE = 1e-3


def test_conflicting_worked_example():
    logged, tasks = run_step(UPGrad, [(1.0, 0.0), (-1.0, 1.0)])
    # The cone is x_1 >= 0 and x_2 >= x_1. pi(g_1) = (1/2, 1/2) = g_1 + g_2 / 2 and
    # pi(g_2) = (0, 1) = g_1 + g_2, so the mean has weights (1, 3/4) and d = (1/4, 3/4).
    assert logged_weights(logged) == pytest.approx([1.0, 0.75], abs=SOLVER_TOLERANCE)
    direction = torch.tensor(tasks.shared_gradient())
    assert direction.tolist() == pytest.approx([0.25, 0.75], abs=SOLVER_TOLERANCE)
    assert direction @ torch.tensor([1.0, 0.0]) > 0
    assert direction @ torch.tensor([-1.0, 1.0]) > 0


def test_non_conflicting_gradients_are_averaged():
    logged, tasks = run_step(UPGrad, [(1.0, 0.0), (0.0, 1.0)])
    assert logged_weights(logged) == pytest.approx([0.5, 0.5], abs=SOLVER_TOLERANCE)
    assert tasks.shared_gradient() == pytest.approx([0.5, 0.5], abs=SOLVER_TOLERANCE)


def test_opposite_gradients_cancel():
    logged, tasks = run_step(UPGrad, [(1.0, 0.0), (-1.0, 0.0)])
    # The cone is the line x_1 = 0, where both projections are 0.
    assert logged_weights(logged) == pytest.approx([1.0, 1.0], abs=SOLVER_TOLERANCE)
    assert tasks.shared_gradient() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_identical_gradients_keep_gradient():
    logged, tasks = run_step(UPGrad, [(1.0, 2.0), (1.0, 2.0)])
    assert logged_weights(logged) == pytest.approx([0.5, 0.5], abs=SOLVER_TOLERANCE)
    assert tasks.shared_gradient() == pytest.approx([1.0, 2.0], abs=SOLVER_TOLERANCE)


def test_zero_gradients_give_zero_direction():
    logged, tasks = run_step(UPGrad, [(0.0, 0.0), (0.0, 0.0)])
    assert logged_weights(logged) == pytest.approx([0.5, 0.5], abs=SOLVER_TOLERANCE)
    assert tasks.shared_gradient() == [0.0, 0.0]


def test_one_zero_gradient_adds_zero_to_mean():
    logged, tasks = run_step(UPGrad, [(3.0, 4.0), (0.0, 0.0)])
    # pi(g_1) = g_1 and pi(0) = 0, so d = g_1 / 2.
    assert logged_weights(logged)[0] == pytest.approx(0.5, abs=SOLVER_TOLERANCE)
    assert tasks.shared_gradient() == pytest.approx([1.5, 2.0], abs=SOLVER_TOLERANCE)


@pytest.mark.parametrize("scale", [1e-20, 1e-3])
def test_small_gradients_keep_weights(scale):
    # Without the rescaling TorchJD 0.18 returns (1/2, 1/2) once sum ||g_k||^2 < 1e-4.
    logged, tasks = run_step(UPGrad, [(scale, 0.0), (-scale, scale)])
    assert logged_weights(logged) == pytest.approx([1.0, 0.75], abs=SOLVER_TOLERANCE)
    assert tasks.shared_gradient() == pytest.approx([0.25 * scale, 0.75 * scale], rel=SOLVER_TOLERANCE, abs=0)


def test_single_task_takes_its_gradient():
    logged, tasks = run_step(UPGrad, [(3.0, 4.0)])
    assert logged_weights(logged) == pytest.approx([1.0], abs=SOLVER_TOLERANCE)
    assert tasks.shared_gradient() == pytest.approx([3.0, 4.0], rel=SOLVER_TOLERANCE)


def test_update_conflicts_with_no_task():
    generator = torch.Generator().manual_seed(4)
    gradients = torch.randn(4, 5, generator=generator)
    tasks = LinearTasks(gradients.tolist(), weight=[1.0] * 5)
    UPGrad(tasks.tasks).backward(tasks.context())
    inner_products = gradients @ torch.tensor(tasks.shared_gradient())
    assert bool((inner_products > -SOLVER_TOLERANCE).all()), inner_products.tolist()


def test_representation_mode_rejected():
    with pytest.raises(MtbenchError, match="conflict") as error:
        UPGrad(["a", "b"], gradients="representation")
    assert "gradients=parameters" in str(error.value)


def test_state_round_trip_gives_same_direction():
    tasks = LinearTasks([(1.0, 0.0), (-1.0, 1.0)])
    method = UPGrad(tasks.tasks)
    method.backward(tasks.context())
    expected = tasks.shared_gradient()

    restored = UPGrad(tasks.tasks)
    restored.load_state_dict(method.state_dict())
    restored.backward(tasks.context())
    assert tasks.shared_gradient() == expected


def test_non_finite_gradient_raises():
    tasks = LinearTasks([(1.0, 0.0), (float("inf"), 1.0)])
    with pytest.raises(MtbenchError, match="task1"):
        UPGrad(tasks.tasks).backward(tasks.context())


def test_registered_with_defaults():
    assert get_method("upgrad") is UPGrad
    assert UPGrad(["a", "b"]).config() == {"gradients": "parameters"}

import math

import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.methods import get_method
from mtbench.methods.aligned_mtl import AlignedMTL
from test_mgda import LinearTasks, logged_weights, run_step
from test_mgda_ub import TanhNetwork


def test_orthogonal_worked_example():
    logged, tasks = run_step(AlignedMTL, [(1.0, 0.0), (0.0, 2.0)])
    # M = diag(1, 4), lambda_min = 1, B = diag(1 / 1, 1 / 2), alpha = B 1 = (1, 1/2).
    # The aligned gradients are (1, 0) and (0, 1), and d is their sum.
    assert logged_weights(logged) == pytest.approx([1.0, 0.5], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([1.0, 1.0], abs=1e-6)


def test_non_orthogonal_worked_example():
    logged, tasks = run_step(AlignedMTL, [(1.0, 0.0), (0.6, 0.8)])
    # M = [[1, 0.6], [0.6, 1]] has eigenvalues 1.6 on (1, 1) / sqrt(2) and 0.4 on (1, -1) / sqrt(2).
    # B = V diag(sqrt(0.4 / 1.6), 1) V^T = [[0.75, -0.25], [-0.25, 0.75]], so alpha = (0.5, 0.5)
    # and d = (0.8, 0.4). The aligned rows (0.6, -0.2) and (0.2, 0.6) are orthogonal with norm sqrt(0.4).
    assert logged_weights(logged) == pytest.approx([0.5, 0.5], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([0.8, 0.4], abs=1e-6)


def test_rmse_scale_mode():
    logged, tasks = run_step(AlignedMTL, [(1.0, 0.0), (0.6, 0.8)], scale_mode="rmse")
    # The mean eigenvalue is 1, so B = V diag(1 / sqrt(1.6), 1 / sqrt(0.4)) V^T and B 1 = (1, 1) / sqrt(1.6).
    scale = 1 / math.sqrt(1.6)
    assert logged_weights(logged) == pytest.approx([scale, scale], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([1.6 * scale, 0.8 * scale], abs=1e-6)


def test_identical_gradients_are_summed():
    logged, tasks = run_step(AlignedMTL, [(1.0, 2.0), (1.0, 2.0)])
    # Rank 1: B = V_1 V_1^T = [[1/2, 1/2], [1/2, 1/2]], so alpha = (1, 1) and d = 2 g.
    assert logged_weights(logged) == pytest.approx([1.0, 1.0], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([2.0, 4.0], abs=1e-5)


def test_opposite_gradients_cancel():
    logged, tasks = run_step(AlignedMTL, [(1.0, 0.0), (-1.0, 0.0)])
    # Rank 1 with V_1 = (1, -1) / sqrt(2): B 1 = 0.
    assert logged_weights(logged) == pytest.approx([0.0, 0.0], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_zero_gradients_give_zero_direction():
    logged, tasks = run_step(AlignedMTL, [(0.0, 0.0), (0.0, 0.0)])
    assert logged_weights(logged) == [1.0, 1.0]
    assert tasks.shared_gradient() == [0.0, 0.0]


def test_one_zero_gradient_gets_no_weight():
    logged, tasks = run_step(AlignedMTL, [(3.0, 4.0), (0.0, 0.0)])
    assert logged_weights(logged) == pytest.approx([1.0, 0.0], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([3.0, 4.0], abs=1e-5)


@pytest.mark.parametrize("scale", [1e-20, 1e-23])
def test_tiny_gradients_keep_weights(scale):
    logged, tasks = run_step(AlignedMTL, [(scale, 0.0), (0.0, 2 * scale)])
    assert logged_weights(logged) == pytest.approx([1.0, 0.5], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([scale, scale], rel=1e-5, abs=0)


def test_single_task_takes_its_gradient():
    logged, tasks = run_step(AlignedMTL, [(3.0, 4.0)])
    assert logged_weights(logged) == pytest.approx([1.0], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([3.0, 4.0], abs=1e-5)


def test_aligned_gradients_have_condition_number_one():
    generator = torch.Generator().manual_seed(0)
    gradients = torch.randn(3, 6, generator=generator)
    tasks = LinearTasks(gradients.tolist(), weight=[1.0] * 6)
    AlignedMTL(tasks.tasks).backward(tasks.context())

    # Rebuild B from the definition and check that d = sum of the rows of B G.
    eigenvalues, eigenvectors = torch.linalg.eigh((gradients @ gradients.T).double())
    balance = eigenvalues.min().sqrt() * eigenvectors @ torch.diag(eigenvalues.rsqrt()) @ eigenvectors.T
    aligned = balance @ gradients.double()
    singular_values = torch.linalg.svdvals(aligned)
    assert singular_values.tolist() == pytest.approx([eigenvalues.min().sqrt().item()] * 3, rel=1e-6)
    assert tasks.shared_gradient() == pytest.approx(aligned.sum(dim=0).tolist(), abs=1e-5)


def test_representation_mode_is_upper_bound_variant():
    network = TanhNetwork()
    logged = AlignedMTL(["a", "b"], gradients="representation").backward(network.context())
    encoder_gradients = [parameter.grad.clone() for parameter in network.encoder.parameters()]

    context = network.context()
    rows = torch.stack(
        [torch.autograd.grad(loss, context.shared_representation, retain_graph=True)[0].flatten() for loss in context.task_losses.values()]
    ).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(rows @ rows.T)
    balance = eigenvalues.min().sqrt() * eigenvectors @ torch.diag(eigenvalues.rsqrt()) @ eigenvectors.T
    expected_weights = balance.sum(dim=1)
    assert [logged["weight/a"], logged["weight/b"]] == pytest.approx(expected_weights.tolist(), abs=1e-5)

    weighted = sum(logged[f"weight/{task}"] * loss for task, loss in context.task_losses.items())
    for actual, reference in zip(encoder_gradients, torch.autograd.grad(weighted, context.shared_parameters)):
        assert torch.allclose(actual, reference, atol=1e-6)


def test_state_round_trip_gives_same_direction():
    tasks = LinearTasks([(1.0, 0.0), (0.6, 0.8)])
    method = AlignedMTL(tasks.tasks, scale_mode="median")
    method.backward(tasks.context())
    expected = tasks.shared_gradient()

    restored = AlignedMTL(tasks.tasks, **method.config())
    restored.load_state_dict(method.state_dict())
    restored.backward(tasks.context())
    assert tasks.shared_gradient() == expected


def test_invalid_scale_mode_raises():
    with pytest.raises(MtbenchError, match="scale_mode"):
        AlignedMTL(["a", "b"], scale_mode="max")


def test_registered_with_defaults():
    assert get_method("aligned-mtl") is AlignedMTL
    assert AlignedMTL(["a", "b"]).config() == {"gradients": "parameters", "scale_mode": "min"}

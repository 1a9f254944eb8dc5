import math
import warnings

import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.methods import get_method
from mtbench.methods.imtl import IMTL, LOG_SCALE_BOUND, imtl_g_weights
from test_mgda import LinearTasks, logged_weights, run_step
from test_mgda_ub import TanhNetwork


def weights_of(rows) -> tuple[list[float], bool]:
    gradients = torch.tensor(rows, dtype=torch.float32)
    weights, found = imtl_g_weights(gradients @ gradients.T)
    return weights.tolist(), found


def closed_form_weights(gradients: torch.Tensor) -> torch.Tensor:
    """Return the publication's alpha: alpha_2..K = g_1 U^T (D U^T)^-1 and alpha_1 = 1 - sum alpha_2..K."""
    units = gradients / gradients.norm(dim=1, keepdim=True)
    differences = gradients[0] - gradients[1:]
    unit_differences = units[0] - units[1:]
    rest = gradients[0] @ unit_differences.T @ torch.linalg.inv(differences @ unit_differences.T)
    return torch.cat([(1 - rest.sum()).reshape(1), rest])


def test_weights_worked_example():
    weights, found = weights_of([(1.0, 0.0), (0.0, 2.0)])
    # M = diag(1, 4), n = (1, 2), v = M^-1 n = (1, 1/2), alpha = v / 1.5.
    assert found
    assert weights == pytest.approx([2 / 3, 1 / 3], abs=1e-6)


def test_weights_match_closed_form():
    generator = torch.Generator().manual_seed(0)
    gradients = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    weights, found = imtl_g_weights(gradients @ gradients.T)
    expected = closed_form_weights(gradients)

    assert found
    assert weights.double().tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    projections = (weights.double() @ gradients) @ (gradients / gradients.norm(dim=1, keepdim=True)).T
    assert projections.tolist() == pytest.approx([projections[0].item()] * 3, rel=1e-5)
    assert projections[0] > 0


def test_hybrid_step_worked_example():
    # W = (1, 1) and offsets (1, -1) give the losses L = (2, 1).
    tasks = LinearTasks([(1.0, 0.0), (0.0, 2.0)], offsets=(1.0, -1.0))
    method = IMTL(tasks.tasks)
    logged = method.backward(tasks.context())

    # s = (0, 0): IMTL-G on (1, 0) and (0, 2) gives alpha = (2/3, 1/3) and d = (2/3, 2/3).
    assert logged_weights(logged) == pytest.approx([2 / 3, 1 / 3], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([2 / 3, 2 / 3], abs=1e-6)
    assert [logged["loss_scale/task0"], logged["loss_scale/task1"]] == [1.0, 1.0]
    # d/ds (e^s L - s) = e^s L - 1 = (1, 0); each head gets e^s W = (1, 1).
    assert method.log_scales.grad.tolist() == pytest.approx([1.0, 0.0])
    assert [head.grad.tolist() for head in tasks.heads] == [[1.0, 1.0], [1.0, 1.0]]


def test_hybrid_step_with_learned_scales():
    tasks = LinearTasks([(1.0, 0.0), (0.0, 2.0)], offsets=(1.0, -1.0))
    method = IMTL(tasks.tasks)
    with torch.no_grad():
        method.log_scales.copy_(torch.tensor([math.log(2.0), 0.0]))
    logged = method.backward(tasks.context())

    # Scaled gradients (2, 0) and (0, 2) have equal norms, so alpha = (1/2, 1/2) and d = (1, 1).
    assert logged_weights(logged) == pytest.approx([0.5, 0.5], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert logged["loss_scale/task0"] == pytest.approx(2.0)
    # e^s L - 1 = (2 * 2 - 1, 1 - 1); head 0 gets 2 W.
    assert method.log_scales.grad.tolist() == pytest.approx([3.0, 0.0])
    assert tasks.heads[0].grad.tolist() == pytest.approx([2.0, 2.0])
    assert tasks.heads[1].grad.tolist() == pytest.approx([1.0, 1.0])


def test_opposite_gradients_give_zero():
    tasks = LinearTasks([(1.0, 0.0), (-1.0, 0.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logged = IMTL(tasks.tasks).backward(tasks.context())
    assert logged_weights(logged) == [0.0, 0.0]
    assert tasks.shared_gradient() == [0.0, 0.0]


def test_identical_gradients_split_evenly():
    logged, tasks = run_step(IMTL, [(1.0, 2.0), (1.0, 2.0)])
    assert logged_weights(logged) == pytest.approx([0.5, 0.5], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([1.0, 2.0], abs=1e-6)


def test_zero_gradients_give_zero():
    logged, tasks = run_step(IMTL, [(0.0, 0.0), (0.0, 0.0)])
    assert logged_weights(logged) == [0.0, 0.0]
    assert tasks.shared_gradient() == [0.0, 0.0]


def test_one_zero_gradient_gets_no_weight():
    logged, tasks = run_step(IMTL, [(3.0, 4.0), (0.0, 0.0)])
    assert logged_weights(logged) == pytest.approx([1.0, 0.0], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([3.0, 4.0], abs=1e-5)


@pytest.mark.parametrize("scale", [1e-20, 1e-23])
def test_tiny_gradients_keep_weights(scale):
    logged, tasks = run_step(IMTL, [(scale, 0.0), (0.0, 2 * scale)])
    assert logged_weights(logged) == pytest.approx([2 / 3, 1 / 3], abs=1e-6)
    assert tasks.shared_gradient() == pytest.approx([2 / 3 * scale, 2 / 3 * scale], rel=1e-5, abs=0)


def test_single_task_takes_its_gradient():
    logged, tasks = run_step(IMTL, [(3.0, 4.0)])
    assert logged_weights(logged) == pytest.approx([1.0])
    assert tasks.shared_gradient() == pytest.approx([3.0, 4.0])


def test_negative_weight_sum_warns_once():
    # For these rows v = M^-1 n sums to about -0.19, so alpha = v / sum(v) would raise every loss.
    rows = [(-2.0, -2.0, -2.0), (-2.0, -1.0, 1.0), (-2.0, -1.0, 2.0)]
    weights, found = weights_of(rows)
    assert not found
    assert weights == [0.0, 0.0, 0.0]

    tasks = LinearTasks(rows, weight=(1.0, 1.0, 1.0))
    method = IMTL(tasks.tasks)
    with pytest.warns(UserWarning, match="no update"):
        method.backward(tasks.context())
    assert tasks.shared_gradient() == [0.0, 0.0, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        method.backward(tasks.context(step=1))


def test_representation_mode_uses_representation_gradients():
    network = TanhNetwork()
    method = IMTL(["a", "b"], gradients="representation")
    logged = method.backward(network.context())
    encoder_gradients = [parameter.grad.clone() for parameter in network.encoder.parameters()]

    context = network.context()
    rows = torch.stack(
        [torch.autograd.grad(loss, context.shared_representation, retain_graph=True)[0].flatten() for loss in context.task_losses.values()]
    )
    expected_weights = closed_form_weights(rows.double())
    assert [logged["weight/a"], logged["weight/b"]] == pytest.approx(expected_weights.tolist(), abs=1e-5)

    weighted = sum(logged[f"weight/{task}"] * loss for task, loss in context.task_losses.items())
    for actual, reference in zip(encoder_gradients, torch.autograd.grad(weighted, context.shared_parameters)):
        assert torch.allclose(actual, reference, atol=1e-6)


def test_scales_clamped_after_step():
    method = IMTL(["a", "b"])
    with torch.no_grad():
        method.log_scales.copy_(torch.tensor([25.0, -0.5]))
    method.after_optimizer_step()
    assert method.log_scales.tolist() == [LOG_SCALE_BOUND, -0.5]


def test_state_round_trip_gives_same_direction():
    tasks = LinearTasks([(1.0, 0.0), (0.0, 2.0)], offsets=(1.0, -1.0))
    method = IMTL(tasks.tasks)
    method.backward(tasks.context())
    torch.optim.SGD(method.parameters(), lr=0.5).step()
    method.after_optimizer_step()
    # s = (0, 0) - 0.5 (1, 0) = (-0.5, 0).
    assert method.log_scales.tolist() == [-0.5, 0.0]

    restored = IMTL(tasks.tasks)
    restored.load_state_dict(method.state_dict())
    assert set(restored.state_dict()) == {"log_scales"}

    method.backward(tasks.context(step=1))
    expected = tasks.shared_gradient()
    restored.backward(tasks.context(step=1))
    assert tasks.shared_gradient() == expected
    assert restored.log_scales.tolist() == [-0.5, 0.0]


def test_trainer_takes_unscaled_gradients():
    assert not IMTL(["a", "b"]).fills_last_shared_gradients()


def test_mismatched_tasks_raise():
    tasks = LinearTasks([(1.0, 0.0), (0.0, 1.0)])
    with pytest.raises(MtbenchError, match="built for the tasks"):
        IMTL(["left", "right"]).backward(tasks.context())


def test_registered_with_defaults():
    assert get_method("imtl") is IMTL
    assert IMTL(["a", "b"]).config() == {"gradients": "parameters"}
    assert IMTL(["a", "b"]).log_scales.tolist() == [0.0, 0.0]

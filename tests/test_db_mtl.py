import math

import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.methods import get_method
from mtbench.methods.db_mtl import DBMTL, log_task_losses
from test_cagrad import LinearTasks


def combine(method, gradients):
    return method.combine(torch.tensor(gradients, dtype=torch.float32), None)


def test_two_steps_with_decaying_beta():
    # beta = 0.5 and beta_sigma = 1 give beta_1 = 0.5 and beta_2 = 0.25.
    method = DBMTL(["a", "b"], beta=0.5, beta_sigma=1.0)

    # Step 1: m = 0.5 * 0 + 0.5 h = ((1.5, 0), (0, 0.5)); norms (1.5, 0.5), so the factors are (1, 3)
    # and d = (1.5, 0) + 3 (0, 0.5) = (1.5, 1.5).
    direction, logged = combine(method, [[3.0, 0.0], [0.0, 1.0]])
    assert direction.tolist() == pytest.approx([1.5, 1.5], abs=1e-6)
    assert logged == pytest.approx({"weight/a": 1.0, "weight/b": 3.0}, abs=1e-6)

    # Step 2: m = 0.25 m + 0.75 h = ((1.125, 1.5), (0, -0.625)); norms (1.875, 0.625), factors (1, 3),
    # d = (1.125, 1.5) + 3 (0, -0.625) = (1.125, -0.375).
    direction, logged = combine(method, [[1.0, 2.0], [0.0, -1.0]])
    assert torch.allclose(method.gradient_averages, torch.tensor([[1.125, 1.5], [0.0, -0.625]]), atol=1e-6)
    assert direction.tolist() == pytest.approx([1.125, -0.375], abs=1e-6)
    assert logged == pytest.approx({"weight/a": 1.0, "weight/b": 3.0}, abs=1e-6)
    assert int(method.step) == 2


def test_first_step_with_published_defaults():
    # beta_1 = 0.9: m = 0.1 h = ((0.3, 0), (0, 0.1)), factors (1, 3), d = (0.3, 0.3).
    direction, logged = combine(DBMTL(["a", "b"]), [[3.0, 0.0], [0.0, 1.0]])
    assert direction.tolist() == pytest.approx([0.3, 0.3], abs=1e-6)
    assert logged["weight/b"] == pytest.approx(3.0, abs=1e-5)


def test_constant_beta_second_step():
    # beta_sigma = 0: beta_2 = 0.9, m = 0.9 (0.3, 0) + 0.1 (3, 0) = (0.57, 0) and 0.9 (0, 0.1) + 0.1 (0, 3) = (0, 0.39).
    method = DBMTL(["a", "b"])
    combine(method, [[3.0, 0.0], [0.0, 1.0]])
    direction, _ = combine(method, [[3.0, 0.0], [0.0, 3.0]])
    assert direction.tolist() == pytest.approx([0.57, 0.57], abs=1e-6)


def test_backward_uses_log_loss_gradients():
    # W = (1, 2): L = (3 + 3, 2 + 0) = (6, 2), so the log-loss gradients are (3, 0) / 6 and (0, 1) / 2,
    # both of norm 0.5; m = 0.1 of them and d = (0.05, 0.05).
    tasks = LinearTasks([[3.0, 0.0], [0.0, 1.0]], offsets=[3.0, 0.0])
    context = tasks.context([1.0, 2.0])
    method = DBMTL(tasks.tasks)
    logged = method.backward(context)

    assert tasks.shared.weight.grad.flatten().tolist() == pytest.approx([0.05, 0.05], abs=1e-6)
    # Each decoder gets the gradient of its log loss, W / L_k.
    assert tasks.heads[0].grad.tolist() == pytest.approx([1.0 / 6.0, 2.0 / 6.0], abs=1e-6)
    assert tasks.heads[1].grad.tolist() == pytest.approx([0.5, 1.0], abs=1e-6)
    assert logged == pytest.approx({"weight/task0": 1.0, "weight/task1": 1.0}, abs=1e-5)
    # The cosine diagnostics receive the log-loss gradients.
    assert torch.allclose(context.cached_task_gradients(), torch.tensor([[0.5, 0.0], [0.0, 0.5]]), atol=1e-6)


def test_loss_scale_does_not_change_update():
    # Multiplying task 0's loss by 100 multiplies its gradient and its loss by 100, so grad log L is unchanged.
    base = LinearTasks([[3.0, 0.0], [0.0, 1.0]], offsets=[3.0, 0.0])
    scaled = LinearTasks([[300.0, 0.0], [0.0, 1.0]], offsets=[300.0, 0.0])
    DBMTL(base.tasks).backward(base.context([1.0, 2.0]))
    DBMTL(scaled.tasks).backward(scaled.context([1.0, 2.0]))
    assert torch.allclose(base.shared.weight.grad, scaled.shared.weight.grad, atol=1e-7)


def test_negative_loss_raises():
    losses = {"a": torch.tensor(2.0, requires_grad=True), "b": torch.tensor(-0.5, requires_grad=True)}
    with pytest.raises(MtbenchError, match="loss of task 'b' is -0.5"):
        log_task_losses(losses)


def test_zero_loss_stays_finite():
    loss = torch.tensor(0.0, requires_grad=True)
    log_loss = log_task_losses({"a": loss})["a"]
    log_loss.backward()
    assert log_loss.item() == pytest.approx(math.log(1e-8))
    assert loss.grad.item() == pytest.approx(1e8)


def test_zero_gradients_give_zero_direction():
    direction, logged = combine(DBMTL(["a", "b"]), [[0.0, 0.0], [0.0, 0.0]])
    assert direction.tolist() == [0.0, 0.0]
    assert logged == {"weight/a": 0.0, "weight/b": 0.0}


def test_one_zero_gradient_contributes_nothing():
    # m = ((0.3, 0), (0, 0)): the largest norm 0.3 times the unit vector of task a.
    direction, logged = combine(DBMTL(["a", "b"]), [[3.0, 0.0], [0.0, 0.0]])
    assert direction.tolist() == pytest.approx([0.3, 0.0], abs=1e-6)
    assert logged == pytest.approx({"weight/a": 1.0, "weight/b": 0.0})


def test_identical_gradients_add_up():
    direction, _ = combine(DBMTL(["a", "b"]), [[3.0, 4.0], [3.0, 4.0]])
    assert direction.tolist() == pytest.approx([0.6, 0.8], abs=1e-6)


@pytest.mark.parametrize("gradients", [[[1.0, 0.0], [-1.0, 0.0]], [[2.0, 0.0], [-1.0, 0.0]]], ids=["equal", "unequal"])
def test_opposite_gradients_cancel(gradients):
    # Both averages are rescaled to the same norm, so opposite gradients cancel whatever their norms.
    direction, logged = combine(DBMTL(["a", "b"]), gradients)
    assert direction.tolist() == pytest.approx([0.0, 0.0], abs=1e-7)
    assert all(math.isfinite(value) for value in logged.values())


def test_tiny_gradients():
    direction, logged = combine(DBMTL(["a", "b"]), [[3e-20, 0.0], [0.0, 1e-20]])
    assert direction.tolist() == pytest.approx([3e-21, 3e-21], rel=1e-5)
    assert logged["weight/b"] == pytest.approx(3.0, rel=1e-5)


def test_norms_forty_orders_apart():
    # The factor 1e40 exceeds float32, so it is logged in float64 and the direction is built from unit vectors.
    direction, logged = combine(DBMTL(["a", "b"]), [[1e10, 0.0], [0.0, 1e-30]])
    assert direction.tolist() == pytest.approx([1e9, 1e9], rel=1e-5)
    assert logged["weight/b"] == pytest.approx(1e40, rel=1e-5)


def test_single_task():
    direction, logged = combine(DBMTL(["a"]), [[3.0, 4.0]])
    assert direction.tolist() == pytest.approx([0.3, 0.4], abs=1e-6)
    assert logged == pytest.approx({"weight/a": 1.0})


def test_state_round_trip_gives_same_next_direction():
    method = DBMTL(["a", "b"], beta=0.5, beta_sigma=1.0)
    combine(method, [[3.0, 0.0], [0.0, 1.0]])
    state = method.state_dict()
    assert set(state) == {"gradient_averages", "step"}

    restored = DBMTL(["a", "b"], beta=0.5, beta_sigma=1.0)
    restored.load_state_dict(state)
    assert restored.gradient_averages.tolist() == [[1.5, 0.0], [0.0, 0.5]]
    expected, _ = combine(method, [[1.0, 2.0], [0.0, -1.0]])
    direction, _ = combine(restored, [[1.0, 2.0], [0.0, -1.0]])
    assert torch.equal(direction, expected)


def test_state_of_another_model_raises():
    method = DBMTL(["a", "b"])
    combine(method, [[3.0, 0.0], [0.0, 1.0]])
    with pytest.raises(MtbenchError, match="belongs to another model"):
        combine(method, [[3.0, 0.0, 1.0], [0.0, 1.0, 1.0]])


def test_representation_mode_rejected():
    with pytest.raises(MtbenchError, match="averages each task's gradient over training steps"):
        DBMTL(["a", "b"], gradients="representation")


@pytest.mark.parametrize(
    "arguments, name",
    [({"beta": 1.0}, "beta"), ({"beta": -0.1}, "beta"), ({"beta": float("nan")}, "beta"), ({"beta_sigma": -1.0}, "beta_sigma")],
)
def test_invalid_hyperparameters_raise(arguments, name):
    with pytest.raises(MtbenchError, match=f"Invalid {name}="):
        DBMTL(["a", "b"], **arguments)


def test_registered_with_published_defaults():
    assert get_method("db-mtl") is DBMTL
    assert DBMTL(["a", "b"]).config() == {"beta": 0.9, "beta_sigma": 0.0, "gradients": "parameters"}

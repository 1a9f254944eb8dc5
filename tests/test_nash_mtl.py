import math

import numpy as np
import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method
from mtbench.methods.nash_mtl import NashMTL, clip_norm, nash_bargaining_weights
from test_cagrad import LinearTasks

STEP = StepContext({}, [], [], torch.zeros(1), step=7, epoch=1)


def combine(method, gradients):
    return method.combine(torch.tensor(gradients, dtype=torch.float32), STEP)


def test_orthogonal_example_before_clipping():
    # G G^T = diag(4, 0.25): alpha_1 * 4 alpha_1 = 1 and alpha_2 * 0.25 alpha_2 = 1 give alpha = (0.5, 2),
    # and d = 0.5 (2, 0) + 2 (0, 0.5) = (1, 1).
    direction, logged = combine(NashMTL(["a", "b"], max_norm=0.0), [[2.0, 0.0], [0.0, 0.5]])
    assert direction.tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert logged == pytest.approx({"weight/a": 0.5, "weight/b": 2.0, "nash_fallback": 0.0}, abs=1e-6)


def test_orthogonal_example_clipped_to_max_norm():
    # ||(1, 1)|| = sqrt(2) > 1, so d becomes (1, 1) / sqrt(2); the logged alpha is the one before clipping.
    direction, logged = combine(NashMTL(["a", "b"]), [[2.0, 0.0], [0.0, 0.5]])
    assert direction.tolist() == pytest.approx([1.0 / math.sqrt(2.0)] * 2, abs=1e-6)
    assert logged["weight/b"] == pytest.approx(2.0, abs=1e-6)


def test_solver_on_orthogonal_gram():
    assert nash_bargaining_weights(np.diag([4.0, 0.25]), 20) == pytest.approx([0.5, 2.0], abs=1e-7)


def test_correlated_example():
    # G G^T = [[1, 1], [1, 2]]: a1 (a1 + a2) = 1 and a2 (a1 + 2 a2) = 1. Subtracting gives a1^2 = 2 a2^2,
    # so a1 = sqrt(2) a2 and a2 = 1 / sqrt(2 + sqrt(2)); d = (a1 + a2, a2), whose squared norm is K = 2.
    direction, logged = combine(NashMTL(["a", "b"], max_norm=0.0), [[1.0, 0.0], [1.0, 1.0]])
    second = 1.0 / math.sqrt(2.0 + math.sqrt(2.0))
    first = math.sqrt(2.0) * second
    assert logged["weight/a"] == pytest.approx(first, abs=1e-6)
    assert logged["weight/b"] == pytest.approx(second, abs=1e-6)
    assert direction.tolist() == pytest.approx([first + second, second], abs=1e-6)
    assert direction.norm().item() ** 2 == pytest.approx(2.0, abs=1e-5)


def test_random_gradients_satisfy_nash_equation():
    generator = torch.Generator().manual_seed(0)
    for task_count in (2, 3, 5, 8):
        gradients = torch.randn(task_count, 20, generator=generator) * torch.logspace(-2, 2, task_count).unsqueeze(1)
        direction, logged = NashMTL([str(k) for k in range(task_count)], max_norm=0.0).combine(gradients, STEP)
        alpha = torch.tensor([logged[f"weight/{k}"] for k in range(task_count)], dtype=torch.float64)
        gram = gradients.double() @ gradients.double().T
        assert torch.allclose(alpha * (gram @ alpha), torch.ones(task_count, dtype=torch.float64), atol=1e-4)
        assert direction.norm().item() ** 2 == pytest.approx(task_count, rel=1e-4)


def test_newton_converges_within_ten_iterations():
    generator = torch.Generator().manual_seed(1)
    for trial in range(50):
        task_count = 2 + trial % 7
        gradients = torch.randn(task_count, 30, generator=generator) * torch.logspace(-2, 2, task_count).unsqueeze(1)
        if trial % 2:
            # A shared component makes the gradients strongly correlated.
            gradients = gradients + 3.0 * torch.randn(1, 30, generator=generator)
        gram = (gradients.double() @ gradients.double().T).numpy()
        assert nash_bargaining_weights(gram, 10) is not None, f"trial {trial} with {task_count} tasks"


def test_identical_gradients():
    # alpha_k = 1 / (||g|| sqrt(2)) = 1 / (5 sqrt(2)), d = sqrt(2) (0.6, 0.8) before clipping, (0.6, 0.8) after.
    direction, logged = combine(NashMTL(["a", "b"]), [[3.0, 4.0], [3.0, 4.0]])
    assert logged["weight/a"] == pytest.approx(1.0 / (5.0 * math.sqrt(2.0)), abs=1e-6)
    assert direction.tolist() == pytest.approx([0.6, 0.8], abs=1e-6)


def test_single_task_gives_unit_direction():
    direction, logged = combine(NashMTL(["a"]), [[3.0, 4.0]])
    assert logged["weight/a"] == pytest.approx(0.2, abs=1e-7)
    assert direction.tolist() == pytest.approx([0.6, 0.8], abs=1e-6)


def test_tiny_gradients_give_same_direction():
    direction, logged = combine(NashMTL(["a", "b"], max_norm=0.0), [[2e-20, 0.0], [0.0, 5e-21]])
    assert direction.tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    assert logged["weight/a"] == pytest.approx(0.5e20, rel=1e-5)
    assert logged["weight/b"] == pytest.approx(2e20, rel=1e-5)


@pytest.mark.parametrize(
    "gradients",
    [
        [[1.0, 0.0], [-1.0, 0.0]],
        [[1.0, 2.0], [-3.0, -6.0]],
        [[0.0, 0.0], [0.0, 0.0]],
        [[3.0, 4.0], [0.0, 0.0]],
        [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]],
    ],
    ids=["opposite", "opposite-unequal", "all-zero", "one-zero", "cancelling-three"],
)
def test_no_solution_at_first_step_raises(gradients):
    method = NashMTL([str(k) for k in range(len(gradients))])
    with pytest.raises(MtbenchError, match="no task weights at training step 7"):
        combine(method, gradients)
    assert not bool(method.has_alpha)


def test_no_solution_reuses_previous_alpha():
    method = NashMTL(["a", "b"], max_norm=0.0)
    combine(method, [[2.0, 0.0], [0.0, 0.5]])

    with pytest.warns(RuntimeWarning, match="reuse the previous weights") as caught:
        direction, logged = combine(method, [[1.0, 0.0], [-1.0, 0.0]])
        second_direction, _ = combine(method, [[0.0, 0.0], [0.0, 0.0]])
    assert len(caught) == 1
    # 0.5 (1, 0) + 2 (-1, 0).
    assert direction.tolist() == pytest.approx([-1.5, 0.0])
    assert logged == pytest.approx({"weight/a": 0.5, "weight/b": 2.0, "nash_fallback": 1.0})
    assert second_direction.tolist() == [0.0, 0.0]


def test_update_every_two_steps_reuses_alpha():
    method = NashMTL(["a", "b"], update_weights_every=2, max_norm=0.0)
    combine(method, [[2.0, 0.0], [0.0, 0.5]])

    # Step 1 reuses alpha = (0.5, 2): 0.5 (4, 0) + 2 (0, 1) = (2, 2).
    direction, logged = combine(method, [[4.0, 0.0], [0.0, 1.0]])
    assert direction.tolist() == pytest.approx([2.0, 2.0], abs=1e-6)
    assert logged["weight/a"] == pytest.approx(0.5, abs=1e-6)

    # Step 2 recomputes: diag(16, 1) gives alpha = (0.25, 1) and d = (1, 1).
    direction, logged = combine(method, [[4.0, 0.0], [0.0, 1.0]])
    assert logged["weight/a"] == pytest.approx(0.25, abs=1e-6)
    assert direction.tolist() == pytest.approx([1.0, 1.0], abs=1e-6)


def test_state_round_trip_keeps_alpha_and_step():
    method = NashMTL(["a", "b"], update_weights_every=2, max_norm=0.0)
    combine(method, [[2.0, 0.0], [0.0, 0.5]])
    state = method.state_dict()
    assert set(state) == {"alpha", "has_alpha", "step"}

    restored = NashMTL(["a", "b"], update_weights_every=2, max_norm=0.0)
    restored.load_state_dict(state)
    # The restored step count makes this a reuse step, and the restored alpha weights the new gradients.
    direction, _ = combine(restored, [[4.0, 0.0], [0.0, 1.0]])
    expected, _ = combine(method, [[4.0, 0.0], [0.0, 1.0]])
    assert direction.tolist() == pytest.approx([2.0, 2.0], abs=1e-6)
    assert torch.equal(direction, expected)


def test_restored_alpha_serves_as_fallback():
    method = NashMTL(["a", "b"], max_norm=0.0)
    combine(method, [[2.0, 0.0], [0.0, 0.5]])
    restored = NashMTL(["a", "b"], max_norm=0.0)
    restored.load_state_dict(method.state_dict())

    with pytest.warns(RuntimeWarning):
        direction, _ = combine(restored, [[1.0, 0.0], [-1.0, 0.0]])
    assert direction.tolist() == pytest.approx([-1.5, 0.0])


def test_clip_norm():
    assert clip_norm(torch.tensor([3.0, 4.0]), 1.0).tolist() == pytest.approx([0.6, 0.8])
    assert clip_norm(torch.tensor([0.3, 0.4]), 1.0).tolist() == pytest.approx([0.3, 0.4])
    assert clip_norm(torch.tensor([3.0, 4.0]), 0.0).tolist() == [3.0, 4.0]
    assert clip_norm(torch.tensor([0.0, 0.0]), 1.0).tolist() == [0.0, 0.0]


def test_backward_writes_clipped_direction_and_decoder_gradients():
    tasks = LinearTasks([[2.0, 0.0], [0.0, 0.5]])
    method = NashMTL(tasks.tasks)
    logged = method.backward(tasks.context([1.0, -1.0]))

    assert tasks.shared.weight.grad.flatten().tolist() == pytest.approx([1.0 / math.sqrt(2.0)] * 2, abs=1e-6)
    for head in tasks.heads:
        assert head.grad.tolist() == [1.0, -1.0]
    assert logged["nash_fallback"] == 0.0


def test_representation_mode_rejected():
    with pytest.raises(MtbenchError, match="cannot use gradients with respect to the shared representation"):
        NashMTL(["a", "b"], gradients="representation")


@pytest.mark.parametrize(
    "arguments, name",
    [
        ({"update_weights_every": 0}, "update_weights_every"),
        ({"update_weights_every": 1.5}, "update_weights_every"),
        ({"optim_niter": 0}, "optim_niter"),
        ({"optim_niter": True}, "optim_niter"),
        ({"max_norm": -1.0}, "max_norm"),
        ({"max_norm": float("nan")}, "max_norm"),
    ],
)
def test_invalid_hyperparameters_raise(arguments, name):
    with pytest.raises(MtbenchError, match=f"Invalid {name}="):
        NashMTL(["a", "b"], **arguments)


def test_registered_with_published_defaults():
    assert get_method("nash-mtl") is NashMTL
    assert NashMTL(["a", "b"]).config() == {
        "update_weights_every": 1,
        "optim_niter": 20,
        "max_norm": 1.0,
        "gradients": "parameters",
    }

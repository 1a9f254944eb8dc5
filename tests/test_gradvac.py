import math
import warnings

import pytest
import torch
from torchjd.aggregation import GradVac as TorchJDGradVac

from mtbench.errors import MtbenchError
from mtbench.methods import get_method
from mtbench.methods.gradvac import GradVac, vaccine_coefficient
from test_pcgrad import THREE_TASKS, LinearHeads, three_task_sums

CONFLICTING = [[1.0, 0.0], [-0.6, 0.8]]


def step(method: GradVac, rows, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    result, _ = method.combine(torch.tensor(rows), context=None)
    return result.tolist()


def with_targets(targets, beta: float = 0.01) -> GradVac:
    method = GradVac([f"task{index}" for index in range(len(targets))], beta=beta)
    method.cosine_targets.copy_(torch.tensor(targets))
    return method


def test_vaccine_coefficient_worked_example():
    # ||g_i|| (0.6 * sqrt(1 - 0) - 0 * sqrt(1 - 0.36)) / (||g_j|| * sqrt(1 - 0.36)) = 0.6 / (2 * 0.8).
    assert vaccine_coefficient(1.0, 2.0, 0.0, 0.6) == pytest.approx(0.375)


def test_worked_example_two_steps():
    method = GradVac(["a", "b"], beta=0.01)
    result, logged = method.combine(torch.tensor(CONFLICTING), context=None)
    # Step 1, targets 0: cos = -0.6 < 0, so w = 1 * (0 * 0.8 + 0.6 * 1) / (1 * 1) = 0.6 for both tasks.
    # g1^PC = (1, 0) + 0.6 (-0.6, 0.8) = (0.64, 0.48) and g2^PC = (-0.6, 0.8) + 0.6 (1, 0) = (0, 0.8).
    assert result.tolist() == pytest.approx([0.64, 1.28])
    assert logged == pytest.approx({"weight/a": 1.6, "weight/b": 1.6})
    # phi_hat = 0.99 * 0 + 0.01 * -0.6.
    assert method.cosine_targets.flatten().tolist() == pytest.approx([0.0, -0.006, -0.006, 0.0])

    # Step 2: cos((1, 0), (0, 1)) = 0 is above the target -0.006, so nothing changes.
    result, _ = method.combine(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), context=None)
    assert result.tolist() == pytest.approx([1.0, 1.0])
    # phi_hat = 0.99 * -0.006 + 0.01 * 0.
    assert method.cosine_targets.flatten().tolist() == pytest.approx([0.0, -0.00594, -0.00594, 0.0])


def test_correction_reaches_target():
    method = with_targets([[0.0, 0.6], [0.6, 0.0]])
    result = step(method, [[1.0, 0.0], [0.0, 2.0]])
    # w_12 = 0.375 gives g1^PC = (1, 0.75); w_21 = 2 * 0.6 / (1 * 0.8) = 1.5 gives g2^PC = (1.5, 2).
    # Both have the cosine 0.75 / 1.25 = 1.5 / 2.5 = 0.6 with the other original gradient.
    assert result == pytest.approx([2.5, 2.75])
    # phi_hat = 0.99 * 0.6 + 0.01 * 0, with the cosine from before the correction.
    assert method.cosine_targets.flatten().tolist() == pytest.approx([0.0, 0.594, 0.594, 0.0])


def test_first_step_is_pcgrad():
    observed = {tuple(round(value, 4) for value in step(GradVac(["a", "b", "c"]), THREE_TASKS, seed)) for seed in range(100)}
    assert observed == three_task_sums()


def test_three_tasks_same_seed_same_result():
    for seed in range(5):
        assert step(GradVac(["a", "b", "c"]), THREE_TASKS, seed) == step(GradVac(["a", "b", "c"]), THREE_TASKS, seed)


def test_matches_torchjd_over_steps():
    generator = torch.Generator().manual_seed(0)
    ours = GradVac(["a", "b", "c", "d"], beta=0.3)
    theirs = TorchJDGradVac(beta=0.3)
    for seed in range(6):
        gradients = torch.randn(4, 7, generator=generator)
        torch.manual_seed(seed)
        expected = theirs(gradients)
        assert step(ours, gradients.tolist(), seed) == pytest.approx(expected.tolist(), abs=1e-5)


def test_backward_changes_shared_gradients_only():
    network = LinearHeads(heads=((1.0, 0.0), (-0.6, 0.8)))
    method = GradVac(network.tasks)
    method.backward(network.context())
    assert network.shared.weight.grad.flatten().tolist() == pytest.approx([0.64, 0.0, 1.28, 0.0])
    for head in network.heads:
        assert head.grad.tolist() == [2.0, 3.0]


def test_representation_mode_rejected():
    with pytest.raises(MtbenchError, match="'gradvac' cannot use gradients with respect to the shared representation"):
        GradVac(["a", "b"], gradients="representation")


def test_zero_gradients_leave_targets():
    method = GradVac(["a", "b"])
    assert step(method, [[0.0, 0.0], [0.0, 0.0]]) == [0.0, 0.0]
    assert method.cosine_targets.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_one_zero_gradient_keeps_other():
    method = GradVac(["a", "b"])
    assert step(method, [[3.0, 4.0], [0.0, 0.0]]) == [3.0, 4.0]
    assert method.cosine_targets.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_identical_gradients_add():
    method = GradVac(["a", "b"])
    assert step(method, [[1.0, 2.0], [1.0, 2.0]]) == pytest.approx([2.0, 4.0])
    assert method.cosine_targets.flatten().tolist() == pytest.approx([0.0, 0.01, 0.01, 0.0])


def test_opposite_gradients_cancel():
    method = GradVac(["a", "b"])
    assert step(method, [[1.0, 2.0], [-1.0, -2.0]]) == pytest.approx([0.0, 0.0], abs=1e-6)
    assert method.cosine_targets.flatten().tolist() == pytest.approx([0.0, -0.01, -0.01, 0.0])


def test_tiny_gradients_scale_result():
    method = GradVac(["a", "b"])
    result = step(method, [[1e-20, 0.0], [-0.6e-20, 0.8e-20]])
    assert result == pytest.approx([0.64e-20, 1.28e-20], rel=1e-5)
    assert method.cosine_targets.flatten().tolist() == pytest.approx([0.0, -0.006, -0.006, 0.0])


def test_single_task_keeps_gradient():
    method = GradVac(["only"])
    result, logged = method.combine(torch.tensor([[3.0, -4.0]]), context=None)
    assert result.tolist() == [3.0, -4.0]
    assert logged == {"weight/only": 1.0}
    assert method.cosine_targets.tolist() == [[0.0]]


def test_target_of_one_warns_and_skips():
    method = with_targets([[0.0, 1.0], [1.0, 0.0]])
    with pytest.warns(RuntimeWarning, match=r"target of tasks [01] and [01] is 1"):
        result = step(method, [[1.0, 0.0], [0.0, 1.0]])
    assert result == [1.0, 1.0]
    assert all(math.isfinite(value) for value in result)
    assert method.cosine_targets.flatten().tolist() == pytest.approx([0.0, 0.99, 0.99, 0.0])


def test_no_warning_below_target_of_one():
    method = with_targets([[0.0, 0.6], [0.6, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step(method, [[1.0, 0.0], [0.0, 2.0]])


def test_state_round_trip_gives_same_direction():
    method = GradVac(["a", "b"], beta=0.5)
    step(method, CONFLICTING)
    state = method.state_dict()
    assert set(state) == {"cosine_targets"}
    assert state["cosine_targets"].flatten().tolist() == pytest.approx([0.0, -0.3, -0.3, 0.0])

    restored = GradVac(["a", "b"], beta=0.5)
    restored.load_state_dict(state)
    expected = step(method, CONFLICTING)
    assert step(restored, CONFLICTING) == expected
    # cos = -0.6 < -0.3: w = (-0.3 * 0.8 + 0.6 * sqrt(0.91)) / sqrt(0.91) for both tasks, against 0.6 with targets 0.
    weight = (-0.3 * 0.8 + 0.6 * math.sqrt(0.91)) / math.sqrt(0.91)
    assert expected == pytest.approx([(1 + weight) * (1.0 - 0.6), (1 + weight) * 0.8])
    assert step(GradVac(["a", "b"], beta=0.5), CONFLICTING) != pytest.approx(expected)


@pytest.mark.parametrize("beta", [-0.1, 1.5, float("nan")])
def test_invalid_beta_raises(beta):
    with pytest.raises(MtbenchError, match="beta"):
        GradVac(["a", "b"], beta=beta)


def test_registered_with_published_default():
    assert get_method("gradvac") is GradVac
    assert GradVac(["a", "b"]).config() == {"beta": 0.01, "gradients": "parameters"}

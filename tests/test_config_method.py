import math

import pytest
import torch
from torch.nn.functional import cosine_similarity

from mtbench.errors import MtbenchError
from mtbench.methods import get_method
from mtbench.methods.config_method import ConFIG, config_direction
from test_pcgrad import LinearHeads


def direction(rows) -> list[float]:
    return config_direction(torch.tensor(rows)).tolist()


def test_worked_example():
    gradients = torch.tensor([[1.0, 0.0], [-3.0, 4.0]])
    result, logged = ConFIG(["a", "b"]).combine(gradients, context=None)
    # Unit rows (1, 0) and (-0.6, 0.8). For two tasks pinv(U) 1 is along their sum (0.4, 0.8),
    # so g_u = (1, 2) / sqrt(5) and both cosines are 1 / sqrt(5).
    # Length: g_1 . g_u + g_2 . g_u = 1 / sqrt(5) + 5 / sqrt(5) = 6 / sqrt(5); g_c = 6 / 5 (1, 2).
    assert result.tolist() == pytest.approx([1.2, 2.4])
    assert logged == {}
    cosines = cosine_similarity(gradients, result.unsqueeze(0), dim=1)
    assert cosines.tolist() == pytest.approx([1 / math.sqrt(5), 1 / math.sqrt(5)])


def test_orthogonal_gradients_of_different_norms():
    # g_u = (1, 1) / sqrt(2); length 2 / sqrt(2) + 1 / sqrt(2) = 3 / sqrt(2); g_c = (1.5, 1.5).
    assert direction([[2.0, 0.0], [0.0, 1.0]]) == pytest.approx([1.5, 1.5])


def test_three_tasks_get_equal_positive_cosines():
    gradients = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    result = config_direction(gradients)
    cosines = cosine_similarity(gradients, result.unsqueeze(0), dim=1).tolist()
    assert cosines[0] > 0
    assert cosines == pytest.approx([cosines[0]] * 3, rel=1e-4)
    # The length is the sum of the projections of the task gradients on g_u.
    unit = result / result.norm()
    assert result.norm().item() == pytest.approx((gradients @ unit).sum().item(), rel=1e-5)


def test_backward_changes_shared_gradients_only():
    network = LinearHeads(heads=((1.0, 0.0), (-0.6, 0.8)))
    ConFIG(network.tasks).backward(network.context())
    # Task gradients (1, 0, 0, 0) and (-0.6, 0, 0.8, 0) are unit vectors: g_u = (1, 0, 2, 0) / sqrt(5),
    # the length is 2 / sqrt(5), so g_c = (0.4, 0, 0.8, 0).
    assert network.shared.weight.grad.flatten().tolist() == pytest.approx([0.4, 0.0, 0.8, 0.0])
    for head in network.heads:
        assert head.grad.tolist() == [2.0, 3.0]


def test_representation_mode_rejected():
    with pytest.raises(MtbenchError, match="'config' cannot use gradients with respect to the shared representation"):
        ConFIG(["a", "b"], gradients="representation")


def test_zero_gradients_give_zero():
    assert direction([[0.0, 0.0], [0.0, 0.0]]) == [0.0, 0.0]


def test_one_zero_gradient_is_left_out():
    assert direction([[3.0, 4.0], [0.0, 0.0]]) == pytest.approx([3.0, 4.0])


def test_identical_gradients_add():
    assert direction([[1.0, 2.0], [1.0, 2.0]]) == pytest.approx([2.0, 4.0])


def test_opposite_gradients_give_zero():
    assert direction([[1.0, 2.0], [-1.0, -2.0]]) == pytest.approx([0.0, 0.0], abs=1e-6)


def test_tiny_gradients_scale_result():
    assert direction([[1e-20, 0.0], [-3e-20, 4e-20]]) == pytest.approx([1.2e-20, 2.4e-20], rel=1e-5)


def test_gradient_too_small_to_square_counts_as_zero():
    # Its norm underflows to 0 in float32, so its unit vector would be infinite.
    result = direction([[1.0, 0.0], [-1e-23, 1e-23]])
    assert result == pytest.approx([1.0, 0.0])


def test_single_task_keeps_gradient():
    assert direction([[3.0, -4.0]]) == pytest.approx([3.0, -4.0])


def test_state_round_trip_gives_same_direction():
    method = ConFIG(["a", "b"])
    restored = ConFIG(["a", "b"])
    restored.load_state_dict(method.state_dict())
    gradients = torch.tensor([[1.0, 0.0], [-3.0, 4.0]])
    assert method.state_dict() == {}
    assert restored.combine(gradients, context=None)[0].tolist() == method.combine(gradients, context=None)[0].tolist()


def test_registered_with_defaults():
    assert get_method("config") is ConFIG
    assert ConFIG(["a", "b"]).config() == {"gradients": "parameters"}

import math

import pytest
import torch
from torchjd.aggregation import GradDrop as TorchJDGradDrop

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method
from mtbench.methods.graddrop import (
    GradDrop,
    graddrop_direction,
    positive_sign_purity,
    sign_masks,
)
from test_pcgrad import LinearHeads

# Columns: signals (1, 2), (-2, 1), (3, -1) and (0, 0).
SIGNALS = torch.tensor([[1.0, -2.0, 3.0, 0.0], [2.0, 1.0, -1.0, 0.0]])
# U = 0.5 < P = 1 keeps both positive signals, 0.2 < 1/3 keeps the positive one, and 0.9 >= 0.75 keeps the negative one.
UNIFORM = torch.tensor([0.5, 0.2, 0.9, 0.1])
# torch.manual_seed(0) followed by torch.rand(2) gives these draws.
SEED_0_DRAWS = [0.49625658988952637, 0.7682217955589294]


def representation_context(representation: torch.Tensor) -> StepContext:
    return StepContext({}, [], [], representation, step=0, epoch=1)


def parameter_direction(rows, seed: int = 0, leak: float = 0.0) -> torch.Tensor:
    method = GradDrop([f"task{index}" for index in range(len(rows))], leak=leak, gradients="parameters")
    torch.manual_seed(seed)
    result, _ = method.combine(torch.tensor(rows), context=None)
    return result


def test_purity_worked_example():
    # P = 0.5 (1 + sum / sum of magnitudes): (1 + 3/3) / 2, (1 - 1/3) / 2, (1 + 2/4) / 2, and 0.5 for the zero column.
    assert positive_sign_purity(SIGNALS).tolist() == pytest.approx([1.0, 1.0 / 3.0, 0.75, 0.5])


def test_masks_worked_example():
    masks = sign_masks(SIGNALS, positive_sign_purity(SIGNALS), UNIFORM)
    # Zero signals are kept, so the last column is kept for both tasks.
    assert masks.tolist() == [[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]


def test_direction_worked_example():
    direction, _ = graddrop_direction(SIGNALS.unsqueeze(1), SIGNALS, UNIFORM, leak=0.0)
    # Column sums of the kept entries: 1 + 2, 1, -1 and 0.
    assert direction.flatten().tolist() == [3.0, 1.0, -1.0, 0.0]


def test_leak_passes_share_of_dropped():
    direction, _ = graddrop_direction(SIGNALS.unsqueeze(1), SIGNALS, UNIFORM, leak=0.5)
    # Task 0 loses -2 and 3, which pass at half: 0.5 * -2 + 1 = 0 and 0.5 * 3 - 1 = 0.5.
    assert direction.flatten().tolist() == [3.0, 0.0, 0.5, 0.0]


def test_leak_one_gives_plain_sum():
    direction, _ = graddrop_direction(SIGNALS.unsqueeze(1), SIGNALS, UNIFORM, leak=1.0)
    assert direction.flatten().tolist() == [3.0, -1.0, 2.0, 0.0]


def test_draw_equal_to_purity_keeps_negative():
    signals = torch.tensor([[-1.0, 0.5], [-2.0, 1.5]])
    # P = (0, 1). U = 0 equals P in the first column; the strict rule of the publication would drop both.
    masks = sign_masks(signals, positive_sign_purity(signals), torch.tensor([0.0, 0.99999994]))
    assert masks.tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_parameter_mode_worked_example_seed_0():
    torch.manual_seed(0)
    assert torch.rand(2).tolist() == SEED_0_DRAWS
    # G = [[1, -2], [-0.5, 1.5]]: P = (0.5 (1 + 0.5/1.5), 0.5 (1 - 0.5/3.5)) = (2/3, 3/7).
    # U = 0.496 < 2/3 keeps the positive 1; U = 0.768 >= 3/7 keeps the negative -2.
    assert parameter_direction([[1.0, -2.0], [-0.5, 1.5]], seed=0).tolist() == [1.0, -2.0]


def test_same_seed_same_direction():
    rows = torch.randn(3, 40, generator=torch.Generator().manual_seed(1)).tolist()
    assert parameter_direction(rows, seed=5).tolist() == parameter_direction(rows, seed=5).tolist()


def test_different_seeds_differ():
    rows = torch.randn(3, 40, generator=torch.Generator().manual_seed(1)).tolist()
    directions = {tuple(parameter_direction(rows, seed=seed).tolist()) for seed in range(4)}
    assert len(directions) > 1


@pytest.mark.parametrize("leak", [0.0, 0.3])
def test_parameter_mode_matches_torchjd(leak):
    gradients = torch.randn(3, 200, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    expected = TorchJDGradDrop(leak=torch.full((3,), leak))(gradients)
    assert parameter_direction(gradients.tolist(), seed=3, leak=leak).tolist() == pytest.approx(expected.tolist(), abs=1e-6)


def test_representation_mode_worked_example():
    # A batch of two examples with two entries each. The signal of task i is sum over the batch of sign(A) * g_i:
    # S_1 = (1 * 1 + 0 * 3, -1 * 1 + 1 * -1) = (1, -2) and S_2 = (1 * -2 + 0 * 1, -1 * 1 + 1 * 1) = (-2, 0).
    # P = ((1 + (-1) / 3) / 2, (1 + (-2) / 2) / 2) = (1/3, 0).
    # Column 0: U = 0.496 >= 1/3 keeps the negative S_2, so task 2's whole column (-2, 1) passes.
    # Column 1: U = 0.768 >= 0 keeps the negative S_1; S_2 = 0 is kept too: (1, -1) + (1, 1) = (2, 0).
    # Without the factor sign(A), S_1 would be (4, -2) and column 0 would keep task 1 instead.
    representation = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    task_gradients = torch.tensor([[[1.0, 1.0], [3.0, -1.0]], [[-2.0, 1.0], [1.0, 1.0]]])
    method = GradDrop(["a", "b"])
    torch.manual_seed(0)
    result, logged = method.combine(task_gradients.reshape(2, -1), representation_context(representation))
    assert result.tolist() == [-2.0, 2.0, 1.0, 0.0]
    assert logged == {"kept_fraction": 0.75}


def test_backward_through_representation():
    network = LinearHeads(heads=((1.0, 0.0), (-0.5, 1.0)))
    method = GradDrop(network.tasks)
    torch.manual_seed(0)
    method.backward(network.context())

    # A = W x = (2, 3) > 0, so S_k = h_k: S = ((1, 0), (-0.5, 1)) and P = (2/3, 1).
    # U = 0.496 < 2/3 keeps h_1's 1 and drops h_2's -0.5; column 1 keeps 1 and the zero signal.
    # The representation gradient (1, 1) reaches W as (1, 1) x^T.
    assert network.shared.weight.grad.flatten().tolist() == [1.0, 0.0, 1.0, 0.0]
    for head in network.heads:
        assert head.grad.tolist() == [2.0, 3.0]


def test_representation_is_default():
    assert GradDrop(["a", "b"]).gradients == "representation"


def test_zero_gradients_give_zero():
    assert parameter_direction([[0.0, 0.0], [0.0, 0.0]]).tolist() == [0.0, 0.0]


def test_one_zero_gradient_keeps_other():
    assert parameter_direction([[3.0, -4.0], [0.0, 0.0]]).tolist() == [3.0, -4.0]


def test_identical_gradients_add():
    assert parameter_direction([[1.0, -2.0], [1.0, -2.0]]).tolist() == [2.0, -4.0]


def test_opposite_gradients_keep_one_per_entry():
    outcomes = set()
    for seed in range(20):
        result = parameter_direction([[1.0, -2.0], [-1.0, 2.0]], seed=seed).tolist()
        assert result[0] in (1.0, -1.0)
        assert result[1] in (-2.0, 2.0)
        outcomes.add(tuple(result))
    assert len(outcomes) == 4


def test_tiny_gradients_scale_result():
    rows = [[1.0, -2.0], [-0.5, 1.5]]
    tiny = [[value * 1e-20 for value in row] for row in rows]
    result = parameter_direction(tiny, seed=0)
    assert result.tolist() == pytest.approx([1e-20, -2e-20])
    assert all(math.isfinite(value) for value in result.tolist())


def test_single_task_keeps_gradient():
    assert parameter_direction([[3.0, -4.0, 0.0]]).tolist() == [3.0, -4.0, 0.0]


def test_single_task_representation_keeps_gradient():
    # The second entry's signal cancels over the batch: 1 * 2 + 1 * -2 = 0. A zero signal is kept.
    representation = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    gradients = torch.tensor([[3.0, 2.0, -1.0, -2.0]])
    result, logged = GradDrop(["only"]).combine(gradients, representation_context(representation))
    assert result.tolist() == [3.0, 2.0, -1.0, -2.0]
    assert logged == {"kept_fraction": 1.0}


@pytest.mark.parametrize("leak", [-0.1, 1.5, float("nan")])
def test_invalid_leak_raises(leak):
    with pytest.raises(MtbenchError, match="leak"):
        GradDrop(["a", "b"], leak=leak)


def test_state_round_trip_gives_same_direction():
    method = GradDrop(["a", "b"], leak=0.2, gradients="parameters")
    restored = GradDrop(["a", "b"], leak=0.2, gradients="parameters")
    restored.load_state_dict(method.state_dict())
    gradients = torch.randn(2, 30, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(9)
    first, _ = method.combine(gradients, context=None)
    torch.manual_seed(9)
    second, _ = restored.combine(gradients, context=None)
    assert method.state_dict() == {}
    assert first.tolist() == second.tolist()


def test_registered_with_defaults():
    assert get_method("graddrop") is GradDrop
    assert GradDrop(["a", "b"]).config() == {"leak": 0.0, "gradients": "representation"}

import pytest
import torch
from torch import nn

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method
from mtbench.methods.pcgrad import PCGrad, pcgrad_weights


class LinearHeads:
    """A shared layer W (2 x 2) on the input x = (1, 0) and linear heads: L_k = h_k . (W x).

    The task gradient at W is h_k x^T, flattened (h_k0, 0, h_k1, 0), and the
    gradient at the representation W x is h_k. Each head's gradient is W x,
    which is (2, 3) for the default W.
    """

    def __init__(self, heads, weight=((2.0, 0.0), (3.0, 0.0))) -> None:
        self.shared = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.shared.weight.copy_(torch.tensor(weight))
        self.heads = [nn.Parameter(torch.tensor(head)) for head in heads]
        self.tasks = [f"task{index}" for index in range(len(heads))]

    def context(self) -> StepContext:
        self.shared.weight.grad = None
        for head in self.heads:
            head.grad = None
        representation = self.shared(torch.tensor([[1.0, 0.0]]))
        losses = {task: representation[0] @ head for task, head in zip(self.tasks, self.heads)}
        parameters = [self.shared.weight]
        task_parameters = {task: [head] for task, head in zip(self.tasks, self.heads)}
        return StepContext(losses, parameters, parameters, representation, step=0, epoch=1, task_parameters=task_parameters)


def direction(rows, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    gradients = torch.tensor(rows)
    weights = pcgrad_weights(gradients)
    return (weights @ gradients).tolist()


def test_worked_example_sums_projections():
    method = PCGrad(["a", "b"])
    gradients = torch.tensor([[1.0, 0.0], [-0.5, 1.0]])
    result, logged = method.combine(gradients, context=None)
    # g1 . g2 = -0.5. g1^PC = (1, 0) + (0.5 / 1.25) (-0.5, 1) = (0.8, 0.4).
    # g2^PC = (-0.5, 1) + (0.5 / 1) (1, 0) = (0, 1). The sum is (0.8, 1.4); the mean would be (0.4, 0.7).
    assert result.tolist() == pytest.approx([0.8, 1.4])
    # Weights of the original rows: g1 + 0.4 g2 and 0.5 g1 + g2.
    assert logged == pytest.approx({"weight/a": 1.5, "weight/b": 1.4})


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_two_tasks_ignore_order(seed):
    assert direction([[1.0, 0.0], [-0.5, 1.0]], seed) == pytest.approx([0.8, 1.4])


# g1 = (1, 0), g2 = (-1, 1), g3 = (-1, -2): every pair conflicts, and the order matters for every task.
THREE_TASKS = [[1.0, 0.0], [-1.0, 1.0], [-1.0, -2.0]]
# Task 1, order (2, 3): (1, 0) + (1/2)(-1, 1) = (0.5, 0.5), then (0.5, 0.5) + (1.5/5)(-1, -2) = (0.2, -0.1).
# Task 1, order (3, 2): (1, 0) + (1/5)(-1, -2) = (0.8, -0.4), then (0.8, -0.4) + (1.2/2)(-1, 1) = (0.2, 0.2).
# Task 2, order (1, 3): (0, 1), then (0, 1) + (2/5)(-1, -2) = (-0.4, 0.2). Order (3, 1): (-1.2, 0.6), then (0, 0.6).
# Task 3, order (1, 2): (0, -2), then (0, -2) + (2/2)(-1, 1) = (-1, -1). Order (2, 1): (-1.5, -1.5), then (0, -1.5).
TASK_OUTCOMES = [[(0.2, -0.1), (0.2, 0.2)], [(-0.4, 0.2), (0.0, 0.6)], [(-1.0, -1.0), (0.0, -1.5)]]


def three_task_sums() -> set[tuple[float, float]]:
    sums = set()
    for first in TASK_OUTCOMES[0]:
        for second in TASK_OUTCOMES[1]:
            for third in TASK_OUTCOMES[2]:
                sums.add((round(first[0] + second[0] + third[0], 4), round(first[1] + second[1] + third[1], 4)))
    return sums


def test_three_tasks_same_seed_same_result():
    for seed in range(5):
        assert direction(THREE_TASKS, seed) == direction(THREE_TASKS, seed)


def test_three_tasks_order_drawn_per_task():
    observed = {tuple(round(value, 4) for value in direction(THREE_TASKS, seed)) for seed in range(100)}
    # One order shared by all tasks allows at most 3! = 6 sums; independent orders per task give all 8.
    assert len(three_task_sums()) == 8
    assert observed == three_task_sums()


def test_backward_projects_shared_gradients_only():
    network = LinearHeads(heads=((1.0, 0.0), (-0.5, 1.0)))
    method = PCGrad(network.tasks)
    logged = method.backward(network.context())

    # Task gradients at W are (1, 0, 0, 0) and (-0.5, 0, 1, 0), as in the worked example.
    assert network.shared.weight.grad.flatten().tolist() == pytest.approx([0.8, 0.0, 1.4, 0.0])
    for head in network.heads:
        assert head.grad.tolist() == [2.0, 3.0]
    assert logged == pytest.approx({"weight/task0": 1.5, "weight/task1": 1.4})


def test_backward_caches_last_shared_gradients():
    network = LinearHeads(heads=((1.0, 0.0), (-0.5, 1.0)))
    context = network.context()
    PCGrad(network.tasks).backward(context)
    assert context.cached_task_gradients().tolist() == [[1.0, 0.0, 0.0, 0.0], [-0.5, 0.0, 1.0, 0.0]]


def test_representation_mode_rejected():
    with pytest.raises(MtbenchError, match="'pcgrad' cannot use gradients with respect to the shared representation"):
        PCGrad(["a", "b"], gradients="representation")


def test_zero_gradients_give_zero():
    assert direction([[0.0, 0.0], [0.0, 0.0]]) == [0.0, 0.0]


def test_one_zero_gradient_keeps_other():
    assert direction([[3.0, 4.0], [0.0, 0.0]]) == [3.0, 4.0]


def test_identical_gradients_add():
    assert direction([[1.0, 2.0], [1.0, 2.0]]) == [2.0, 4.0]


def test_opposite_gradients_cancel():
    assert direction([[1.0, 2.0], [-1.0, -2.0]]) == [0.0, 0.0]


def test_tiny_gradients_scale_result():
    result = direction([[1e-20, 0.0], [-0.5e-20, 1e-20]])
    assert result == pytest.approx([0.8e-20, 1.4e-20], rel=1e-5)


def test_gradient_too_small_to_square_counts_as_zero():
    # Its squared norm, 2e-46, underflows in float32 while its dot product with g1, -1e-23, does not;
    # projecting g1 on it would divide by zero.
    torch.manual_seed(0)
    gradients = torch.tensor([[1.0, 0.0], [-1e-23, 1e-23]])
    weights = pcgrad_weights(gradients)
    assert weights.tolist() == [1.0, 1.0]


def test_single_task_keeps_gradient():
    method = PCGrad(["only"])
    result, logged = method.combine(torch.tensor([[3.0, -4.0]]), context=None)
    assert result.tolist() == [3.0, -4.0]
    assert logged == {"weight/only": 1.0}


def test_state_round_trip_gives_same_direction():
    method = PCGrad(["a", "b", "c"])
    assert method.state_dict() == {}
    restored = PCGrad(["a", "b", "c"])
    restored.load_state_dict(method.state_dict())
    torch.manual_seed(7)
    first, _ = method.combine(torch.tensor(THREE_TASKS), context=None)
    torch.manual_seed(7)
    second, _ = restored.combine(torch.tensor(THREE_TASKS), context=None)
    assert first.tolist() == second.tolist()


def test_registered_with_defaults():
    assert get_method("pcgrad") is PCGrad
    assert PCGrad(["a", "b"]).config() == {"gradients": "parameters"}

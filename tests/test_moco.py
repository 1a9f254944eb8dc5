import math

import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method
from mtbench.methods._simplex import project_onto_simplex
from mtbench.methods.moco import MoCo
from test_cagrad import LinearTasks


def combine(method, gradients, context=None):
    return method.combine(torch.tensor(gradients, dtype=torch.float32), context)


def decaying(**arguments):
    # beta_sigma = gamma_sigma = 1: beta_t = 0.5 / t and gamma_t = 0.1 / t.
    return MoCo(["a", "b"], beta=0.5, beta_sigma=1.0, gamma=0.1, gamma_sigma=1.0, **arguments)


@pytest.mark.parametrize(
    "point, projection",
    [
        ([0.45, 0.3], [0.575, 0.425]),
        ([0.9, -0.3], [1.0, 0.0]),
        ([0.5, 0.4, -0.5], [0.55, 0.45, 0.0]),
        ([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]),
        ([7.0], [1.0]),
    ],
)
def test_simplex_projection(point, projection):
    # (0.45, 0.3): the threshold -0.125 lifts both entries by 0.125. (0.5, 0.4, -0.5): with the two largest
    # entries the threshold is (0.9 - 1) / 2 = -0.05, and -0.5 + 0.05 < 0 leaves the third at 0.
    assert project_onto_simplex(torch.tensor(point, dtype=torch.float64)).tolist() == pytest.approx(projection, abs=1e-12)


def test_two_steps_by_hand():
    method = decaying()

    # Step 1: y = 0 - 0.5 (0 - h) = ((1, 0), (0, 2)); Y^T Y = diag(1, 4);
    # lambda - 0.1 diag(1, 4) (0.5, 0.5) = (0.45, 0.3), projected to (0.575, 0.425); d = (0.575, 0.85).
    direction, logged = combine(method, [[2.0, 0.0], [0.0, 4.0]])
    assert logged == pytest.approx({"weight/a": 0.575, "weight/b": 0.425}, abs=1e-6)
    assert direction.tolist() == pytest.approx([0.575, 0.85], abs=1e-6)

    # Step 2: beta_2 = 0.25, gamma_2 = 0.05. y = 0.75 y + 0.25 h = ((2.25, 0), (0, 2)); Y^T Y = diag(5.0625, 4);
    # lambda - 0.05 (5.0625 * 0.575, 4 * 0.425) = (0.429453125, 0.34), whose sum 0.769453125 is lifted
    # by 0.1152734375 each to (0.5447265625, 0.4552734375); d = (2.25 * 0.5447265625, 2 * 0.4552734375).
    direction, logged = combine(method, [[6.0, 0.0], [0.0, 2.0]])
    assert torch.allclose(method.tracked_gradients, torch.tensor([[2.25, 0.0], [0.0, 2.0]]))
    assert logged == pytest.approx({"weight/a": 0.5447265625, "weight/b": 0.4552734375}, abs=1e-6)
    assert direction.tolist() == pytest.approx([1.225634765625, 0.910546875], abs=1e-6)


def test_rho_regularises_second_step():
    # Step 1 is the same for any rho, because rho I shifts a uniform lambda uniformly.
    # Step 2 with rho = 1: (Y^T Y + I) lambda = (6.0625 * 0.575, 5 * 0.425) = (3.4859375, 2.125);
    # lambda - 0.05 of it = (0.400703125, 0.31875), lifted by 0.1402734375 to (0.5409765625, 0.4590234375).
    method = decaying(rho=1.0)
    combine(method, [[2.0, 0.0], [0.0, 4.0]])
    direction, logged = combine(method, [[6.0, 0.0], [0.0, 2.0]])
    assert logged == pytest.approx({"weight/a": 0.5409765625, "weight/b": 0.4590234375}, abs=1e-6)
    assert direction.tolist() == pytest.approx([1.217197265625, 0.918046875], abs=1e-6)


def test_first_step_with_published_defaults():
    # At t = 1 the decay exponents do not matter: beta_1 = 0.5 and gamma_1 = 0.1, as in the example above.
    direction, logged = combine(MoCo(["a", "b"]), [[2.0, 0.0], [0.0, 4.0]])
    assert direction.tolist() == pytest.approx([0.575, 0.85], abs=1e-6)
    assert logged["weight/a"] == pytest.approx(0.575, abs=1e-6)


def test_second_step_uses_square_root_decay():
    # Defaults: beta_2 = 0.5 / sqrt(2), so y_a = (1 - beta_2) (1, 0) + beta_2 (6, 0).
    method = MoCo(["a", "b"])
    combine(method, [[2.0, 0.0], [0.0, 4.0]])
    combine(method, [[6.0, 0.0], [0.0, 2.0]])
    beta_2 = 0.5 / math.sqrt(2.0)
    assert method.tracked_gradients[0, 0].item() == pytest.approx(1.0 + 5.0 * beta_2, abs=1e-6)
    assert method.tracked_gradients[1, 1].item() == pytest.approx(2.0, abs=1e-6)


def test_normalized_gradients_use_loss_scaled_unit_vectors():
    # h = (2 (0.6, 0.8), 3 (0, 1)) and y = h / 2 = ((0.6, 0.8), (0, 1.5)); Y^T Y = [[1, 1.2], [1.2, 2.25]];
    # lambda - 0.1 (1.1, 1.725) = (0.39, 0.3275), lifted by 0.14125 to (0.53125, 0.46875);
    # d = 0.53125 (0.6, 0.8) + 0.46875 (0, 1.5) = (0.31875, 1.128125).
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(3.0)}
    context = StepContext(losses, [], [], torch.zeros(1), step=0, epoch=1)
    direction, logged = combine(MoCo(["a", "b"], normalize_gradients=True), [[3.0, 4.0], [0.0, 10.0]], context)
    assert logged == pytest.approx({"weight/a": 0.53125, "weight/b": 0.46875}, abs=1e-6)
    assert direction.tolist() == pytest.approx([0.31875, 1.128125], abs=1e-6)


def test_zero_gradients_keep_weights():
    method = MoCo(["a", "b"])
    direction, logged = combine(method, [[0.0, 0.0], [0.0, 0.0]])
    assert direction.tolist() == [0.0, 0.0]
    assert logged == pytest.approx({"weight/a": 0.5, "weight/b": 0.5})


def test_opposite_gradients_give_zero():
    # y = ((0.5, 0), (-0.5, 0)) and Y^T Y (0.5, 0.5) = 0, so lambda stays uniform and d = 0.
    direction, logged = combine(MoCo(["a", "b"]), [[1.0, 0.0], [-1.0, 0.0]])
    assert direction.tolist() == [0.0, 0.0]
    assert logged == pytest.approx({"weight/a": 0.5, "weight/b": 0.5})


def test_identical_gradients_keep_uniform_weights():
    # Y^T Y lambda = (6.25, 6.25) shifts both weights equally, which the projection undoes.
    direction, logged = combine(MoCo(["a", "b"]), [[3.0, 4.0], [3.0, 4.0]])
    assert direction.tolist() == pytest.approx([1.5, 2.0], abs=1e-6)
    assert logged == pytest.approx({"weight/a": 0.5, "weight/b": 0.5})


def test_tiny_gradients():
    direction, logged = combine(MoCo(["a", "b"]), [[2e-20, 0.0], [0.0, 4e-20]])
    assert direction.tolist() == pytest.approx([0.5e-20, 1e-20], rel=1e-5)
    assert logged["weight/a"] == pytest.approx(0.5, abs=1e-12)


def test_huge_gradients_push_weights_to_vertex():
    # The step on lambda is about 1e39 for task a and 1e19 for task b, so the projection puts all weight on b.
    direction, logged = combine(MoCo(["a", "b"]), [[1e20, 0.0], [0.0, 1e10]])
    assert logged == {"weight/a": 0.0, "weight/b": 1.0}
    assert direction.tolist() == pytest.approx([0.0, 0.5e10], rel=1e-6)


def test_single_task_follows_tracked_gradient():
    direction, logged = combine(MoCo(["a"]), [[3.0, 4.0]])
    assert logged == {"weight/a": 1.0}
    assert direction.tolist() == pytest.approx([1.5, 2.0])


def test_backward_writes_direction_and_decoder_gradients():
    tasks = LinearTasks([[2.0, 0.0], [0.0, 4.0]])
    method = MoCo(tasks.tasks)
    method.backward(tasks.context([1.0, -1.0]))
    assert tasks.shared.weight.grad.flatten().tolist() == pytest.approx([0.575, 0.85], abs=1e-6)
    for head in tasks.heads:
        assert head.grad.tolist() == [1.0, -1.0]


def test_state_round_trip_gives_same_next_direction():
    method = decaying()
    combine(method, [[2.0, 0.0], [0.0, 4.0]])
    state = method.state_dict()
    assert set(state) == {"tracked_gradients", "task_weights", "step"}

    restored = decaying()
    restored.load_state_dict(state)
    expected, _ = combine(method, [[6.0, 0.0], [0.0, 2.0]])
    direction, logged = combine(restored, [[6.0, 0.0], [0.0, 2.0]])
    assert torch.equal(direction, expected)
    assert logged["weight/a"] == pytest.approx(0.5447265625, abs=1e-6)


def test_state_of_another_model_raises():
    method = MoCo(["a", "b"])
    combine(method, [[3.0, 0.0], [0.0, 1.0]])
    with pytest.raises(MtbenchError, match="belongs to another model"):
        combine(method, [[3.0], [1.0]])


def test_representation_mode_rejected():
    with pytest.raises(MtbenchError, match="tracks each task's gradient across training steps"):
        MoCo(["a", "b"], gradients="representation")


@pytest.mark.parametrize(
    "arguments, name",
    [
        ({"beta": 0.0}, "beta"),
        ({"beta": 1.5}, "beta"),
        ({"beta_sigma": -0.5}, "beta_sigma"),
        ({"gamma": -0.1}, "gamma"),
        ({"gamma_sigma": float("nan")}, "gamma_sigma"),
        ({"rho": -1.0}, "rho"),
        ({"normalize_gradients": "yes"}, "normalize_gradients"),
    ],
)
def test_invalid_hyperparameters_raise(arguments, name):
    with pytest.raises(MtbenchError, match=f"Invalid {name}="):
        MoCo(["a", "b"], **arguments)


def test_registered_with_published_defaults():
    assert get_method("moco") is MoCo
    assert MoCo(["a", "b"]).config() == {
        "beta": 0.5,
        "beta_sigma": 0.5,
        "gamma": 0.1,
        "gamma_sigma": 0.5,
        "rho": 0.0,
        "normalize_gradients": False,
        "gradients": "parameters",
    }

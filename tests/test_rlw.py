
import pytest
import torch

from mtbench.methods import StepContext, get_method, list_methods
from mtbench.methods.rlw import RandomLossWeighting, random_loss_weights
from mtbench.train.run import run_configuration
from test_trainer import QUIET, make_config, read_records

TASKS = ["left", "right", "depth"]


def _context(values: tuple[float, ...]) -> StepContext:
    """A step context with only task losses, as leaves so their weights are readable from .grad."""
    losses = {task: torch.tensor(value, requires_grad=True) for task, value in zip(TASKS, values)}
    return StepContext(losses, [], [], torch.zeros(1), step=0, epoch=1)


def test_weights_positive_and_sum_to_one():
    torch.manual_seed(0)
    for _ in range(50):
        weights = random_loss_weights(3)
        assert (weights > 0).all()
        assert weights.sum().item() == pytest.approx(1.0, rel=1e-6)


def test_weights_are_softmax_of_standard_normal_draw():
    torch.manual_seed(7)
    z = torch.randn(3)
    torch.manual_seed(7)
    assert torch.equal(random_loss_weights(3), torch.softmax(z, dim=0))


def test_same_seed_same_weights():
    torch.manual_seed(11)
    first = [random_loss_weights(3) for _ in range(3)]
    torch.manual_seed(11)
    second = [random_loss_weights(3) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_weights_change_between_steps():
    torch.manual_seed(0)
    assert not torch.equal(random_loss_weights(3), random_loss_weights(3))


def test_loss_is_weighted_sum_with_detached_weights():
    method = RandomLossWeighting(TASKS)
    torch.manual_seed(5)
    context = _context((1.0, 2.0, 4.0))
    total, logged = method.loss(context)

    torch.manual_seed(5)
    weights = random_loss_weights(3).tolist()
    assert [logged[f"weight/{task}"] for task in TASKS] == weights
    assert total.item() == pytest.approx(1.0 * weights[0] + 2.0 * weights[1] + 4.0 * weights[2], rel=1e-6)

    total.backward()
    for task, weight in zip(TASKS, weights):
        assert context.task_losses[task].grad.item() == pytest.approx(weight, rel=1e-6)


def test_logged_values_are_floats():
    _, logged = RandomLossWeighting(TASKS).loss(_context((1.0, 1.0, 1.0)))
    assert set(logged) == {"weight/left", "weight/right", "weight/depth"}
    assert all(type(value) is float for value in logged.values())


def test_single_task_weight_is_one():
    _, logged = RandomLossWeighting(["left"]).loss(StepContext({"left": torch.tensor(3.0)}, [], [], torch.zeros(1), 0, 1))
    assert logged == {"weight/left": 1.0}


def test_no_state():
    method = RandomLossWeighting(TASKS)
    assert list(method.parameters()) == []
    assert method.state_dict() == {}
    assert method.config() == {}


def test_registered_as_rlw():
    assert get_method("rlw") is RandomLossWeighting
    assert "rlw" in list_methods()


def test_rlw_run_writes_record_and_repeats(tiny_data_root, tmp_path):
    first = run_configuration(make_config(tiny_data_root, tmp_path / "a", method="rlw", epochs=1), [0], QUIET)[0]
    second = run_configuration(make_config(tiny_data_root, tmp_path / "b", method="rlw", epochs=1), [0], QUIET)[0]

    assert read_records(tmp_path / "a") == [first]
    assert first["status"] == "finished"
    assert first["method_module"] == "mtbench.methods.rlw"
    train = first["history"][0]["train"]
    assert set(train) == {"weight/left", "weight/right"}
    assert train["weight/left"] + train["weight/right"] == pytest.approx(1.0, rel=1e-5)
    assert first["history"][0]["train_loss"] == second["history"][0]["train_loss"]
    assert first["test"] == second["test"]

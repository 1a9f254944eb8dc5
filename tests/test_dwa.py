import inspect
import io
import math

import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method, list_methods
from mtbench.methods.dwa import DynamicWeightAverage, dwa_weights
from mtbench.train.run import run_configuration
from test_trainer import QUIET, make_config, read_records

TASKS = ["left", "right"]

# Hand computation for L(t-2) = (2, 1), L(t-1) = (1, 1), T = 2: r = (0.5, 1),
# w = 2 exp(0.25) / (exp(0.25) + exp(0.5)) and 2 exp(0.5) / (exp(0.25) + exp(0.5)).
HAND_WEIGHTS = (0.8756, 1.1244)


def _context(left: float, right: float, epoch: int) -> StepContext:
    """A step context with only task losses, as leaves so their weights are readable from .grad."""
    losses = {"left": torch.tensor(left, requires_grad=True), "right": torch.tensor(right, requires_grad=True)}
    return StepContext(losses, [], [], torch.zeros(1), step=0, epoch=epoch)


def _run_epochs(method: DynamicWeightAverage, epochs: list[list[tuple[float, float]]]) -> list[dict[str, float]]:
    """Feed per-step losses epoch by epoch (epochs numbered from 1); return the logged values of every step."""
    logged = []
    for epoch, steps in enumerate(epochs, start=1):
        for left, right in steps:
            _, values = method.loss(_context(left, right, epoch))
            logged.append(values)
    return logged


def test_function_hand_example():
    weights = dwa_weights(torch.tensor([2.0, 1.0]), torch.tensor([1.0, 1.0]), 2.0)
    assert weights.tolist() == pytest.approx(HAND_WEIGHTS, abs=5e-5)
    assert weights.tolist()[0] == pytest.approx(2 * math.exp(0.25) / (math.exp(0.25) + math.exp(0.5)), rel=1e-6)


def test_function_sums_to_task_count():
    weights = dwa_weights(torch.tensor([3.0, 1.0, 0.5]), torch.tensor([1.0, 2.0, 0.4]), 2.0)
    assert weights.sum().item() == pytest.approx(3.0, rel=1e-6)
    assert (weights > 0).all()


def test_equal_rates_give_equal_weights():
    weights = dwa_weights(torch.tensor([4.0, 2.0]), torch.tensor([2.0, 1.0]), 2.0)
    assert weights.tolist() == pytest.approx([1.0, 1.0])


def test_zero_older_mean_counts_as_unchanged():
    # r = (1, 0.5): the zero denominator gives rate 1, not NaN or infinity.
    weights = dwa_weights(torch.tensor([0.0, 2.0]), torch.tensor([0.0, 1.0]), 2.0)
    assert torch.isfinite(weights).all()
    expected_left = 2 * math.exp(0.5) / (math.exp(0.5) + math.exp(0.25))
    assert weights.tolist() == pytest.approx([expected_left, 2 - expected_left], rel=1e-6)


def test_weights_are_one_in_epochs_one_and_two():
    method = DynamicWeightAverage(TASKS)
    logged = _run_epochs(method, [[(2.0, 1.0), (5.0, 3.0)], [(1.0, 1.0), (3.0, 0.5)]])
    assert logged == [{"weight/left": 1.0, "weight/right": 1.0}] * 4


def test_epoch_three_uses_epoch_means():
    # Epoch means: epoch 1 = (2, 1) from steps (3, 0.5) and (1, 1.5); epoch 2 = (1, 1) from (1.5, 2) and (0.5, 0).
    method = DynamicWeightAverage(TASKS)
    _run_epochs(method, [[(3.0, 0.5), (1.0, 1.5)], [(1.5, 2.0), (0.5, 0.0)]])
    context = _context(10.0, 20.0, epoch=3)
    total, logged = method.loss(context)
    assert [logged["weight/left"], logged["weight/right"]] == pytest.approx(HAND_WEIGHTS, abs=5e-5)
    assert logged["weight/left"] + logged["weight/right"] == pytest.approx(2.0)

    total.backward()
    assert context.task_losses["left"].grad.item() == pytest.approx(logged["weight/left"], rel=1e-6)
    assert context.task_losses["right"].grad.item() == pytest.approx(logged["weight/right"], rel=1e-6)
    assert total.item() == pytest.approx(10.0 * logged["weight/left"] + 20.0 * logged["weight/right"], rel=1e-6)


def test_weights_constant_within_an_epoch():
    method = DynamicWeightAverage(TASKS)
    _run_epochs(method, [[(2.0, 1.0)], [(1.0, 1.0)]])
    _, first = method.loss(_context(100.0, 0.1, epoch=3))
    _, second = method.loss(_context(0.1, 100.0, epoch=3))
    assert first == second


def test_epoch_four_uses_epochs_two_and_three():
    # L(2) = (1, 1), L(3) = (1, 2): r = (1, 2), w = 2 softmax((0.5, 1)).
    method = DynamicWeightAverage(TASKS)
    _run_epochs(method, [[(9.0, 9.0)], [(1.0, 1.0)], [(1.0, 2.0)]])
    _, logged = method.loss(_context(1.0, 1.0, epoch=4))
    expected_left = 2 * math.exp(0.5) / (math.exp(0.5) + math.exp(1.0))
    assert logged["weight/left"] == pytest.approx(expected_left, rel=1e-6)
    assert logged["weight/right"] == pytest.approx(2 - expected_left, rel=1e-6)


def test_zero_loss_epochs_stay_finite():
    method = DynamicWeightAverage(TASKS)
    _run_epochs(method, [[(0.0, 1.0)], [(0.0, 1.0)]])
    total, logged = method.loss(_context(0.0, 1.0, epoch=3))
    assert math.isfinite(total.item())
    assert [logged["weight/left"], logged["weight/right"]] == pytest.approx([1.0, 1.0])


def test_temperature_changes_weights():
    # T = 0.5: r / T = (1, 2), w = 2 softmax((1, 2)).
    method = DynamicWeightAverage(TASKS, temperature=0.5)
    _run_epochs(method, [[(2.0, 1.0)], [(1.0, 1.0)]])
    _, logged = method.loss(_context(1.0, 1.0, epoch=3))
    assert logged["weight/left"] == pytest.approx(2 * math.exp(1) / (math.exp(1) + math.exp(2)), rel=1e-6)


def test_logged_values_are_floats():
    method = DynamicWeightAverage(TASKS)
    _, logged = method.loss(_context(1.0, 1.0, epoch=1))
    assert all(type(value) is float for value in logged.values())


def test_state_dict_round_trip_keeps_history():
    source = DynamicWeightAverage(TASKS)
    _run_epochs(source, [[(2.0, 1.0)], [(1.0, 1.0)]])
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)

    target = DynamicWeightAverage(TASKS)
    target.load_state_dict(torch.load(buffer, weights_only=True))
    _, logged = target.loss(_context(1.0, 1.0, epoch=3))
    assert [logged["weight/left"], logged["weight/right"]] == pytest.approx(HAND_WEIGHTS, abs=5e-5)
    assert list(target.parameters()) == []


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_invalid_temperature_rejected(value):
    with pytest.raises(MtbenchError, match="temperature"):
        DynamicWeightAverage(TASKS, temperature=value)


def test_defaults_match_hyperparameters():
    signature = inspect.signature(DynamicWeightAverage.__init__)
    for hyperparameter in DynamicWeightAverage.hyperparameters:
        assert signature.parameters[hyperparameter.keyword].default == hyperparameter.default
    assert DynamicWeightAverage(TASKS).config() == {"temperature": 2.0}


def test_registered_as_dwa():
    assert get_method("dwa") is DynamicWeightAverage
    assert "dwa" in list_methods()


def test_dwa_run_writes_record(tiny_data_root, tmp_path):
    config = make_config(tiny_data_root, tmp_path, method="dwa", method_config={"temperature": 2.0}, epochs=3)
    (record,) = run_configuration(config, [0], QUIET)

    assert read_records(tmp_path) == [record]
    assert record["status"] == "finished"
    assert record["method_module"] == "mtbench.methods.dwa"
    weights = [entry["train"] for entry in record["history"]]
    assert weights[0] == weights[1] == {"weight/left": 1.0, "weight/right": 1.0}
    assert weights[2]["weight/left"] + weights[2]["weight/right"] == pytest.approx(2.0, rel=1e-5)
    assert weights[2]["weight/left"] != 1.0

    checkpoint = tmp_path / "runs" / "multidigitmnist" / record["run_id"] / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)["method"]
    assert int(state["finished_epochs"]) == 2
    assert int(state["current_epoch"]) == 3

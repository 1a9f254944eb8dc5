import inspect
import math

import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method, list_methods
from mtbench.methods.gls import DEFAULT_EPSILON
from mtbench.methods.log_losses import LogLosses, log_loss_sum
from mtbench.train.run import run_configuration
from test_trainer import QUIET, make_config, read_records


def _context(losses: dict[str, torch.Tensor]) -> StepContext:
    """Build a step context with only task losses, because the method reads nothing else."""
    return StepContext(losses, [], [], torch.zeros(1), step=0, epoch=1)


def _leaves(*values: float) -> dict[str, torch.Tensor]:
    """Build task losses as leaves, so each task's effective weight is readable from .grad."""
    return {f"task{index}": torch.tensor(value, requires_grad=True) for index, value in enumerate(values)}


def test_sum_of_logs_by_hand():
    # log 1 + log e
    total, logged = LogLosses(["task0", "task1"]).loss(_context(_leaves(1.0, math.e)))
    assert total.item() == pytest.approx(1.0, rel=1e-6)
    assert logged == {}


def test_gradient_is_inverse_loss():
    losses = _leaves(1.0, 4.0, 0.5)
    total, _ = LogLosses(list(losses)).loss(_context(losses))
    total.backward()
    assert [loss.grad.item() for loss in losses.values()] == pytest.approx([1.0, 0.25, 2.0], rel=1e-6)


def test_small_losses_give_negative_total():
    # log 0.1 + log 0.1
    assert log_loss_sum(torch.tensor([0.1, 0.1])).item() == pytest.approx(2 * math.log(0.1), rel=1e-6)


def _model_gradient(scale: float, method_name: str) -> list[torch.Tensor]:
    """Return the gradient on a tiny linear model's parameters when task 'right' is multiplied by ``scale``."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    inputs = torch.randn(5, 3)
    targets = torch.randn(5, 2)
    errors = (model(inputs) - targets).pow(2).mean(dim=0)
    losses = {"left": errors[0], "right": scale * errors[1]}
    total, _ = get_method(method_name)(list(losses)).loss(_context(losses))
    total.backward()
    return [parameter.grad.clone() for parameter in model.parameters()]


def test_rescaling_a_task_leaves_model_gradient_unchanged():
    for original, rescaled in zip(_model_gradient(1.0, "log-losses"), _model_gradient(10.0, "log-losses")):
        torch.testing.assert_close(rescaled, original, rtol=1e-5, atol=1e-7)


def test_rescaling_changes_the_plain_sum():
    # The same check on the equal-weight sum fails, so the test above can tell the difference.
    original, rescaled = _model_gradient(1.0, "equal"), _model_gradient(10.0, "equal")
    assert not torch.allclose(original[0], rescaled[0], rtol=1e-3)


@pytest.mark.parametrize("bad", [0.0, -2.0])
def test_zero_or_negative_loss_is_clamped(bad):
    # log 1e-4 + log 1. The clamped loss passes no gradient and the other keeps 1 / L.
    losses = _leaves(bad, 1.0)
    total, _ = LogLosses(list(losses), epsilon=1e-4).loss(_context(losses))
    total.backward()
    assert total.item() == pytest.approx(math.log(1e-4), rel=1e-6)
    assert losses["task0"].grad.item() == 0.0
    assert losses["task1"].grad.item() == pytest.approx(1.0, rel=1e-6)


def test_zero_loss_gives_finite_gradients_on_a_model():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    outputs = model(torch.randn(4, 3))
    losses = {"exact": (outputs[:, 0] * 0.0).pow(2).mean(), "other": outputs[:, 1].pow(2).mean() + 1.0}
    total, _ = LogLosses(list(losses)).loss(_context(losses))
    total.backward()
    assert math.isfinite(total.item())
    assert all(torch.isfinite(parameter.grad).all() for parameter in model.parameters())


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_invalid_epsilon_rejected(value):
    with pytest.raises(MtbenchError, match="'log-losses'"):
        LogLosses(["task0"], epsilon=value)


def test_defaults_match_hyperparameters():
    signature = inspect.signature(LogLosses.__init__)
    for hyperparameter in LogLosses.hyperparameters:
        assert signature.parameters[hyperparameter.keyword].default == hyperparameter.default
    assert LogLosses(["task0"]).config() == {"epsilon": DEFAULT_EPSILON}


def test_registered_as_log_losses():
    assert get_method("log-losses") is LogLosses
    assert "log-losses" in list_methods()
    assert list(LogLosses(["task0"]).parameters()) == []


def test_log_losses_run_writes_record(tiny_data_root, tmp_path):
    config = make_config(tiny_data_root, tmp_path, method="log-losses", method_config={"epsilon": 1e-8}, epochs=1)
    (record,) = run_configuration(config, [0], QUIET)

    assert read_records(tmp_path) == [record]
    assert record["status"] == "finished"
    assert record["method_config"] == {"epsilon": 1e-8}
    assert record["method_module"] == "mtbench.methods.log_losses"
    assert all(math.isfinite(value) for value in record["history"][0]["train_loss"].values())

import inspect
import math

import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method, list_methods
from mtbench.methods.gls import DEFAULT_EPSILON, GeometricLossStrategy, geometric_mean_loss
from mtbench.train.run import run_configuration
from test_trainer import QUIET, make_config, read_records


def _context(losses: dict[str, torch.Tensor]) -> StepContext:
    """Build a step context with only task losses, because GLS reads nothing else."""
    return StepContext(losses, [], [], torch.zeros(1), step=0, epoch=1)


def _leaves(*values: float) -> dict[str, torch.Tensor]:
    """Build task losses as leaves, so each task's effective weight is readable from .grad."""
    return {f"task{index}": torch.tensor(value, requires_grad=True) for index, value in enumerate(values)}


def test_two_tasks_by_hand():
    # sqrt(1 * 4)
    total, logged = GeometricLossStrategy(["task0", "task1"]).loss(_context(_leaves(1.0, 4.0)))
    assert total.item() == pytest.approx(2.0, rel=1e-6)
    assert logged == {}


def test_three_tasks_by_hand():
    # (2 * 8 * 4)^(1/3) = 64^(1/3)
    total = geometric_mean_loss(torch.tensor([2.0, 8.0, 4.0]))
    assert total.item() == pytest.approx(4.0, rel=1e-6)


def test_gradients_by_hand():
    # dG/dL_k = G / (K L_k): 2 / (2 * 1) and 2 / (2 * 4)
    losses = _leaves(1.0, 4.0)
    total, _ = GeometricLossStrategy(list(losses)).loss(_context(losses))
    total.backward()
    assert losses["task0"].grad.item() == pytest.approx(1.0, rel=1e-6)
    assert losses["task1"].grad.item() == pytest.approx(0.25, rel=1e-6)


def test_single_task_is_the_loss():
    losses = _leaves(3.0)
    total, _ = GeometricLossStrategy(["task0"]).loss(_context(losses))
    total.backward()
    assert total.item() == pytest.approx(3.0, rel=1e-6)
    assert losses["task0"].grad.item() == pytest.approx(1.0, rel=1e-6)


def test_many_large_losses_do_not_overflow():
    # The product 1e30^20 overflows float32, but the mean of the logarithms does not.
    total = geometric_mean_loss(torch.full((20,), 1e30))
    assert total.item() == pytest.approx(1e30, rel=1e-4)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_zero_or_negative_loss_is_clamped(bad):
    # The bad loss becomes epsilon = 1e-4 and passes no gradient.
    # The other task gets G / (K L) = 0.01 / (2 * 1).
    losses = _leaves(bad, 1.0)
    total, _ = GeometricLossStrategy(list(losses), epsilon=1e-4).loss(_context(losses))
    total.backward()
    assert total.item() == pytest.approx(0.01, rel=1e-5)
    assert losses["task0"].grad.item() == 0.0
    assert losses["task1"].grad.item() == pytest.approx(0.005, rel=1e-5)


def test_zero_loss_gives_finite_gradients_on_a_model():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    inputs = torch.randn(4, 3)
    outputs = model(inputs)
    losses = {"exact": (outputs[:, 0] * 0.0).pow(2).mean(), "other": outputs[:, 1].pow(2).mean() + 1.0}
    total, _ = GeometricLossStrategy(list(losses)).loss(_context(losses))
    total.backward()
    assert math.isfinite(total.item())
    assert all(torch.isfinite(parameter.grad).all() for parameter in model.parameters())


@pytest.mark.parametrize("value", [0.0, -1e-8, math.nan, math.inf])
def test_invalid_epsilon_rejected(value):
    with pytest.raises(MtbenchError, match="epsilon"):
        GeometricLossStrategy(["task0"], epsilon=value)


def test_defaults_match_hyperparameters():
    signature = inspect.signature(GeometricLossStrategy.__init__)
    for hyperparameter in GeometricLossStrategy.hyperparameters:
        assert signature.parameters[hyperparameter.keyword].default == hyperparameter.default
    assert GeometricLossStrategy(["task0"]).config() == {"epsilon": DEFAULT_EPSILON}


def test_registered_as_gls():
    assert get_method("gls") is GeometricLossStrategy
    assert "gls" in list_methods()
    assert list(GeometricLossStrategy(["task0"]).parameters()) == []


def test_gls_run_writes_record(tiny_data_root, tmp_path):
    config = make_config(tiny_data_root, tmp_path, method="gls", method_config={"epsilon": 1e-8}, epochs=1)
    (record,) = run_configuration(config, [0], QUIET)

    assert read_records(tmp_path) == [record]
    assert record["status"] == "finished"
    assert record["method_config"] == {"epsilon": 1e-8}
    assert record["method_module"] == "mtbench.methods.gls"
    assert all(math.isfinite(value) for value in record["history"][0]["train_loss"].values())

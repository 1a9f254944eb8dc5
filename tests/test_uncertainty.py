import inspect
import io
import math

import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method, list_methods
from mtbench.methods.uncertainty import (
    LOG_VARIANCE_BOUND,
    UncertaintyWeighting,
    parse_classification_tasks,
    uncertainty_weighted_loss,
)
from mtbench.train.run import run_configuration
from test_trainer import QUIET, make_config, read_records

TASKS = ["semantic", "depth"]


def _context(losses: dict[str, torch.Tensor]) -> StepContext:
    """A step context with only task losses; uncertainty weighting reads nothing else."""
    return StepContext(losses, [], [], torch.zeros(1), step=0, epoch=1)


def _losses(semantic: float = 1.0, depth: float = 4.0) -> dict[str, torch.Tensor]:
    """Cross-entropy 1.0 and depth loss 4.0 as leaves, so their weights are readable from .grad."""
    return {
        "semantic": torch.tensor(semantic, requires_grad=True),
        "depth": torch.tensor(depth, requires_grad=True),
    }


def test_regression_form_both_tasks():
    # 0.5 * 1 + 0.5 * 4 + 0.5 * 0 + 0.5 * 0
    method = UncertaintyWeighting(TASKS, classification_tasks="")
    total, _ = method.loss(_context(_losses()))
    assert total.item() == 2.5


def test_classification_form_for_cross_entropy():
    # 1 * 1 + 0.5 * 4
    method = UncertaintyWeighting(TASKS, classification_tasks="semantic")
    total, _ = method.loss(_context(_losses()))
    assert total.item() == 3.0


def test_simplified_form_every_task():
    # exp(0) * 1 + exp(0) * 4 + 0 + 0, and classification_tasks is ignored
    method = UncertaintyWeighting(TASKS, form="simplified", classification_tasks="semantic")
    total, _ = method.loss(_context(_losses()))
    assert total.item() == 5.0


def test_nonzero_log_variances_by_hand():
    # s = (ln 2, -ln 2): classification 1/2 * 1 + ln2/2, regression 0.5 * 2 * 4 - ln2/2, total 4.5
    method = UncertaintyWeighting(TASKS, classification_tasks="semantic")
    with torch.no_grad():
        method.log_variances.copy_(torch.tensor([math.log(2.0), -math.log(2.0)]))
    total, _ = method.loss(_context(_losses()))
    assert total.item() == pytest.approx(4.5, rel=1e-6)


def test_function_matches_method():
    losses = torch.tensor([1.0, 4.0])
    log_variances = torch.zeros(2)
    assert uncertainty_weighted_loss(losses, log_variances, (False, False), "kendall").item() == 2.5
    assert uncertainty_weighted_loss(losses, log_variances, (True, False), "kendall").item() == 3.0
    assert uncertainty_weighted_loss(losses, log_variances, (True, False), "simplified").item() == 5.0


def test_function_rejects_unknown_form():
    with pytest.raises(MtbenchError, match="'gaussian'"):
        uncertainty_weighted_loss(torch.ones(1), torch.zeros(1), (True,), "gaussian")


def test_log_variance_gradients_kendall():
    # classification -exp(-s) L + 0.5 = -1 + 0.5, and regression -0.5 exp(-s) L + 0.5 = -2 + 0.5
    method = UncertaintyWeighting(TASKS, classification_tasks="semantic")
    total, _ = method.loss(_context(_losses()))
    total.backward()
    assert method.log_variances.grad.tolist() == [-0.5, -1.5]


def test_log_variance_gradients_regression():
    # regression form for cross-entropy too: -0.5 * 1 + 0.5 = 0
    method = UncertaintyWeighting(TASKS, classification_tasks="")
    total, _ = method.loss(_context(_losses()))
    total.backward()
    assert method.log_variances.grad.tolist() == [0.0, -1.5]


def test_log_variance_gradients_simplified():
    # -exp(-s) L + 1 = (0, -3)
    method = UncertaintyWeighting(TASKS, form="simplified")
    total, _ = method.loss(_context(_losses()))
    total.backward()
    assert method.log_variances.grad.tolist() == [0.0, -3.0]


@pytest.mark.parametrize(
    ("form", "classification_tasks", "weights"),
    [("kendall", "semantic", (1.0, 0.5)), ("kendall", "", (0.5, 0.5)), ("simplified", "", (1.0, 1.0))],
)
def test_task_weights_at_zero(form, classification_tasks, weights):
    method = UncertaintyWeighting(TASKS, form=form, classification_tasks=classification_tasks)
    losses = _losses()
    total, _ = method.loss(_context(losses))
    total.backward()
    assert losses["semantic"].grad.item() == weights[0]
    assert losses["depth"].grad.item() == weights[1]


@pytest.mark.parametrize(
    ("form", "classification_tasks", "optimum"),
    [("kendall", "", math.log(4.0)), ("kendall", "all", math.log(8.0)), ("simplified", "", math.log(4.0))],
)
def test_adam_reaches_optimal_log_variance(form, classification_tasks, optimum):
    # For a fixed L = 4 the regression and simplified forms are minimal at s = log L, the classification form at log(2 L).
    method = UncertaintyWeighting(["depth"], form=form, classification_tasks=classification_tasks)
    optimizer = torch.optim.Adam(method.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        total, _ = method.loss(_context({"depth": torch.tensor(4.0)}))
        total.backward()
        optimizer.step()
        method.after_optimizer_step()
    assert method.log_variances.item() == pytest.approx(optimum, abs=1e-2)


def test_zero_loss_stops_at_bound():
    method = UncertaintyWeighting(["depth"], classification_tasks="")
    optimizer = torch.optim.Adam(method.parameters(), lr=1.0)
    for _ in range(200):
        optimizer.zero_grad()
        total, logged = method.loss(_context({"depth": torch.tensor(0.0)}))
        total.backward()
        assert torch.isfinite(method.log_variances.grad).all()
        optimizer.step()
        method.after_optimizer_step()
    total, logged = method.loss(_context({"depth": torch.tensor(0.0)}))
    assert method.log_variances.item() == -LOG_VARIANCE_BOUND
    assert math.isfinite(total.item())
    assert logged == {"log_variance/depth": -LOG_VARIANCE_BOUND}


def test_log_variance_leaves_bound_when_loss_grows():
    # The clamp acts on the parameter, not in the forward pass, so after a run at L = 0 the
    # gradient at the bound is still non-zero and s moves back inside once the loss grows.
    method = UncertaintyWeighting(["depth"], classification_tasks="")
    optimizer = torch.optim.Adam(method.parameters(), lr=0.1)
    for loss in [0.0] * 300 + [4.0] * 5:
        optimizer.zero_grad()
        total, _ = method.loss(_context({"depth": torch.tensor(loss)}))
        total.backward()
        optimizer.step()
        method.after_optimizer_step()
        if loss == 0.0:
            last_at_zero = method.log_variances.item()
    assert last_at_zero == -LOG_VARIANCE_BOUND
    assert method.log_variances.item() > -LOG_VARIANCE_BOUND + 0.4


def test_clamp_upper_bound():
    method = UncertaintyWeighting(TASKS)
    with torch.no_grad():
        method.log_variances.copy_(torch.tensor([25.0, -3.0]))
    method.after_optimizer_step()
    assert method.log_variances.tolist() == [LOG_VARIANCE_BOUND, -3.0]


def test_loss_logs_log_variances():
    method = UncertaintyWeighting(TASKS, initial_log_variance=0.5)
    _, logged = method.loss(_context(_losses()))
    assert logged == {"log_variance/semantic": 0.5, "log_variance/depth": 0.5}
    assert all(type(value) is float for value in logged.values())


def test_single_task():
    # exp(-0.5) * 2 + 0.25
    method = UncertaintyWeighting(["left"], initial_log_variance=0.5)
    total, logged = method.loss(_context({"left": torch.tensor(2.0)}))
    assert total.item() == pytest.approx(2.0 * math.exp(-0.5) + 0.25, rel=1e-6)
    assert list(logged) == ["log_variance/left"]


def test_state_dict_round_trip():
    source = UncertaintyWeighting(TASKS)
    with torch.no_grad():
        source.log_variances.copy_(torch.tensor([0.3, -1.2]))
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    target = UncertaintyWeighting(TASKS)
    target.load_state_dict(state)
    assert list(state) == ["log_variances"]
    assert torch.equal(target.log_variances, source.log_variances)


def test_log_variances_are_method_parameters():
    method = UncertaintyWeighting(TASKS, initial_log_variance=-0.5)
    (parameter,) = list(method.parameters())
    assert parameter is method.log_variances
    assert parameter.tolist() == [-0.5, -0.5]


def test_parse_classification_tasks():
    assert parse_classification_tasks("all", TASKS) == (True, True)
    assert parse_classification_tasks("", TASKS) == (False, False)
    assert parse_classification_tasks(" depth ", TASKS) == (False, True)
    assert parse_classification_tasks("depth,semantic", TASKS) == (True, True)


def test_unknown_classification_task_rejected():
    with pytest.raises(MtbenchError, match="not a trained task: segmentation"):
        UncertaintyWeighting(TASKS, classification_tasks="semantic,segmentation")


def test_classification_tasks_must_be_text():
    with pytest.raises(MtbenchError, match="comma-separated string"):
        UncertaintyWeighting(TASKS, classification_tasks=["semantic"])


def test_unknown_form_rejected():
    with pytest.raises(MtbenchError, match="Invalid form 'libmtl'"):
        UncertaintyWeighting(TASKS, form="libmtl")


@pytest.mark.parametrize("value", [10.5, -11.0, math.nan, math.inf])
def test_initial_log_variance_out_of_range(value):
    with pytest.raises(MtbenchError, match="initial_log_variance"):
        UncertaintyWeighting(TASKS, initial_log_variance=value)


def test_defaults_match_hyperparameters():
    signature = inspect.signature(UncertaintyWeighting.__init__)
    for hyperparameter in UncertaintyWeighting.hyperparameters:
        assert signature.parameters[hyperparameter.keyword].default == hyperparameter.default
    assert UncertaintyWeighting(TASKS).config() == {
        "form": "kendall",
        "classification_tasks": "all",
        "initial_log_variance": 0.0,
    }


def test_registered_as_uncertainty():
    assert get_method("uncertainty") is UncertaintyWeighting
    assert "uncertainty" in list_methods()


def test_uncertainty_run_writes_record(tiny_data_root, tmp_path):
    method_config = {"form": "kendall", "classification_tasks": "all", "initial_log_variance": 0.0}
    config = make_config(tiny_data_root, tmp_path, method="uncertainty", method_config=method_config, epochs=1)
    (record,) = run_configuration(config, [0], QUIET)

    assert read_records(tmp_path) == [record]
    assert record["status"] == "finished"
    assert record["method_config"] == method_config
    assert record["method_module"] == "mtbench.methods.uncertainty"
    train = record["history"][0]["train"]
    assert set(train) == {"log_variance/left", "log_variance/right"}
    assert all(-LOG_VARIANCE_BOUND <= value <= LOG_VARIANCE_BOUND for value in train.values())

    checkpoint = tmp_path / "runs" / "multidigitmnist" / record["run_id"] / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)
    # Adam moved the log-variances away from their starting value.
    assert state["method"]["log_variances"].abs().min().item() > 1e-3

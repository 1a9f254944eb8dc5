import io
import math
import warnings

import pytest
import torch

from mtbench.cli.run_command import parse_method_parameters
from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method
from mtbench.methods.stch import SmoothTchebycheff, smooth_tchebycheff

TASKS = ["left", "right"]


def _context(losses: tuple[float, ...], epoch: int, tasks: list[str] = TASKS) -> StepContext:
    """A step context whose task losses are leaves, so each loss's gradient is readable from its .grad."""
    task_losses = {task: torch.tensor(value, requires_grad=True) for task, value in zip(tasks, losses)}
    return StepContext(task_losses, [], [], torch.zeros(1), step=0, epoch=epoch)


def _step(method: SmoothTchebycheff, losses: tuple[float, ...], epoch: int) -> tuple[float, list[float], dict[str, float]]:
    """Run the method on one step. Return the objective, the gradient on each loss and the logged values."""
    context = _context(losses, epoch, method.tasks)
    total, logged = method.loss(context)
    total.backward()
    return total.item(), [context.task_losses[task].grad.item() for task in method.tasks], logged


def _after_nadir_epoch(mu: float = 1.0) -> SmoothTchebycheff:
    """One warm-up epoch with losses (1, 4) and (3, 8), so the nadir point is their mean (2, 6)."""
    method = SmoothTchebycheff(TASKS, mu=mu, warmup_epochs=1)
    _step(method, (1.0, 4.0), epoch=1)
    _step(method, (3.0, 8.0), epoch=1)
    return method


def test_function_hand_example():
    values = torch.tensor([0.0, math.log(3.0)])
    # log(e^0 + e^ln3) = ln 4, and with mu = 0.5 the value is 0.5 log(1 + 3^2) = 0.5 ln 10.
    assert smooth_tchebycheff(values, 1.0).item() == pytest.approx(math.log(4.0), rel=1e-6)
    assert smooth_tchebycheff(values, 0.5).item() == pytest.approx(0.5 * math.log(10.0), rel=1e-6)


def test_function_preferences_and_ideal_point():
    # lambda (f - z) = (2 * (2 - 1), 1 * (5 - 2)) = (2, 3), so the value is ln(e^2 + e^3).
    value = smooth_tchebycheff(
        torch.tensor([2.0, 5.0]), 1.0, preferences=torch.tensor([2.0, 1.0]), ideal_point=torch.tensor([1.0, 2.0])
    )
    assert value.item() == pytest.approx(math.log(math.exp(2) + math.exp(3)), rel=1e-6)


def test_small_mu_gives_max():
    # mu log sum exp(f / mu) lies in [max f, max f + mu ln K] = [3, 3.0011].
    values = torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64)
    value = smooth_tchebycheff(values, 1e-3).item()
    assert 3.0 <= value <= 3.0 + 1e-3 * math.log(3.0)


def test_large_mu_gives_mean():
    # The value minus mu ln K is mean(f) + var(f) / (2 mu) + O(1 / mu^2) = 2 + 0.00033.
    values = torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64, requires_grad=True)
    value = smooth_tchebycheff(values, 1e3)
    assert value.item() - 1e3 * math.log(3.0) == pytest.approx(2.0, abs=1e-3)

    value.backward()
    assert values.grad.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3], abs=1e-3)


def test_function_does_not_overflow():
    values = torch.tensor([1000.0, 2000.0])
    assert math.isinf(torch.exp(values / 1e-3).sum().item())
    assert smooth_tchebycheff(values, 1e-3).item() == 2000.0
    assert smooth_tchebycheff(-values, 1e-3).item() == -1000.0


def test_warmup_minimises_sum_of_log_losses():
    # log 1 + log 4 = ln 4, with gradients 1 / L = (1, 0.25).
    method = SmoothTchebycheff(TASKS, warmup_epochs=1)
    total, gradients, logged = _step(method, (1.0, 4.0), epoch=1)
    assert total == pytest.approx(math.log(4.0), rel=1e-6)
    assert gradients == pytest.approx([1.0, 0.25], rel=1e-6)
    assert logged == {"weight/left": 1.0, "weight/right": 1.0}


def test_stch_after_nadir_epoch():
    method = _after_nadir_epoch()
    # L / n = (2 / 2, 18 / 6) = (1, 3), so f = (0, ln 3) and the objective is 2 ln 4.
    # softmax(f) = (1/4, 3/4), so the weights of f are (0.5, 1.5) and dL = (0.5 / 2, 1.5 / 18).
    total, gradients, logged = _step(method, (2.0, 18.0), epoch=2)
    assert method.nadir_point.tolist() == [2.0, 6.0]
    assert total == pytest.approx(2 * math.log(4.0), rel=1e-6)
    assert gradients == pytest.approx([0.25, 1.5 / 18], rel=1e-6)
    assert [logged["weight/left"], logged["weight/right"]] == pytest.approx([0.5, 1.5], rel=1e-6)


def test_stch_with_smaller_mu():
    # mu = 0.5: 2 * 0.5 * log(1 + 3^2) = ln 10, and softmax(2 f) = (0.1, 0.9) gives weights (0.2, 1.8).
    method = _after_nadir_epoch(mu=0.5)
    total, _, logged = _step(method, (2.0, 18.0), epoch=2)
    assert total == pytest.approx(math.log(10.0), rel=1e-6)
    assert [logged["weight/left"], logged["weight/right"]] == pytest.approx([0.2, 1.8], rel=1e-6)


def test_nadir_uses_last_warmup_epoch_only():
    method = SmoothTchebycheff(TASKS, warmup_epochs=2)
    _step(method, (100.0, 100.0), epoch=1)
    _step(method, (2.0, 6.0), epoch=2)
    _step(method, (1.0, 1.0), epoch=3)
    assert method.nadir_point.tolist() == [2.0, 6.0]


def test_default_warmup_is_five_epochs():
    method = SmoothTchebycheff(TASKS)
    for epoch in range(1, 6):
        _, _, logged = _step(method, (1.0, 4.0), epoch)
        assert logged == {"weight/left": 1.0, "weight/right": 1.0}, f"epoch {epoch}"
    # Epoch 5 recorded n = (1, 4), so now L / n = (1, 3).
    total, _, _ = _step(method, (1.0, 12.0), epoch=6)
    assert method.nadir_point.tolist() == [1.0, 4.0]
    assert total == pytest.approx(2 * math.log(4.0), rel=1e-6)


def test_no_warmup_uses_unnormalised_log_losses():
    method = SmoothTchebycheff(TASKS, warmup_epochs=0)
    total, _, logged = _step(method, (1.0, 3.0), epoch=1)
    assert method.nadir_point.tolist() == [1.0, 1.0]
    assert total == pytest.approx(2 * math.log(4.0), rel=1e-6)
    assert logged["weight/right"] == pytest.approx(1.5, rel=1e-6)


def test_zero_loss_stays_finite():
    # f = (log(1e-20), 0) = (-46.05, 0): the objective is about 2 log(1 + e^-46) and the weights (0, 2).
    method = _after_nadir_epoch()
    total, gradients, logged = _step(method, (0.0, 6.0), epoch=2)
    assert math.isfinite(total)
    assert all(math.isfinite(gradient) for gradient in gradients)
    assert logged["weight/left"] == pytest.approx(0.0, abs=1e-12)
    assert logged["weight/right"] == pytest.approx(2.0)


def test_zero_loss_in_warmup_stays_finite():
    method = SmoothTchebycheff(TASKS, warmup_epochs=1)
    total, gradients, _ = _step(method, (0.0, 1.0), epoch=1)
    assert total == pytest.approx(math.log(1e-20), rel=1e-6)
    assert all(math.isfinite(gradient) for gradient in gradients)


def test_zero_nadir_mean_is_not_normalised():
    method = SmoothTchebycheff(TASKS, warmup_epochs=1)
    _step(method, (0.0, 4.0), epoch=1)
    _step(method, (1.0, 4.0), epoch=2)
    assert method.nadir_point.tolist() == [1.0, 4.0]


def test_tiny_losses_stay_finite():
    method = SmoothTchebycheff(TASKS, warmup_epochs=0)
    total, gradients, logged = _step(method, (1e-20, 1e-20), epoch=1)
    assert math.isfinite(total)
    assert all(math.isfinite(gradient) for gradient in gradients)
    assert [logged["weight/left"], logged["weight/right"]] == pytest.approx([1.0, 1.0])


def test_identical_normalised_losses_give_equal_weights():
    method = _after_nadir_epoch()
    _, _, logged = _step(method, (4.0, 12.0), epoch=2)
    assert [logged["weight/left"], logged["weight/right"]] == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("bad_loss", [-0.5, math.nan, math.inf])
def test_invalid_loss_raises(bad_loss):
    method = SmoothTchebycheff(TASKS)
    with pytest.raises(MtbenchError, match="task 'right' has loss"):
        method.loss(_context((1.0, bad_loss), epoch=1))


def test_single_task():
    # K = 1: the objective is f = log(e + 1e-20) = 1 and the weight 1.
    method = SmoothTchebycheff(["left"], warmup_epochs=0)
    total, gradients, logged = _step(method, (math.e,), epoch=1)
    assert total == pytest.approx(1.0, rel=1e-6)
    assert gradients == pytest.approx([1 / math.e], rel=1e-6)
    assert logged == {"weight/left": 1.0}


def test_state_dict_round_trip_gives_same_next_step():
    method = _after_nadir_epoch()
    _step(method, (2.0, 18.0), epoch=2)

    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    restored = SmoothTchebycheff(TASKS, warmup_epochs=1)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert set(method.state_dict()) == {"nadir_loss_sums", "nadir_step_count", "nadir_point", "nadir_recorded"}

    assert _step(restored, (3.0, 6.0), epoch=3) == _step(method, (3.0, 6.0), epoch=3)
    assert restored.nadir_point.tolist() == [2.0, 6.0]
    assert list(restored.parameters()) == []


def test_round_trip_inside_nadir_epoch():
    method = SmoothTchebycheff(TASKS, warmup_epochs=1)
    _step(method, (1.0, 4.0), epoch=1)
    restored = SmoothTchebycheff(TASKS, warmup_epochs=1)
    restored.load_state_dict(method.state_dict())
    _step(restored, (3.0, 8.0), epoch=1)
    _step(restored, (2.0, 18.0), epoch=2)
    assert restored.nadir_point.tolist() == [2.0, 6.0]


def test_missing_nadir_epoch_raises():
    method = SmoothTchebycheff(TASKS, warmup_epochs=1)
    with pytest.raises(MtbenchError, match="without a training step in epoch 1"):
        method.loss(_context((1.0, 1.0), epoch=2))


def test_state_keeps_no_graph():
    method = _after_nadir_epoch()
    _step(method, (2.0, 18.0), epoch=2)
    assert all(not buffer.requires_grad for buffer in method.buffers())


def test_mismatched_tasks_raise():
    method = SmoothTchebycheff(["segmentation", "depth"])
    with pytest.raises(MtbenchError, match="built for the tasks"):
        method.loss(_context((1.0, 1.0), epoch=1))


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_invalid_mu(value):
    with pytest.raises(MtbenchError, match="Invalid mu"):
        SmoothTchebycheff(TASKS, mu=value)


@pytest.mark.parametrize("value", [-1, 2.5, True, "3"])
def test_invalid_warmup_epochs(value):
    with pytest.raises(MtbenchError, match="Invalid warmup_epochs"):
        SmoothTchebycheff(TASKS, warmup_epochs=value)


def test_gradients_option_rejected():
    with pytest.raises(MtbenchError, match="Unknown hyper-parameter 'gradients' for method 'stch'"):
        parse_method_parameters(SmoothTchebycheff, ["gradients=representation"])


def test_registered_with_published_defaults():
    assert get_method("stch") is SmoothTchebycheff
    assert SmoothTchebycheff(TASKS).config() == {"mu": 1.0, "warmup_epochs": 5}


@pytest.mark.parametrize(("epochs", "run"), [(1, "1 epoch"), (5, "5 epochs")])
def test_run_within_warmup_warns(epochs, run):
    with pytest.warns(RuntimeWarning, match=rf"warm-up \(5 epochs\) lasts the whole run \({run}\)"):
        SmoothTchebycheff(["a", "b"], warmup_epochs=5).check_epochs(epochs)


@pytest.mark.parametrize(("warmup_epochs", "epochs"), [(5, 6), (0, 1)])
def test_run_past_warmup_is_quiet(warmup_epochs, epochs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SmoothTchebycheff(["a", "b"], warmup_epochs=warmup_epochs).check_epochs(epochs)

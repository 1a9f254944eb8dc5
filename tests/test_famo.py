import dataclasses
import io
import math

import pytest
import torch

from mtbench.cli.run_command import parse_method_parameters
from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method
from mtbench.methods.famo import FAMO, famo_loss_weights, logit_gradient
from mtbench.train.trainer import Trainer
from test_all_methods import interrupt_and_resume
from test_trainer import QUIET, make_config, without_timings

TASKS = ["left", "right"]

# Logits after the first Adam step of the worked example: the first step moves each logit by
# 0.025 g / (|g| + 1e-8) with |g| = ln 2 / 4, so by 0.025 (1 - 5.8e-8).
FIRST_LOGITS = (-0.025, 0.025)

# The second update has delta = (ln 2, ln 2), so J^T delta = 0 and the gradient is the decay
# 0.001 * (-0.025, 0.025) alone. With g1 = ln 2 / 4 and g2 = -2.5e-5 for the first logit:
# m = 0.9 * 0.1 * g1 + 0.1 * g2 = 0.0155933, v = 0.999 * 0.001 * g1^2 + 0.001 * g2^2 = 2.99983e-5,
# step = 0.025 * (m / 0.19) / (sqrt(v / 0.001999) + 1e-8) = 0.0167488, so xi_1 = -0.025 - 0.0167488.
SECOND_LOGITS = (-0.0417488, 0.0417488)


def _context(losses: tuple[float, ...], step: int = 0, tasks: list[str] = TASKS) -> StepContext:
    """A step context whose task losses are leaves, so each loss's weight is readable from its .grad."""
    task_losses = {task: torch.tensor(value, requires_grad=True) for task, value in zip(tasks, losses)}
    return StepContext(task_losses, [], [], torch.zeros(1), step=step, epoch=1)


def _step(method: FAMO, losses: tuple[float, ...], step: int = 0) -> tuple[list[float], dict[str, float]]:
    """Run one training step's method calls. Return the gradient on each loss and the logged values."""
    context = _context(losses, step, method.tasks)
    total, logged = method.loss(context)
    total.backward()
    method.after_optimizer_step()
    return [context.task_losses[task].grad.item() for task in method.tasks], logged


def test_loss_weights_hand_example():
    # z = (0.5, 0.5), z / L = (0.25, 0.125), c = 1 / 0.375.
    weights = famo_loss_weights(torch.zeros(2), torch.tensor([2.0, 4.0]))
    assert weights.tolist() == pytest.approx([2 / 3, 1 / 3], rel=1e-6)


def test_logit_gradient_hand_example():
    # delta = (ln 2, 0), sum z delta = ln 2 / 2, J^T delta = 0.5 * (ln 2 / 2, -ln 2 / 2).
    gradient = logit_gradient(torch.zeros(2), torch.tensor([2.0, 4.0]), torch.tensor([1.0, 4.0]))
    assert gradient.tolist() == pytest.approx([math.log(2) / 4, -math.log(2) / 4], rel=1e-6)


def test_logit_gradient_matches_autograd():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, generator=generator, requires_grad=True)
    before = torch.rand(4, generator=generator) + 0.5
    after = torch.rand(4, generator=generator) + 0.5
    delta = torch.log(before + 1e-8) - torch.log(after + 1e-8)
    (expected,) = torch.autograd.grad(torch.softmax(logits, dim=0), logits, grad_outputs=delta)

    gradient = logit_gradient(logits.detach(), before, after)
    assert torch.allclose(gradient, expected, atol=1e-7)


def test_two_task_two_step_example():
    method = FAMO(TASKS)

    gradients, logged = _step(method, (2.0, 4.0), step=0)
    assert gradients == pytest.approx([2 / 3, 1 / 3], rel=1e-6)
    assert logged["weight/left"] == pytest.approx(2 / 3, rel=1e-6)
    assert logged["softmax_weight/left"] == 0.5
    assert method.logits.tolist() == [0.0, 0.0]

    # The next step's losses (1, 4) are the losses after the first update: the logits move
    # first, to z = (0.4875026, 0.5124974), and z / L = (0.4875026, 0.1281243) gives w.
    gradients, logged = _step(method, (1.0, 4.0), step=1)
    assert method.logits.tolist() == pytest.approx(FIRST_LOGITS, abs=1e-8)
    assert gradients == pytest.approx([0.7918799, 0.2081201], abs=1e-6)
    assert logged["softmax_weight/left"] == pytest.approx(0.4875026, abs=1e-7)

    _step(method, (0.5, 2.0), step=2)
    assert method.logits.tolist() == pytest.approx(SECOND_LOGITS, abs=1e-7)
    assert int(method.adam_step) == 2


def test_same_batch_update_logits():
    method = FAMO(TASKS)
    _step(method, (2.0, 4.0))
    method.update_logits(torch.tensor([1.0, 4.0]))
    assert method.logits.tolist() == pytest.approx(FIRST_LOGITS, abs=1e-8)

    # The next step does not update again with its own losses.
    _step(method, (8.0, 1.0), step=1)
    assert method.logits.tolist() == pytest.approx(FIRST_LOGITS, abs=1e-8)
    assert int(method.adam_step) == 1


def test_update_logits_needs_recorded_losses():
    method = FAMO(TASKS)
    with pytest.raises(MtbenchError, match="needs the losses of a training step"):
        method.update_logits(torch.tensor([1.0, 1.0]))


def test_no_update_without_optimizer_step():
    method = FAMO(TASKS)
    method.loss(_context((2.0, 4.0)))
    method.loss(_context((1.0, 4.0)))
    assert method.logits.tolist() == [0.0, 0.0]
    assert int(method.adam_step) == 0


def test_logits_match_torch_adam_reference():
    # Reference: the logit gradient by autograd through the softmax, applied by torch.optim.Adam.
    generator = torch.Generator().manual_seed(1)
    sequence = [tuple((torch.rand(3, generator=generator) * 3 + 0.1).tolist()) for _ in range(6)]
    method = FAMO(["a", "b", "c"], logit_learning_rate=0.05, weight_decay=0.01)
    reference = torch.zeros(3, requires_grad=True)
    optimizer = torch.optim.Adam([reference], lr=0.05, weight_decay=0.01)

    for step, (before, after) in enumerate(zip(sequence, sequence[1:])):
        _step(method, before, step)
        method.update_logits(torch.tensor(after))

        delta = torch.log(torch.tensor(before) + 1e-8) - torch.log(torch.tensor(after) + 1e-8)
        (reference.grad,) = torch.autograd.grad(torch.softmax(reference, dim=0), reference, grad_outputs=delta)
        optimizer.step()
        assert torch.allclose(method.logits, reference.detach(), atol=1e-7), f"update {step}"
    assert method.logits.abs().max().item() > 0.05


def test_zero_loss_stays_finite():
    # w_left = (0.5 / 1e-8) / (0.5 / 1e-8 + 0.5 / 3) = 1 - 3.3e-9.
    method = FAMO(TASKS)
    gradients, _ = _step(method, (0.0, 3.0))
    assert gradients[0] == pytest.approx(1.0, abs=1e-6)
    assert gradients[1] == pytest.approx(0.0, abs=1e-6)

    # From 0 to 1 the log loss rises by about 18.4, so the first logit grows.
    _step(method, (1.0, 3.0), step=1)
    assert bool(torch.isfinite(method.logits).all())
    assert method.logits[0].item() > 0


def test_both_losses_zero_give_equal_weights():
    method = FAMO(TASKS)
    gradients, _ = _step(method, (0.0, 0.0))
    assert gradients == pytest.approx([0.5, 0.5])


def test_tiny_losses_give_finite_weights():
    method = FAMO(TASKS)
    gradients, _ = _step(method, (1e-20, 1e-20))
    assert gradients == pytest.approx([0.5, 0.5])
    _step(method, (2e-20, 1e-20), step=1)
    assert bool(torch.isfinite(method.logits).all())


def test_identical_losses_keep_logits_equal():
    method = FAMO(TASKS)
    gradients, _ = _step(method, (3.0, 3.0))
    assert gradients == pytest.approx([0.5, 0.5])

    # Both log losses fall by ln 3, so J^T delta = 0 and Adam receives a zero gradient.
    _step(method, (1.0, 1.0), step=1)
    assert method.logits.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("bad_loss", [-0.5, math.nan, math.inf])
def test_invalid_loss_raises(bad_loss):
    method = FAMO(TASKS)
    with pytest.raises(MtbenchError, match="task 'right' has loss"):
        method.loss(_context((1.0, bad_loss), step=7))


def test_invalid_loss_after_step_raises():
    method = FAMO(TASKS)
    _step(method, (1.0, 1.0))
    with pytest.raises(MtbenchError, match="task 'left' has loss -1.0"):
        method.update_logits(torch.tensor([-1.0, 1.0]))


def test_single_task():
    method = FAMO(["left"])
    for step, loss in enumerate([4.0, 2.0, 3.0]):
        gradients, logged = _step(method, (loss,), step)
        assert gradients == [1.0]
        assert logged == {"weight/left": 1.0, "softmax_weight/left": 1.0}
    assert method.logits.tolist() == [0.0]


def test_state_dict_round_trip_gives_same_next_step():
    method = FAMO(TASKS)
    _step(method, (2.0, 4.0))
    _step(method, (1.0, 4.0), step=1)

    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    restored = FAMO(TASKS)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert set(method.state_dict()) == {
        "logits",
        "previous_losses",
        "has_previous_losses",
        "optimizer_stepped",
        "adam_step",
        "adam_first_moment",
        "adam_second_moment",
    }

    expected_gradients, expected_logged = _step(method, (0.5, 2.0), step=2)
    gradients, logged = _step(restored, (0.5, 2.0), step=2)
    assert restored.logits.tolist() == pytest.approx(SECOND_LOGITS, abs=1e-7)
    assert torch.equal(restored.logits, method.logits)
    assert gradients == expected_gradients
    assert logged == expected_logged
    assert list(restored.parameters()) == []


def test_state_keeps_no_graph():
    method = FAMO(TASKS)
    _step(method, (2.0, 4.0))
    assert all(not buffer.requires_grad for buffer in method.buffers())


def test_mismatched_tasks_raise():
    method = FAMO(["segmentation", "depth"])
    with pytest.raises(MtbenchError, match="built for the tasks"):
        method.loss(_context((1.0, 1.0)))


@pytest.mark.parametrize("value", [0.0, -0.1, math.nan, math.inf])
def test_invalid_logit_learning_rate(value):
    with pytest.raises(MtbenchError, match="logit_learning_rate"):
        FAMO(TASKS, logit_learning_rate=value)


@pytest.mark.parametrize("value", [-0.001, math.nan, math.inf])
def test_invalid_weight_decay(value):
    with pytest.raises(MtbenchError, match="weight_decay"):
        FAMO(TASKS, weight_decay=value)


def test_zero_weight_decay_accepted():
    assert FAMO(TASKS, weight_decay=0.0).weight_decay == 0.0


def test_gradients_option_rejected():
    with pytest.raises(MtbenchError, match="Unknown hyper-parameter 'gradients' for method 'famo'"):
        parse_method_parameters(FAMO, ["gradients=representation"])


def test_registered_with_published_defaults():
    assert get_method("famo") is FAMO
    assert FAMO(TASKS).config() == {"logit_learning_rate": 0.025, "weight_decay": 0.001}


def test_same_batch_option_updates_from_recomputed_losses():
    method = FAMO(TASKS, logit_update="same-batch")
    assert method.needs_losses_after_step()

    _step(method, (2.0, 4.0))
    method.losses_after_step({"left": torch.tensor(1.0), "right": torch.tensor(4.0)})
    assert method.logits.tolist() == pytest.approx(FIRST_LOGITS, abs=1e-8)

    _step(method, (8.0, 1.0), step=1)
    assert method.logits.tolist() == pytest.approx(FIRST_LOGITS, abs=1e-8)
    assert int(method.adam_step) == 1


def test_next_batch_option_ignores_recomputed_losses():
    method = FAMO(TASKS)
    assert not method.needs_losses_after_step()

    _step(method, (2.0, 4.0))
    method.losses_after_step({"left": torch.tensor(1.0), "right": torch.tensor(4.0)})
    assert method.logits.tolist() == [0.0, 0.0]


def test_invalid_logit_update():
    with pytest.raises(MtbenchError, match="Invalid logit_update 'same' for method 'famo': use next-batch or same-batch"):
        FAMO(TASKS, logit_update="same")


def test_logit_update_recorded_only_when_not_default():
    assert parse_method_parameters(FAMO, []) == {"logit_learning_rate": 0.025, "weight_decay": 0.001}
    assert parse_method_parameters(FAMO, ["logit_update=same-batch"])["logit_update"] == "same-batch"
    assert "logit_update" not in parse_method_parameters(FAMO, ["logit_update=next-batch"])
    assert FAMO(TASKS, logit_update="same-batch").config()["logit_update"] == "same-batch"


@pytest.mark.parametrize("logit_update", ["same-batch", "next-batch"])
def test_trainer_passes_losses_of_the_same_batch(tiny_data_root, tmp_path, logit_update):
    """Check the source of the losses with a learning rate of 0, where the model never moves.

    Losses recomputed on the same batch then equal the step's own. So delta,
    the logit gradient and the decay are 0, and the logits stay at 0 after one
    Adam step per training step. With "next-batch" the next batch's losses
    differ from the step's, and the logits move.
    """
    config = make_config(tiny_data_root, tmp_path, method="famo", method_config={"logit_update": logit_update}, epochs=1)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, learning_rate=0.0))
    trainer = Trainer(config, QUIET)
    trainer.run()

    steps = len(trainer.step_seconds)
    if logit_update == "same-batch":
        assert trainer.method.logits.tolist() == [0.0, 0.0]
        assert int(trainer.method.adam_step) == steps
    else:
        assert trainer.method.logits.abs().min() > 0
        assert int(trainer.method.adam_step) == steps - 1


def test_same_batch_run_resumes_exactly(tiny_data_root, tmp_path):
    settings = {"method": "famo", "method_config": {"logit_update": "same-batch"}, "epochs": 2}
    straight = Trainer(make_config(tiny_data_root, tmp_path / "straight", **settings), QUIET)
    record = straight.run()

    resumed, resumed_record = interrupt_and_resume(make_config(tiny_data_root, tmp_path / "interrupted", **settings))

    assert without_timings(resumed_record) == without_timings(record)
    assert torch.equal(resumed.method.logits, straight.method.logits)

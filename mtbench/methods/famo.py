"""FAMO: task weights from softmax logits that follow the decrease of each log loss."""

import math

import torch

from mtbench.errors import MtbenchError
from mtbench.methods.base import Hyperparameter, Method, StepContext
from mtbench.methods.gradient_method import weights_logged
from mtbench.methods.registry import register_method

# Added to every loss before the logarithm and the division, as in the authors' code
# (their minimum losses are 0 by default), so that a loss of exactly 0 stays finite.
LOSS_EPSILON = 1e-8

# Adam's moment decay rates and denominator constant for the logit update: PyTorch's
# defaults, which the authors' torch.optim.Adam uses.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-8

# Sources of the losses "after the model step": the next training step's batch,
# or the same batch recomputed after the optimiser step (the authors' supervised trainers).
LOGIT_UPDATES = ("next-batch", "same-batch")


def famo_loss_weights(logits: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """Return w_k = c z_k / (L_k + eps) with z = softmax(logits) and c = 1 / sum_k z_k / (L_k + eps).

    ``losses`` are the detached, non-negative task losses and eps is
    ``LOSS_EPSILON``. The weights are positive and sum to 1, and sum_k w_k L_k
    has the gradient d = c sum_k z_k grad L_k / L_k, the gradient of
    sum_k z_k log L_k / c. Logits (0, 0) and losses (2, 4) give
    z = (0.5, 0.5), c = 1 / 0.375 and w = (2/3, 1/3).
    """
    scaled = torch.softmax(logits, dim=0) / (losses + LOSS_EPSILON)
    return scaled / scaled.sum()


def logit_gradient(logits: torch.Tensor, losses_before: torch.Tensor, losses_after: torch.Tensor) -> torch.Tensor:
    """Return J^T delta, where J is the Jacobian of softmax(logits) and delta_k = log L_k(before) - log L_k(after).

    Both loss vectors are shifted by ``LOSS_EPSILON`` before the logarithm. The
    Jacobian of the softmax is diag(z) - z z^T, so the result is
    z_k (delta_k - sum_i z_i delta_i). A task whose log loss fell more than
    the z-weighted mean gets a positive entry, and a descent step on the
    logits then lowers its weight. Logits (0, 0) with losses (2, 4) before and
    (1, 4) after give delta = (ln 2, 0) and (ln 2 / 4, -ln 2 / 4).
    """
    decrease = torch.log(losses_before + LOSS_EPSILON) - torch.log(losses_after + LOSS_EPSILON)
    weights = torch.softmax(logits, dim=0)
    return weights * (decrease - (weights * decrease).sum())


def _check_positive(name: str, value: float, example: float, allow_zero: bool = False) -> float:
    value = float(value)
    valid = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not valid:
        bound = ">= 0" if allow_zero else "> 0"
        raise MtbenchError(
            f"Invalid {name} {value} for method 'famo': use a finite number {bound} (the published value is {example:g})."
        )
    return value


@register_method
class FAMO(Method):
    """Fast Adaptive Multitask Optimization: weight task k by c z_k / L_k with z = softmax(xi).

    From "FAMO: Fast Adaptive Multitask Optimization" (Liu, Feng, Stone and
    Liu, NeurIPS 2023). FAMO aims to decrease every task loss at the same
    relative rate, with one backward pass per step.

    Each step the model receives d = c sum_k z_k grad L_k / L_k, with
    z = softmax(xi) and c = (sum_k z_k / L_k)^-1, which is the gradient of
    sum_k w_k L_k for the detached weights of :func:`famo_loss_weights`.
    The weights sum to 1. After the model step the logits xi move against
    :func:`logit_gradient` of the log losses before and after the step: a
    task whose log loss fell more than the z-weighted mean loses weight.
    Like the authors' code, mtbench applies that gradient with Adam (betas
    (0.9, 0.999), eps 1e-8) and an L2 weight decay added to the gradient,
    which pulls the logits towards 0 (equal z). The logits start at 0.

    Losses after the step. The authors' supervised trainers run a second
    forward pass on the same batch after the model step, without gradients,
    and their toy example takes the losses of the next iteration, where the
    objective does not change between iterations. ``logit_update`` chooses:

    - "next-batch" (the default, which the committed records used): the
      losses of the next training step, on the next batch, at no extra cost.
      Then delta also contains the difference between the two batches, noise
      that averages out over steps but makes each update noisier than the
      authors' update. The logit update happens at the start of the next
      step, before its weights are computed, so the order of updates is the
      authors'. The first step of a run, and a step that follows no
      optimiser step (see :meth:`after_optimizer_step`), does not update the
      logits.
    - "same-batch": the trainer recomputes the losses on the same batch after
      the optimiser step, in training mode as the authors do, and passes them
      to :meth:`losses_after_step`. This is the authors' update, at the cost
      of one more forward pass per step.

    Hyper-parameters (published defaults): ``logit_learning_rate`` 0.025, the
    Adam step size of the logits (the authors' ``w_lr``), and
    ``weight_decay`` 0.001, the L2 decay of the logits (the authors'
    ``gamma``), used on NYUv2, CelebA and QM9. The authors use 0.01 on
    Cityscapes. ``logit_update`` enters records only when it is "same-batch".

    Edge cases. A loss of 0 stays finite because of ``LOSS_EPSILON``, and
    that task then gets almost all of the weight, as in the authors' code. A
    negative or non-finite loss raises MtbenchError, because FAMO takes its
    logarithm. Identical losses with equal logits give equal weights. With a
    single task the weight is 1, the logit gradient is 0 and the logit stays
    at 0. FAMO is a loss-weighting method: it needs no task gradients and has
    no ``gradients`` option.

    State saved in checkpoints, as buffers: the logits, the losses of the
    previous step, whether an optimiser step followed them, and the Adam
    moments and step count of the logits. Logged per step: ``weight/<task>``,
    the weight w_k of L_k, and ``softmax_weight/<task>``, z_k.
    """

    name = "famo"
    title = "Liu, Feng, Stone and Liu, 2023: FAMO: Fast Adaptive Multitask Optimization"
    hyperparameters = (
        Hyperparameter(
            "logit_learning_rate",
            float,
            0.025,
            "Adam step size of the task logits xi (dimensionless, > 0)",
        ),
        Hyperparameter(
            "weight_decay",
            float,
            0.001,
            "L2 decay of the task logits, added to their gradient (>= 0), which pulls the weights towards equal",
        ),
        Hyperparameter(
            "logit_update",
            str,
            "next-batch",
            "losses after the model step: next-batch (the next step's) or same-batch (recomputed, one more forward pass, the authors')",
            recorded_when_default=False,
        ),
    )

    def __init__(
        self, tasks: list[str], logit_learning_rate: float = 0.025, weight_decay: float = 0.001, logit_update: str = "next-batch"
    ) -> None:
        super().__init__(tasks)
        self.logit_learning_rate = _check_positive("logit_learning_rate", logit_learning_rate, 0.025)
        self.weight_decay = _check_positive("weight_decay", weight_decay, 0.001, allow_zero=True)
        if logit_update not in LOGIT_UPDATES:
            raise MtbenchError(f"Invalid logit_update {logit_update!r} for method 'famo': use {' or '.join(LOGIT_UPDATES)}.")
        self.logit_update = logit_update

        task_count = len(self.tasks)
        self.register_buffer("logits", torch.zeros(task_count))
        self.register_buffer("previous_losses", torch.zeros(task_count))
        self.register_buffer("has_previous_losses", torch.tensor(False))
        self.register_buffer("optimizer_stepped", torch.tensor(False))
        self.register_buffer("adam_step", torch.zeros((), dtype=torch.long))
        self.register_buffer("adam_first_moment", torch.zeros(task_count))
        self.register_buffer("adam_second_moment", torch.zeros(task_count))

    def _checked_losses(self, context: StepContext) -> torch.Tensor:
        """Return the step's task losses in the method's task order. Raise MtbenchError for a negative or non-finite one."""
        if context.tasks != self.tasks:
            raise MtbenchError(
                f"FAMO was built for the tasks {self.tasks} but the training step has {context.tasks}. "
                "Build the method with the run's tasks, in the same order."
            )
        losses = context.loss_vector(self.tasks)
        self._check_loss_values(losses.detach(), context.step)
        return losses

    def _check_loss_values(self, losses: torch.Tensor, step: int | None) -> None:
        invalid = ~torch.isfinite(losses) | (losses < 0)
        if bool(invalid.any()):
            index = int(invalid.nonzero()[0])
            where = "" if step is None else f" at training step {step}"
            raise MtbenchError(
                f"FAMO needs finite, non-negative task losses, but task '{self.tasks[index]}' has loss "
                f"{float(losses[index])}{where}. FAMO takes the logarithm of each loss: use a loss that is at least 0."
            )

    def update_logits(self, losses_after_step: torch.Tensor) -> None:
        """Update the logits from the previous step's losses and ``losses_after_step``, the losses after the model step.

        ``losses_after_step`` is a vector in the method's task order. Raises
        MtbenchError when no step has recorded losses since the last update,
        or when a loss is negative or not finite.
        """
        if not bool(self.has_previous_losses):
            raise MtbenchError(
                "FAMO.update_logits() needs the losses of a training step first: call it after the method's loss() "
                "and the optimiser step, once per step."
            )
        losses_after_step = losses_after_step.detach().to(self.logits)
        self._check_loss_values(losses_after_step, None)

        gradient = logit_gradient(self.logits, self.previous_losses, losses_after_step)
        self._adam_step(gradient)
        self.has_previous_losses.fill_(False)
        self.optimizer_stepped.fill_(False)

    @torch.no_grad()
    def _adam_step(self, gradient: torch.Tensor) -> None:
        """Move the logits one Adam step against ``gradient`` plus the L2 decay, as torch.optim.Adam does."""
        gradient = gradient + self.weight_decay * self.logits
        first_decay, second_decay = ADAM_BETAS

        self.adam_step += 1
        step = int(self.adam_step)
        self.adam_first_moment.mul_(first_decay).add_(gradient, alpha=1 - first_decay)
        self.adam_second_moment.mul_(second_decay).addcmul_(gradient, gradient, value=1 - second_decay)

        first_correction = 1 - first_decay**step
        second_correction = 1 - second_decay**step
        denominator = (self.adam_second_moment.sqrt() / math.sqrt(second_correction)).add_(ADAM_EPSILON)
        self.logits.addcdiv_(self.adam_first_moment, denominator, value=-self.logit_learning_rate / first_correction)

    def loss(self, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        """Return sum_k w_k L_k after updating the logits with this step's losses, when the previous step was followed by an optimiser step."""
        losses = self._checked_losses(context)
        detached = losses.detach().to(self.logits)

        with torch.no_grad():
            if bool(self.has_previous_losses) and bool(self.optimizer_stepped):
                self.update_logits(detached)
            weights = famo_loss_weights(self.logits, detached)
            self.previous_losses.copy_(detached)
            self.has_previous_losses.fill_(True)
            self.optimizer_stepped.fill_(False)

        total = (weights.to(losses.dtype) * losses).sum()
        logged = weights_logged(self.tasks, weights)
        softmax_weights = torch.softmax(self.logits, dim=0).cpu().tolist()
        logged.update({f"softmax_weight/{task}": value for task, value in zip(self.tasks, softmax_weights)})
        return total, logged

    def after_optimizer_step(self) -> None:
        """Mark that the model moved since the recorded losses, so the next step's losses complete a logit update."""
        if bool(self.has_previous_losses):
            self.optimizer_stepped.fill_(True)

    def needs_losses_after_step(self) -> bool:
        return self.logit_update == "same-batch"

    def losses_after_step(self, task_losses: dict[str, torch.Tensor]) -> None:
        """Update the logits with the step's losses recomputed on the same batch, when ``logit_update`` is "same-batch"."""
        if self.needs_losses_after_step() and bool(self.optimizer_stepped):
            self.update_logits(torch.stack([task_losses[task].detach() for task in self.tasks]))

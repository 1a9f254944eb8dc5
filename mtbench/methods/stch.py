"""Smooth Tchebycheff scalarisation: a log-sum-exp that smooths the largest normalised log loss."""

import math
import warnings

import torch

from mtbench.errors import MtbenchError
from mtbench.methods.base import Hyperparameter, Method, StepContext
from mtbench.methods.gradient_method import weights_logged
from mtbench.methods.registry import register_method

# Added to each (normalised) loss before the logarithm, as in the authors' multi-task code,
# so that a loss of exactly 0 gives log(1e-20) = -46.05 and not minus infinity.
LOG_EPSILON = 1e-20


def smooth_tchebycheff(
    values: torch.Tensor,
    mu: float,
    preferences: torch.Tensor | None = None,
    ideal_point: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return mu log sum_k exp(lambda_k (f_k - z_k) / mu) for the objective values f.

    ``preferences`` lambda defaults to 1 for every objective and
    ``ideal_point`` z to 0. The result is computed with ``torch.logsumexp``,
    so large values or a small ``mu`` do not overflow. It lies in
    [max_k a_k, max_k a_k + mu log K] for a_k = lambda_k (f_k - z_k), so it
    tends to the Tchebycheff max_k a_k as mu -> 0. As mu grows, its gradient
    weights softmax(a / mu) tend to 1/K and the result minus mu log K tends to
    the mean of a. Values (0, ln 3) give ln 4 with mu = 1 and
    0.5 ln 10 with mu = 0.5.
    """
    shifted = values if ideal_point is None else values - ideal_point
    weighted = shifted if preferences is None else preferences * shifted
    return mu * torch.logsumexp(weighted / mu, dim=0)


def _check_mu(value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise MtbenchError(f"Invalid mu {value} for method 'stch': use a finite number > 0 (the authors use 1.0).")
    return value


def _epochs(count: int) -> str:
    return "1 epoch" if count == 1 else f"{count} epochs"


def _check_warmup_epochs(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise MtbenchError(
            f"Invalid warmup_epochs {value!r} for method 'stch': use a whole number >= 0 "
            "(5 matches the authors' multi-task code, 0 starts STCH at the first step without normalisation)."
        )
    return int(value)


@register_method
class SmoothTchebycheff(Method):
    """Minimise K mu log sum_k exp(log(L_k / n_k) / mu) after a warm-up on sum_k log L_k.

    From "Smooth Tchebycheff Scalarization for Multi-Objective Optimization"
    (Lin, Zhang, Yang, Liu, Wang and Zhang, ICML 2024). The Tchebycheff
    scalarisation max_k lambda_k (f_k - z_k) minimises the worst objective
    relative to an ideal point z. Its smooth version, :func:`smooth_tchebycheff`,
    replaces the max by mu times a log-sum-exp, which is differentiable and
    gives task k the gradient weight softmax(lambda (f - z) / mu)_k.

    mtbench follows the authors' multi-task code (the ``STCH`` weighting of
    their LibMTL fork), with epochs counted from 1:

    1. Epochs 1 to ``warmup_epochs`` minimise sum_k log(L_k + 1e-20), every
       log loss with weight 1.
    2. The mean of each task's per-step loss over epoch ``warmup_epochs``
       becomes n_k, which the authors call the nadir point.
    3. From the next epoch on, f_k = log(L_k / n_k + 1e-20), with preferences
       lambda_k = 1 and ideal point z_k = 0, and the objective is
       K mu log sum_k exp(f_k / mu). The factor K, the authors' too, makes the
       gradient weights K softmax(f / mu) sum to K, as in the warm-up.

    The logarithm makes the objective invariant to the scale of each loss,
    and z = 0 means that a task reaches its ideal when its loss equals its
    mean over the nadir epoch. ``warmup_epochs = 0`` skips the warm-up and
    uses n_k = 1, so STCH acts on log(L_k + 1e-20) from the first step.

    Hyper-parameters (defaults of the authors' multi-task code): ``mu`` 1.0,
    the smoothing parameter, and ``warmup_epochs`` 5. The authors' option
    ``STCH_warmup_epoch = 4`` counts epochs from 0, so their STCH starts in the
    sixth epoch, as it does here with 5. With mtbench's 10 MultiDigitMNIST
    epochs this leaves 5 epochs of STCH.

    Edge cases. A loss of 0 gives f_k = -46.05, a finite value whose softmax
    weight is close to 0. A negative or non-finite loss raises MtbenchError,
    because STCH takes its logarithm. A task whose mean loss over the nadir
    epoch is 0 has no scale, so its n_k is 1 and its loss is not normalised.
    Identical normalised losses give equal weights. With a single task the
    objective is f_1 and the weight 1. STCH is a loss-weighting method: it
    needs no task gradients and has no ``gradients`` option.

    State saved in checkpoints, as buffers: the running sum and step count of
    the nadir epoch, n and whether n is set. Logged per step:
    ``weight/<task>``, the weight of f_k (1 in the warm-up, then
    K softmax(f / mu)_k).
    """

    name = "stch"
    title = "Lin, Zhang, Yang, Liu, Wang and Zhang, 2024: Smooth Tchebycheff Scalarization for Multi-Objective Optimization"
    hyperparameters = (
        Hyperparameter(
            "mu",
            float,
            1.0,
            "smoothing parameter of the log-sum-exp over the log losses (dimensionless, > 0): "
            "small values approach the largest log loss, large values their mean",
        ),
        Hyperparameter(
            "warmup_epochs",
            int,
            5,
            "epochs that minimise sum_k log L_k before STCH starts (>= 0), the last of which estimates the nadir "
            "point that normalises each loss (0: no warm-up and no normalisation)",
        ),
    )

    def __init__(self, tasks: list[str], mu: float = 1.0, warmup_epochs: int = 5) -> None:
        super().__init__(tasks)
        self.mu = _check_mu(mu)
        self.warmup_epochs = _check_warmup_epochs(warmup_epochs)

        task_count = len(self.tasks)
        self.register_buffer("nadir_loss_sums", torch.zeros(task_count, dtype=torch.float64))
        self.register_buffer("nadir_step_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("nadir_point", torch.ones(task_count))
        self.register_buffer("nadir_recorded", torch.tensor(False))

    def check_epochs(self, epochs: int) -> None:
        """Warn when the warm-up covers every epoch, so that the run never reaches the STCH objective."""
        if 0 < self.warmup_epochs and epochs <= self.warmup_epochs:
            warnings.warn(
                f"STCH's warm-up ({_epochs(self.warmup_epochs)}) lasts the whole run ({_epochs(epochs)}), so the run trains "
                "on the sum of log losses only. Train for more epochs, or lower --param warmup_epochs.",
                RuntimeWarning,
                stacklevel=2,
            )

    def _checked_losses(self, context: StepContext) -> torch.Tensor:
        """Return the step's task losses in the method's task order. Raise MtbenchError for a negative or non-finite one."""
        if context.tasks != self.tasks:
            raise MtbenchError(
                f"STCH was built for the tasks {self.tasks} but the training step has {context.tasks}. "
                "Build the method with the run's tasks, in the same order."
            )
        losses = context.loss_vector(self.tasks)
        detached = losses.detach()
        invalid = ~torch.isfinite(detached) | (detached < 0)
        if bool(invalid.any()):
            index = int(invalid.nonzero()[0])
            raise MtbenchError(
                f"STCH needs finite, non-negative task losses, but task '{self.tasks[index]}' has loss "
                f"{float(detached[index])} at training step {context.step}. "
                "STCH takes the logarithm of each loss: use a loss that is at least 0."
            )
        return losses

    def _record_nadir_point(self, epoch: int) -> None:
        """Set n to the mean losses of the nadir epoch, or to 1 without warm-up. Raise MtbenchError when that epoch had no step."""
        if self.warmup_epochs > 0:
            count = int(self.nadir_step_count)
            if count == 0:
                raise MtbenchError(
                    f"STCH reached epoch {epoch} without a training step in epoch {self.warmup_epochs}, whose mean "
                    "losses normalise every later loss. Resume from a checkpoint written after that epoch, "
                    "or start the run again."
                )
            means = self.nadir_loss_sums / count
            self.nadir_point.copy_(torch.where(means > 0, means, torch.ones_like(means)))
        self.nadir_recorded.fill_(True)

    def loss(self, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        losses = self._checked_losses(context)
        task_count = len(self.tasks)

        if context.epoch <= self.warmup_epochs:
            if context.epoch == self.warmup_epochs:
                with torch.no_grad():
                    self.nadir_loss_sums += losses.detach().to(self.nadir_loss_sums)
                    self.nadir_step_count += 1
            total = torch.log(losses + LOG_EPSILON).sum()
            return total, weights_logged(self.tasks, torch.ones(task_count))

        if not bool(self.nadir_recorded):
            self._record_nadir_point(context.epoch)
        normalised_logs = torch.log(losses / self.nadir_point.to(losses) + LOG_EPSILON)
        total = task_count * smooth_tchebycheff(normalised_logs, self.mu)
        weights = task_count * torch.softmax(normalised_logs.detach() / self.mu, dim=0)
        return total, weights_logged(self.tasks, weights)

"""DB-MTL: log-transformed losses, and averaged task gradients rescaled to the largest norm."""

import dataclasses
import math

import torch

from mtbench.errors import MtbenchError
from mtbench.methods._gram import row_norms, sum_of_unit_rows
from mtbench.methods._state import adopt_buffer_shapes
from mtbench.methods.base import Hyperparameter, StepContext
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod, weights_logged
from mtbench.methods.registry import register_method

DEFAULT_BETA = 0.9
DEFAULT_BETA_SIGMA = 0.0

# Added to each task loss before the logarithm, as in the authors' LibMTL implementation, so a zero loss stays finite.
LOG_EPSILON = 1e-8


def log_task_losses(task_losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return log(L_k + LOG_EPSILON) for every task, keeping the graphs.

    The gradient of each result is grad L_k / (L_k + LOG_EPSILON), so
    multiplying a task's loss by a constant leaves its gradient unchanged.
    Raises MtbenchError for a negative loss, whose logarithm is undefined.
    """
    log_losses = {}
    for task, loss in task_losses.items():
        value = float(loss.detach())
        if value < 0.0:
            raise MtbenchError(
                f"DB-MTL takes the logarithm of each task loss, but the loss of task '{task}' is {value}. "
                "Use a non-negative loss for every task, or choose another method."
            )
        log_losses[task] = torch.log(loss + LOG_EPSILON)
    return log_losses


@register_method
class DBMTL(GradientMethod):
    """Follow d = max_j ||m_j|| sum_k m_k / ||m_k||, with m_k the moving average of grad log L_k.

    From "Dual-Balancing for Multi-Task Learning" (Lin, Jiang, Ye, Zhang,
    Chen, Chen, Liu, Tsang and Kwok, 2023, arXiv:2308.12029). Two balancing steps:

    1. Loss scale: every task loss is replaced by log(L_k + 1e-8), so task k
       contributes h_k = grad L_k / (L_k + 1e-8), whatever the unit of L_k.
       Each decoder receives the gradient of its own log loss.
    2. Gradient magnitude: at training step t (counted from 1) the moving
       average m_k = beta_t m_k + (1 - beta_t) h_k, with
       beta_t = beta / t^beta_sigma and m_k = 0 before the first step, is
       rescaled to the largest norm among the tasks:
       d = sum_k (max_j ||m_j|| / ||m_k||) m_k.

    TorchJD 0.18 has no DB-MTL, so it is written here. Hyper-parameters,
    with the defaults of LibMTL, which DB-MTL's first author develops:
    ``beta`` (0.9) and ``beta_sigma`` (0, a constant beta_t). Like LibMTL,
    mtbench starts the average at zero without bias correction, so the first
    direction is 1 - beta_1 times the rescaled log-loss gradients.
    NOTE: the defaults were not checked against the settings stated in the publication.

    Edge cases: a task whose averaged gradient is zero contributes nothing
    and logs the weight 0. All-zero gradients give a zero direction.
    Tiny gradients are normalised exactly (see :func:`sum_of_unit_rows`), and
    identical gradients give K m. A single task gives d = m.
    Negative losses raise MtbenchError.

    Logged per step: ``weight/<task>``, the factor max_j ||m_j|| / ||m_k||
    applied to the averaged gradient. The averages and the step count are
    buffers, saved in checkpoints.
    """

    name = "db-mtl"
    title = "Lin, Jiang, Ye, Zhang, Chen, Chen, Liu, Tsang and Kwok, 2023: Dual-Balancing for Multi-Task Learning"
    hyperparameters = (
        Hyperparameter(
            "beta",
            float,
            DEFAULT_BETA,
            "weight of the previous average in the moving average of each task's log-loss gradient, in [0, 1)",
        ),
        Hyperparameter(
            "beta_sigma",
            float,
            DEFAULT_BETA_SIGMA,
            "decay exponent: step t uses beta / t^beta_sigma (>= 0; 0 keeps beta constant)",
        ),
        GRADIENTS,
    )
    representation_refusal = (
        "it averages each task's gradient over training steps, and the representation gradients of "
        "different batches belong to different samples."
    )

    def __init__(
        self, tasks: list[str], beta: float = DEFAULT_BETA, beta_sigma: float = DEFAULT_BETA_SIGMA, gradients: str = "parameters"
    ) -> None:
        super().__init__(tasks, gradients)
        beta = float(beta)
        beta_sigma = float(beta_sigma)
        if not (math.isfinite(beta) and 0.0 <= beta < 1.0):
            raise MtbenchError(f"Invalid beta={beta} for method 'db-mtl': use a number in [0, 1), such as {DEFAULT_BETA}.")
        if not (math.isfinite(beta_sigma) and beta_sigma >= 0.0):
            raise MtbenchError(
                f"Invalid beta_sigma={beta_sigma} for method 'db-mtl': use a finite number >= 0 (0 keeps beta constant)."
            )
        self.beta = beta
        self.beta_sigma = beta_sigma

        # K x N once the first step has fixed N, the number of shared parameters.
        self.register_buffer("gradient_averages", torch.zeros(0))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def task_gradient_matrix(self, context: StepContext) -> torch.Tensor:
        """Return the gradients of log(L_k + 1e-8) and give each decoder the gradient of its own log loss.

        The trainer's cosine diagnostics reuse these rows. They are the loss
        gradients divided by L_k + 1e-8 > 0, so their cosines are unchanged.
        """
        log_context = dataclasses.replace(context, task_losses=log_task_losses(context.task_losses))
        return super().task_gradient_matrix(log_context)

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        gradients = gradients.detach().float()
        averages = self._averages_for(gradients)
        self.step.add_(1)
        beta_t = self.beta / int(self.step) ** self.beta_sigma
        # In place, so that the step creates no K x N tensor besides the first average.
        averages.mul_(beta_t).add_(gradients, alpha=1.0 - beta_t)
        self.gradient_averages = averages

        norms = row_norms(averages)
        largest = norms.max()
        direction = largest * sum_of_unit_rows(averages)

        # In float64 on the CPU, so a ratio beyond the float32 range still logs as a finite number.
        norms_double = norms.cpu().double()
        ratios = float(largest) / norms_double.clamp_min(1e-300)
        weights = torch.where(norms_double > 0, ratios, torch.zeros_like(norms_double))
        return direction, weights_logged(self.tasks, weights)

    def _averages_for(self, gradients: torch.Tensor) -> torch.Tensor:
        if self.gradient_averages.numel() == 0:
            return torch.zeros_like(gradients)
        if self.gradient_averages.shape != gradients.shape:
            raise MtbenchError(
                f"DB-MTL's gradient averages have shape {tuple(self.gradient_averages.shape)} but the task gradients have "
                f"shape {tuple(gradients.shape)}, so the method state belongs to another model. Build a new method for this model."
            )
        return self.gradient_averages.to(gradients.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        adopt_buffer_shapes(self, state_dict, prefix, ["gradient_averages"])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

"""GLS: the geometric loss strategy, the geometric mean of the task losses."""

import math

import torch

from mtbench.errors import MtbenchError
from mtbench.methods.base import Hyperparameter, Method, StepContext
from mtbench.methods.registry import register_method

DEFAULT_EPSILON = 1e-8

# Shared with the log-losses method, which bounds the losses in the same way.
EPSILON_HYPERPARAMETER = Hyperparameter(
    "epsilon",
    float,
    DEFAULT_EPSILON,
    "lower bound on each task loss before the logarithm, in the loss's unit; smaller losses pass no gradient",
)


def check_epsilon(value: float, method: str) -> float:
    """Return ``value`` as a float; raise MtbenchError unless it is finite and greater than 0."""
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise MtbenchError(
            f"Invalid epsilon {value} for method '{method}': use a finite number greater than 0 "
            f"(the default {DEFAULT_EPSILON:g} is the smallest loss value that is kept as it is)."
        )
    return value


def geometric_mean_loss(losses: torch.Tensor, epsilon: float = DEFAULT_EPSILON) -> torch.Tensor:
    """Return (prod_k max(L_k, epsilon))^(1/K) for the vector of K task losses ``losses``.

    The product is computed as exp(mean_k log L_k), so it neither overflows
    nor underflows for many tasks. Its derivative with respect to L_k is
    G / (K L_k), with G the geometric mean. A loss at or below ``epsilon``,
    0 and negative values included, is replaced by ``epsilon`` and passes no
    gradient, so every derivative stays finite. The other tasks keep the
    derivative G / (K L_k), with ``epsilon`` as that task's factor in G.

    Losses (1, 4) give 2 and losses (2, 8, 4) give 4.
    """
    clamped = losses.clamp(min=epsilon)
    return torch.exp(torch.log(clamped).mean())


@register_method
class GeometricLossStrategy(Method):
    """Minimise the geometric mean of the task losses, (prod_k L_k)^(1/K).

    From "MultiNet++: Multi-Stream Feature Aggregation and Geometric Loss
    Strategy for Multi-Task Learning" (Chennupati, Sistu, Yogamani and
    Rawashdeh, CVPR Workshops 2019). Task k receives the effective weight
    G / (K L_k), with G the geometric mean, so a task whose loss is small
    relative to the others receives a larger weight. Multiplying one task's
    loss by a constant c multiplies the total and its gradient by c^(1/K).
    There are no task weights to learn or tune.

    Hyper-parameter: ``epsilon``, the lower bound applied to each loss before
    the logarithm (see :func:`geometric_mean_loss`). The authors define no
    such bound; mtbench adds it so that a loss of 0 gives a finite gradient.
    """

    name = "gls"
    title = (
        "Chennupati, Sistu, Yogamani and Rawashdeh, 2019: MultiNet++: Multi-Stream Feature Aggregation "
        "and Geometric Loss Strategy for Multi-Task Learning"
    )
    hyperparameters = (EPSILON_HYPERPARAMETER,)

    def __init__(self, tasks: list[str], epsilon: float = DEFAULT_EPSILON) -> None:
        super().__init__(tasks)
        self.epsilon = check_epsilon(epsilon, self.name)

    def loss(self, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        losses = context.loss_vector()
        return geometric_mean_loss(losses, self.epsilon), {}

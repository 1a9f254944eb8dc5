"""Scale-invariant losses: the sum of the logarithms of the task losses."""

import torch

from mtbench.methods.base import Method, StepContext
from mtbench.methods.gls import DEFAULT_EPSILON, EPSILON_HYPERPARAMETER, check_epsilon
from mtbench.methods.registry import register_method


def log_loss_sum(losses: torch.Tensor, epsilon: float = DEFAULT_EPSILON) -> torch.Tensor:
    """Return sum_k log max(L_k, epsilon) for the vector of K task losses ``losses``.

    The derivative with respect to L_k is 1 / L_k, so the model receives
    sum_k grad L_k / L_k. Multiplying a task's loss by a constant c > 0
    adds log c to the result and changes no gradient. A loss at or
    below ``epsilon``, 0 and negative values included, is replaced by
    ``epsilon`` and passes no gradient, so every derivative stays finite.
    The result can be negative: it is minus infinity only in the limit
    that the clamp prevents.

    Losses (1, e) give 1.
    """
    return torch.log(losses.clamp(min=epsilon)).sum()


@register_method
class LogLosses(Method):
    """Minimise sum_k log L_k, which makes each step invariant to rescaling any task's loss.

    Navon et al. use this objective as the "scale-invariant" (SI) baseline
    in "Multi-Task Learning as a Bargaining Game" (ICML 2022). It is also the
    fixed point of IMTL-L in "Towards Impartial Multi-task Learning" (Liu et
    al., ICLR 2021): IMTL-L minimises sum_k (exp(s_k) L_k - s_k) over learned
    scales s_k, whose optimum exp(s_k) = 1 / L_k turns the model's gradient
    into sum_k grad L_k / L_k, the gradient of sum_k log L_k.

    Task k receives the effective weight 1 / L_k. There are no task weights
    to learn or tune.

    Hyper-parameter: ``epsilon``, the lower bound applied to each loss before
    the logarithm (see :func:`log_loss_sum`). The references define no such
    bound; mtbench adds it so that a loss of 0 gives a finite gradient.
    """

    name = "log-losses"
    title = "Navon et al., 2022: Multi-Task Learning as a Bargaining Game (scale-invariant baseline, sum of log losses)"
    hyperparameters = (EPSILON_HYPERPARAMETER,)

    def __init__(self, tasks: list[str], epsilon: float = DEFAULT_EPSILON) -> None:
        super().__init__(tasks)
        self.epsilon = check_epsilon(epsilon, self.name)

    def loss(self, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        losses = context.loss_vector()
        return log_loss_sum(losses, self.epsilon), {}

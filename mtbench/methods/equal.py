"""Equal weighting: the plain multi-task objective, the sum of the task losses."""

import torch

from mtbench.methods.base import Method, StepContext
from mtbench.methods.registry import register_method


@register_method
class EqualWeights(Method):
    """Minimise sum_k L_k with every task weight fixed to 1.

    This is the unregularised multi-task baseline ("No reg" in the MultiDigitMNIST
    table of "Regularizing Deep Multi-Task Networks using Orthogonal Gradients").
    It has no hyper-parameters; Dropout and BatchNorm variants are model options.
    """

    name = "equal"
    title = "Equal task weights (the unweighted sum of task losses)"

    def loss(self, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        return context.loss_vector().sum(), {}

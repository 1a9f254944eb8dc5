"""CosReg: a penalty on the squared cosines between task gradients."""

import math

import torch

from mtbench.errors import MtbenchError
from mtbench.methods.base import Hyperparameter, Method, StepContext
from mtbench.methods.registry import register_method
from mtbench.metrics.gradient_cosine import normalize_rows


def cosreg_penalty(gradients: torch.Tensor) -> torch.Tensor:
    """Return R = ||G G^T - I||_F^2 / (K (K - 1)) for the K x P task gradients ``gradients``.

    G contains the unit-normalised rows, so the diagonal of G G^T is 1 and R is
    the mean of cos^2 over ordered task pairs, in [0, 1]. mtbench sums the
    off-diagonal entries only, which equals the formula for non-zero rows and
    treats a zero gradient as orthogonal to the others instead of adding 1 for
    its zero diagonal entry. A single task has no pairs and gives R = 0.
    R stays differentiable when ``gradients`` carries a graph.

    Gradients (1, 0) and (1, 1) have cos^2 = 0.5, so R = 0.5.
    """
    task_count = gradients.shape[0]
    if task_count < 2:
        return gradients.sum() * 0.0

    unit = normalize_rows(gradients.float())
    gram = unit @ unit.T
    off_diagonal = gram - torch.diag_embed(torch.diagonal(gram))
    return off_diagonal.pow(2).sum() / (task_count * (task_count - 1))


@register_method
class CosReg(Method):
    """Minimise sum_k L_k + lambda * R, with R the mean squared cosine between task gradients.

    From "Regularizing Deep Multi-Task Networks using Orthogonal Gradients"
    (Suteu and Guo, 2019). Task gradients are taken with respect to the
    parameters of the last shared layer only, and R is differentiated through
    them (double backpropagation through the decoders). All task weights are 1.
    In the scheduled variant lambda is multiplied by the step's mean task loss,
    detached, so that the penalty follows the scale of the losses.

    Hyper-parameters: ``lambda`` (keyword ``lambda_``) and ``scheduled``. The
    authors use lambda = 10 with the schedule on NYUv2 and SUN RGB-D. They do
    not publish the MultiDigitMNIST value, so mtbench chooses it on validation.
    """

    name = "cosreg"
    title = "Suteu and Guo, 2019: Regularizing Deep Multi-Task Networks using Orthogonal Gradients"
    hyperparameters = (
        Hyperparameter("lambda", float, 1.0, "weight of the squared-cosine penalty (dimensionless)", argument="lambda_"),
        Hyperparameter("scheduled", bool, False, "multiply lambda by the detached mean task loss of each step"),
    )
    uses_task_gradients = True
    needs_double_backward = True

    def __init__(self, tasks: list[str], lambda_: float = 1.0, scheduled: bool = False) -> None:
        super().__init__(tasks)
        if not (math.isfinite(float(lambda_)) and float(lambda_) >= 0):
            raise MtbenchError(f"Invalid CosReg lambda {lambda_}: use a finite number >= 0, such as 1.")
        self.lambda_ = float(lambda_)
        self.scheduled = bool(scheduled)

    def loss(self, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        losses = context.loss_vector()
        gradients = context.last_shared_task_gradients(create_graph=True)
        penalty = cosreg_penalty(gradients)

        weight = self.lambda_
        if self.scheduled:
            weight = weight * losses.detach().mean()
        return losses.sum() + weight * penalty, {"penalty": float(penalty.detach())}

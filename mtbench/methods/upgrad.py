"""UPGrad: the mean of the task gradients, each projected onto the dual cone of all of them."""

import torch
from torchjd.aggregation import UPGradWeighting

from mtbench.errors import MtbenchError
from mtbench.methods._gram import check_finite_gradients, combine_rows, scaled_gram
from mtbench.methods.base import StepContext
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod, weights_logged
from mtbench.methods.registry import register_method


@register_method
class UPGrad(GradientMethod):
    """Average the task gradients after projecting each onto the cone of directions that conflict with none.

    From "Jacobian Descent for Multi-Objective Optimization" (Pierre Quinton
    and Valerian Rey, arXiv 2406.16232, 2024). The dual cone of the rows of G
    is C = {x : G x >= 0}, the directions whose inner product with every task
    gradient is non-negative. With pi(x) the Euclidean projection onto C,

        d = (1/K) sum_k pi(g_k),

    so d is in C and conflicts with no task gradient, and d = g when all
    gradients equal g. The publication proves pi(G^T u) = G^T w with
    w = argmin_{v >= u} v^T M v and M = G G^T, so d is a weighted sum of the
    task gradients whose weights come from K quadratic programs on M.

    TorchJD's ``UPGradWeighting`` solves them with quadprog on
    M / trace(M) + 1e-4 I, so the weights are exact to about 1e-4, the size
    of that regularisation. mtbench passes it the Gram matrix of G / max |G_ij| (see
    ``mtbench/methods/_gram.py``). That changes no weight, but it
    matters: TorchJD 0.18 replaces M by zero when trace(M) < 1e-4, that is
    when the Frobenius norm of G is below 0.01, and then returns the equal
    weights 1/K whatever the gradients.

    Hyper-parameter: ``gradients``, which must be "parameters". UPGrad
    rejects the shared representation (see ``representation_refusal``). The
    publication's UPGrad averages the projections with the uniform weights
    1/K, as here, so mtbench does not expose TorchJD's preference vector.

    Edge cases. All-zero gradients give weights 1/K and d = 0. A zero gradient
    constrains nothing, so the others are projected as if it were absent, and
    its own projection adds 0 to the mean. Identical gradients g, g give
    weights (1/2, 1/2) and d = g. Opposite gradients g, -g give the cone
    {x : g . x = 0}, weights (1, 1) and d = 0. Tiny gradients (1e-20) give
    the weights of their rescaled copies. A single task gets weight 1 and
    d = g_1. Logged per step: ``weight/<task>``.

    Gradients (1, 0) and (-1, 1) conflict. pi(g_1) = (1/2, 1/2) = g_1 + g_2 / 2
    and pi(g_2) = (0, 1) = g_1 + g_2, so the weights are (1, 3/4) and
    d = (1/4, 3/4).
    """

    name = "upgrad"
    title = "Quinton and Rey, 2024: Jacobian Descent for Multi-Objective Optimization"
    hyperparameters = (GRADIENTS,)
    supports_representation = False
    representation_refusal = (
        "UPGrad guarantees that its update conflicts with no task gradient, which holds only in the space where the "
        "projection onto the dual cone is taken. An update that conflicts with no gradient with respect to the "
        "representation can still conflict with a task's gradient with respect to the encoder parameters once it is "
        "propagated back through the encoder, because the encoder's Jacobian does not preserve inner products."
    )

    def __init__(self, tasks: list[str], gradients: str = "parameters") -> None:
        super().__init__(tasks, gradients)

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        check_finite_gradients(gradients, self.tasks, self.name)
        gramian, _ = scaled_gram(gradients)
        try:
            weights = UPGradWeighting()(gramian.cpu())
        except ValueError as error:
            raise MtbenchError(
                f"Method '{self.name}' failed to solve its quadratic programs at training step {context.step}: {error} "
                "The gradients are finite, so this is a numerical failure of quadprog. Lower the learning rate, "
                "or use another method."
            ) from error
        return combine_rows(weights, gradients), weights_logged(self.tasks, weights)

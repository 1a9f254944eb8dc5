"""Aligned-MTL: task gradients made orthogonal with equal norms before they are summed."""

import torch
from torchjd.aggregation import AlignedMTLWeighting

from mtbench.errors import MtbenchError
from mtbench.methods._gram import check_finite_gradients, combine_rows, scaled_gram
from mtbench.methods.base import Hyperparameter, StepContext
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod, weights_logged
from mtbench.methods.registry import register_method

SCALE_MODES = ("min", "median", "rmse")


@register_method
class AlignedMTL(GradientMethod):
    """Sum the task gradients after aligning them to orthogonal vectors with the smallest singular value as norm.

    From "Independent Component Alignment for Multi-Task Learning" (Dmitry
    Senushkin, Nikolay Patakin, Arseny Kuznetsov and Anton Konushin, CVPR
    2023), Algorithm 1. With M = G G^T = V diag(lambda) V^T, restricted to
    the R eigenvalues above max(lambda) * K * eps(float32), the balance
    matrix is

        B = sqrt(lambda_R) V diag(1 / sqrt(lambda)) V^T,

    For linearly independent gradients the aligned gradients, the rows of
    B G, are orthogonal with norm sigma_R = sqrt(lambda_R), the smallest
    singular value of G, so their matrix has condition number 1. The shared
    parameters receive d = sum_k (B G)_k = sum_k alpha_k g_k with
    alpha = B 1, the sum of the aligned gradients, as in the authors' code
    (task importance w_k = 1). Each decoder receives its own unscaled
    gradient, as with the authors' default ``scale_decoder_grad=False``.

    TorchJD's ``AlignedMTLWeighting`` computes alpha, with preference vector
    (1, ..., 1) in place of its default (1/K, ..., 1/K), so d is K times
    TorchJD's default output and equals the authors' sum. Its default scale
    mode "min" is the publication's choice and the authors' default. "median"
    and "rmse" (the square root of the mean eigenvalue) are the authors'
    other options. With ``gradients="representation"`` the method is the
    publication's Aligned-MTL-UB: the alignment acts on the gradients with
    respect to the shared representation, and the combined gradient there is
    propagated back through the encoder.

    Hyper-parameters: ``gradients`` ("parameters") and ``scale_mode``
    ("min"). The publication has no other.

    Edge cases. All-zero gradients give rank 0, B = I, alpha = (1, ..., 1)
    and d = 0. A zero gradient next to a non-zero one gets weight 0. Identical
    gradients g, g give alpha = (1, 1) and d = 2 g, and opposite gradients
    g, -g give alpha = (0, 0) and d = 0. Tiny gradients (1e-20) give the
    weights of their rescaled copies. A single task gets alpha = 1 and d = g_1.
    Logged per step: ``weight/<task>``, the alpha_k.

    Gradients (1, 0) and (0, 2): lambda = (4, 1), B = diag(1, 1/2),
    alpha = (1, 1/2) and d = (1, 1), the sum of the aligned (1, 0) and (0, 1).
    """

    name = "aligned-mtl"
    title = "Senushkin, Patakin, Kuznetsov and Konushin, 2023: Independent Component Alignment for Multi-Task Learning"
    hyperparameters = (
        GRADIENTS,
        Hyperparameter(
            "scale_mode",
            str,
            "min",
            "norm of the aligned gradients: 'min' (smallest singular value of G), 'median' or 'rmse' "
            "(square root of the median or mean eigenvalue of G G^T)",
        ),
    )
    supports_representation = True

    def __init__(self, tasks: list[str], gradients: str = "parameters", scale_mode: str = "min") -> None:
        super().__init__(tasks, gradients)
        if scale_mode not in SCALE_MODES:
            raise MtbenchError(
                f"Invalid value scale_mode={scale_mode!r} for method '{self.name}': use one of {', '.join(SCALE_MODES)} "
                "('min' is the published choice)."
            )
        self.scale_mode = scale_mode

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        check_finite_gradients(gradients, self.tasks, self.name)
        weighting = AlignedMTLWeighting(pref_vector=torch.ones(len(self.tasks)), scale_mode=self.scale_mode)
        gramian, _ = scaled_gram(gradients)
        weights = weighting(gramian.cpu())
        return combine_rows(weights, gradients), weights_logged(self.tasks, weights)

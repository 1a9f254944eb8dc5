"""ConFIG: an update direction with the same positive cosine to every task gradient."""

import torch
from torchjd.aggregation import ConFIG as ConFIGAggregator

from mtbench.methods._gram import scaled_gradients
from mtbench.methods.base import StepContext
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod
from mtbench.methods.registry import register_method


def config_direction(gradients: torch.Tensor) -> torch.Tensor:
    """Return g_c = (sum_i g_i . g_u) g_u for the K x N task gradients G.

    g_u is the unit vector along pinv(U) 1_K, where U contains the unit task
    gradients as rows and 1_K is the vector of K ones. TorchJD's ``ConFIG``
    aggregator computes it from G / s and the result is multiplied by s (see
    :mod:`mtbench.methods._gram`). A zero row has no unit vector
    and gets a zero row in U. When pinv(U) 1_K is zero, as for two opposite
    gradients, g_c is zero.

    G = [[1, 0], [-3, 4]] gives g_u = (1, 2) / sqrt(5), cos(g_i, g_u) = 1 / sqrt(5)
    for both tasks, and g_c = (1.2, 2.4).
    """
    scaled, scale = scaled_gradients(gradients, zero_negligible_rows=True)
    return ConFIGAggregator()(scaled) * scale


@register_method
class ConFIG(GradientMethod):
    """Update along the direction that has the same positive cosine with every task gradient.

    From "ConFIG: Towards Conflict-free Training of Physics Informed Neural
    Networks" (Qiang Liu, Mengyu Chu and Nils Thuerey, ICLR 2025). With U the
    matrix whose rows are the unit task gradients g_i / ||g_i||, the direction
    is g_u = pinv(U) 1_K / ||pinv(U) 1_K||, so U g_u has equal entries. Its
    length is the sum of the projections of the task gradients on it:
    g_c = (sum_i g_i . g_u) g_u. When the task gradients are linearly
    independent, every task gradient has a positive dot product with g_c.
    TorchJD (0.18) computes g_c, see :func:`config_direction`. Each decoder
    receives the gradient of its own task loss, unchanged.

    Hyper-parameters: only ``gradients``, and only "parameters" is accepted.
    Weights other than 1_K, which the authors' package offers, and the
    momentum variant M-ConFIG that the publication also describes are not
    offered.

    Edge cases: zero gradients give a zero update. A zero gradient among
    non-zero ones is left out, because U g_u cannot reach its entry of 1_K.
    Identical gradients give their sum. Two opposite gradients give a zero
    update. A single task gets its own gradient. Gradients scaled by 1e-20
    give the update scaled by 1e-20. A gradient whose norm is below about
    1e-19 times the largest entry of G counts as zero.
    """

    name = "config"
    title = "Liu, Chu and Thuerey, 2024: ConFIG: Towards Conflict-free Training of Physics Informed Neural Networks"
    hyperparameters = (GRADIENTS,)
    supports_representation = False
    representation_refusal = (
        "ConFIG gives the update the same positive cosine with every task gradient only in the space where it "
        "is computed, and the backward pass through the encoder does not preserve cosines."
    )

    def __init__(self, tasks: list[str], gradients: str = "parameters") -> None:
        super().__init__(tasks, gradients)

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        return config_direction(gradients), {}

"""PCGrad: project each task gradient onto the normal planes of the task gradients it conflicts with."""

import torch
from torchjd.aggregation import PCGradWeighting

from mtbench.methods._gram import scaled_gram
from mtbench.methods.base import StepContext
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod, weights_logged
from mtbench.methods.registry import register_method


def pcgrad_weights(gradients: torch.Tensor) -> torch.Tensor:
    """Return the task weights w for which w @ G is the PCGrad direction sum_i g_i^PC.

    ``gradients`` is the K x N float32 matrix G of task gradients. Each g_i^PC
    is a combination of the rows of G, so the sum of the projected gradients
    is a weighted sum of the original ones. TorchJD's ``PCGradWeighting``
    computes the weights from the Gram matrix of G / s (see
    :mod:`mtbench.methods._gram`), which gives the same weights
    as G itself. The order of the other tasks is drawn with ``torch.randperm``
    from the global torch RNG, once per task.

    G = [[1, 0], [-0.5, 1]] gives w = (1.5, 1.4) and the direction (0.8, 1.4).
    """
    gram, _ = scaled_gram(gradients, zero_negligible_rows=True)
    return PCGradWeighting()(gram).to(gradients.dtype)


@register_method
class PCGrad(GradientMethod):
    """Sum the task gradients after removing, from each, its components that conflict with the others.

    From "Gradient Surgery for Multi-Task Learning" (Tianhe Yu, Saurabh Kumar,
    Abhishek Gupta, Sergey Levine, Karol Hausman and Chelsea Finn, NeurIPS
    2020). For each task i, g_i^PC starts as g_i. The other tasks j are
    visited in a random order, drawn anew for each i. Whenever
    g_i^PC . g_j < 0, g_i^PC is projected onto the normal plane of the
    original g_j::

        g_i^PC <- g_i^PC - (g_i^PC . g_j / ||g_j||^2) g_j

    The update of the shared parameters is sum_i g_i^PC, the sum and not the
    mean, as in the authors' TensorFlow code. TorchJD (0.18) computes the
    weights, see :func:`pcgrad_weights`. Each decoder receives the gradient of
    its own task loss, unchanged.

    Hyper-parameters: only ``gradients``, and only "parameters" is accepted.
    Logged per step: ``weight/<task>``, the weight of each original g_k in the
    update.

    Edge cases: a zero task gradient conflicts with nothing, so nothing is
    projected onto it. Identical gradients do not conflict, and the update is
    their sum. Two opposite gradients project each other to zero, so the
    update is zero. A single task gets its own gradient. Gradients scaled by
    1e-20 give the same weights as unscaled ones. A gradient whose
    norm is below about 1e-19 times the largest entry of G counts as zero
    when the others are projected.
    """

    name = "pcgrad"
    title = "Yu, Kumar, Gupta, Levine, Hausman and Finn, 2020: Gradient Surgery for Multi-Task Learning"
    hyperparameters = (GRADIENTS,)
    supports_representation = False
    representation_refusal = (
        "PCGrad removes conflicts between the gradients of the shared parameters, and a projection computed "
        "at the shared representation does not remove them after the backward pass through the encoder."
    )

    def __init__(self, tasks: list[str], gradients: str = "parameters") -> None:
        super().__init__(tasks, gradients)

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        weights = pcgrad_weights(gradients)
        return weights @ gradients, weights_logged(self.tasks, weights)

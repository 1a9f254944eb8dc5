"""GradVac: move each pairwise gradient cosine up to an exponential moving average of past cosines."""

import math
import warnings

import torch

from mtbench.errors import MtbenchError
from mtbench.methods._gram import scaled_gram
from mtbench.methods.base import Hyperparameter, StepContext
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod, weights_logged
from mtbench.methods.registry import register_method


def vaccine_coefficient(norm_i: float, norm_j: float, cosine: float, target: float) -> float:
    """Return w such that g_i + w g_j has the cosine ``target`` with g_j, for cos(g_i, g_j) = ``cosine``.

    w = ||g_i|| (t sqrt(1 - c^2) - c sqrt(1 - t^2)) / (||g_j|| sqrt(1 - t^2)) for
    c = ``cosine`` and t = ``target``, both in [-1, 1] and t < 1. With
    ||g_i|| = 1, ||g_j|| = 2, c = 0 and t = 0.6: w = 0.6 / (2 * 0.8) = 0.375.
    """
    sine = math.sqrt(max(1.0 - cosine * cosine, 0.0))
    target_sine = math.sqrt(max(1.0 - target * target, 0.0))
    return norm_i * (target * sine - cosine * target_sine) / (norm_j * target_sine)


def gradvac_weights(gram: torch.Tensor, targets: torch.Tensor, beta: float) -> torch.Tensor:
    """Return the task weights w for which w @ G is the GradVac direction, and update ``targets``.

    ``gram`` is the K x K Gram matrix of the task gradients G (any positive
    scale of G gives the same weights) and ``targets`` the K x K cosine
    targets phi_hat, which are updated in place:
    phi_hat_ij <- (1 - beta) phi_hat_ij + beta phi_ij. Each g_i^PC is kept as
    coefficients over the rows of G, so its norms and dot products follow
    from ``gram``. The order of the other tasks is drawn with
    ``torch.randperm`` from the global torch RNG, once per task.

    A pair in which g_i^PC or g_j is zero has no cosine: it is neither
    corrected nor used to update phi_hat_ij. A target of exactly 1 would need
    an infinite coefficient, so such a pair is not corrected and a warning
    is issued, while phi_hat_ij is still updated.
    """
    gram = gram.detach().to(device="cpu", dtype=torch.float32)
    cpu_targets = targets.detach().to(device="cpu", dtype=torch.float32)
    task_count = gram.shape[0]
    coefficients = torch.eye(task_count)

    for i in range(task_count):
        others = [j for j in range(task_count) if j != i]
        order = torch.randperm(len(others)).tolist()
        for position in order:
            j = others[position]
            dots = coefficients[i] @ gram
            norm_i = math.sqrt(max(float(dots @ coefficients[i]), 0.0))
            norm_j = math.sqrt(max(float(gram[j, j]), 0.0))
            if norm_i == 0.0 or norm_j == 0.0:
                continue

            cosine = min(max(float(dots[j]) / (norm_i * norm_j), -1.0), 1.0)
            target = float(cpu_targets[i, j])
            if cosine < target:
                if target >= 1.0:
                    warnings.warn(
                        f"GradVac cosine target of tasks {i} and {j} is 1, which no finite correction reaches; "
                        "the pair is left uncorrected in this step.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                else:
                    coefficients[i, j] += vaccine_coefficient(norm_i, norm_j, cosine, target)
            cpu_targets[i, j] = (1.0 - beta) * target + beta * cosine

    targets.copy_(cpu_targets)
    return coefficients.sum(dim=0)


@register_method
class GradVac(GradientMethod):
    """Raise the cosine of each task gradient with every other one to an adaptive target, then sum.

    From "Gradient Vaccine: Investigating and Improving Multi-task
    Optimization in Massively Multilingual Models" (Zirui Wang, Yulia
    Tsvetkov, Orhan Firat and Yuan Cao, ICLR 2021). For each task i, g_i^PC
    starts as g_i and the other tasks j are visited in a random order, drawn
    anew for each i. With phi_ij the cosine of g_i^PC and the original g_j,
    and phi_hat_ij its target:

    - if phi_ij < phi_hat_ij, g_i^PC <- g_i^PC + w g_j with
      w = ||g_i^PC|| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 - phi_hat^2)) / (||g_j|| sqrt(1 - phi_hat^2)),
      which makes the cosine exactly phi_hat_ij;
    - then phi_hat_ij <- (1 - beta) phi_hat_ij + beta phi_ij, with the cosine
      from before the correction.

    The targets start at 0, so the first step is PCGrad. The update of the
    shared parameters is sum_i g_i^PC. The publication applies GradVac per
    model component (from the whole model down to single parameter
    matrices), while mtbench treats all shared parameters as one component.
    The targets are the buffer ``cosine_targets`` (K x K, row i and column j
    for phi_hat_ij), saved in checkpoints.

    mtbench computes GradVac itself. TorchJD (0.18) has a GradVac aggregator,
    but it keeps the targets in a buffer that is None until its first call,
    so a freshly built aggregator rejects them in ``load_state_dict``. Even
    targets assigned by hand are reset to zero by the first call of a new
    instance, because a private state key starts as None. Its results agree
    with this implementation up to the 1e-8 it adds to denominators.

    Hyper-parameters: ``beta``, the EMA rate of the targets. The authors use
    beta = 0.01. TorchJD and LibMTL default to 0.5. ``gradients``: only
    "parameters" is accepted.

    Logged per step: ``weight/<task>``, the weight of each original g_k in the
    update.

    Edge cases: a zero task gradient has no cosine, so its pairs are neither
    corrected nor used to update the targets. Identical gradients have cosine
    1 and are never corrected. Two opposite gradients are first projected to
    zero as in PCGrad, and from then on their targets move towards -1. A
    single task gets its own gradient. Gradients scaled by 1e-20 give the
    same weights as unscaled ones. A gradient whose norm is below about 1e-19
    times the largest entry of G counts as zero.
    """

    name = "gradvac"
    title = (
        "Wang, Tsvetkov, Firat and Cao, 2021: Gradient Vaccine: Investigating and Improving "
        "Multi-task Optimization in Massively Multilingual Models"
    )
    # NOTE: the default 0.01 has not been checked against the text of the publication.
    hyperparameters = (
        Hyperparameter(
            "beta",
            float,
            0.01,
            "rate of the exponential moving average of each pairwise cosine that sets its target "
            "(dimensionless, in [0, 1]; 0 keeps the targets at 0)",
        ),
        GRADIENTS,
    )
    supports_representation = False
    representation_refusal = (
        "GradVac aligns the gradients of the shared parameters and tracks their cosines, and cosines at the "
        "shared representation are different quantities that the backward pass through the encoder does not preserve."
    )

    def __init__(self, tasks: list[str], beta: float = 0.01, gradients: str = "parameters") -> None:
        super().__init__(tasks, gradients)
        beta = float(beta)
        if not (math.isfinite(beta) and 0.0 <= beta <= 1.0):
            raise MtbenchError(f"Invalid GradVac beta {beta}: use a number in [0, 1], such as the published 0.01.")
        self.beta = beta
        task_count = len(self.tasks)
        self.register_buffer("cosine_targets", torch.zeros(task_count, task_count))

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        gram, _ = scaled_gram(gradients, zero_negligible_rows=True)
        weights = gradvac_weights(gram, self.cosine_targets, self.beta).to(gradients.device, gradients.dtype)
        return weights @ gradients, weights_logged(self.tasks, weights)

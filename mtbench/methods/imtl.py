"""IMTL: learned loss scales (IMTL-L) and closed-form gradient weights with equal projections (IMTL-G)."""

import dataclasses
import warnings

import torch
from torch import nn

from mtbench.errors import MtbenchError
from mtbench.methods._gram import check_finite_gradients, combine_rows, scaled_gram
from mtbench.methods.base import StepContext
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod, weights_logged
from mtbench.methods.registry import register_method

# Eigenvalues of the Gram matrix below this fraction of the largest count as zero. Its entries are
# float32 sums, accurate to about 1e-7 relative, so smaller eigenvalues are rounding noise.
RANK_TOLERANCE = 1e-6

# When less than this fraction of the squared norm of n = (||g_1||, ..., ||g_K||) lies in the range
# of the Gram matrix, no combination of the gradients has a positive projection on every task
# gradient (opposite gradients g and -g are the typical case), and the weights are zero.
RANGE_TOLERANCE = 1e-6

# A weight sum sum_k v_k at or below this fraction of sum_k |v_k| counts as not positive.
SUM_TOLERANCE = 1e-6

# After every optimiser step each s_k is projected onto [-LOG_SCALE_BOUND, LOG_SCALE_BOUND], so the
# loss scale exp(s_k) stays within [4.5e-5, 22026]. Without the bound a task whose loss reaches 0
# drives s_k up by one learning rate per step until exp(s_k) overflows float32.
LOG_SCALE_BOUND = 10.0


def imtl_g_weights(gramian: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Return IMTL-G's weights for the K x K Gram matrix M = G G^T, and whether they exist.

    IMTL-G looks for d = sum_k alpha_k g_k with sum_k alpha_k = 1 whose
    projection d . u_k onto every unit gradient u_k = g_k / ||g_k|| is the
    same. Since d . u_k = (M alpha)_k / ||g_k||, the condition is
    M alpha = c n with n_k = ||g_k||, so alpha = v / sum(v) with v = M^+ n.
    For linearly independent gradients this is the publication's closed form
    alpha_2..K = g_1 U^T (D U^T)^-1. M^+ is the pseudo-inverse, with
    eigenvalues below ``RANK_TOLERANCE`` of the largest treated as zero, so
    dependent gradients get the least-squares solution. M is solved in
    float64, which only removes rounding from a K x K problem.

    The weights are zero, and the second value False, when G is zero, when n
    has almost no component in the range of M (``RANGE_TOLERANCE``, as for
    opposite gradients), or when sum(v) is not positive (``SUM_TOLERANCE``).
    In the last case, which needs K >= 3, alpha = v / sum(v) would give every
    task the same negative projection, so the update would increase every
    task loss to first order.

    Gradients (1, 0) and (0, 2): M = diag(1, 4), n = (1, 2), v = (1, 1/2) and
    alpha = (2/3, 1/3), so d = (2/3, 2/3) projects 2/3 onto both tasks.
    """
    matrix = gramian.double()
    norms = matrix.diagonal().clamp_min(0).sqrt()
    zero = torch.zeros(matrix.shape[0], dtype=torch.float32)
    if not bool((norms > 0).any()):
        return zero, True

    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    significant = eigenvalues > RANK_TOLERANCE * eigenvalues.max()
    basis = eigenvectors[:, significant]
    coordinates = basis.T @ norms
    if coordinates.square().sum() < RANGE_TOLERANCE * norms.square().sum():
        return zero, True

    solution = basis @ (coordinates / eigenvalues[significant])
    total = solution.sum()
    if total <= SUM_TOLERANCE * solution.abs().sum():
        return zero, False
    return (solution / total).float(), True


@register_method
class IMTL(GradientMethod):
    """Hybrid IMTL: learned loss scales exp(s_k) for every parameter, and IMTL-G weights for the shared ones.

    From "Towards Impartial Multi-task Learning" (Liyang Liu, Yi Li, Zhanghui
    Kuang, Jing-Hao Xue, Yimin Chen, Wenming Yang, Qingmin Liao and Wayne
    Zhang, ICLR 2021). mtbench implements the hybrid IMTL, the publication's
    full method, as LibMTL does. Each step:

    1. IMTL-L: task k has a learnable s_k, starting at 0, and the scaled loss
       exp(s_k) L_k - s_k. The gradient exp(s_k) L_k - 1 goes to s_k, whose
       optimum makes every scaled loss exp(s_k) L_k equal to 1. The model is
       trained on exp(s_k) L_k with exp(s_k) held constant, so every decoder
       receives exp(s_k) grad L_k.
    2. IMTL-G: the task gradients g_k of the scaled losses give the weights
       of :func:`imtl_g_weights`, and the shared parameters receive
       d = sum_k alpha_k g_k, whose projection onto every g_k / ||g_k|| is the
       same.

    The s_k are parameters of this method, so the trainer's Adam updates them
    with the model at the run's learning rate, and checkpoints save them.
    After each optimiser step they are clamped to [-LOG_SCALE_BOUND,
    LOG_SCALE_BOUND]. IMTL-G's weights are computed by hand, because
    TorchJD 0.18's ``IMTLGWeighting`` treats only |sum(v)| < 1e-12 as
    degenerate. In float32 it returns weights such as (-1, 2) for opposite
    gradients (1, 0) and (-1, 0), and it keeps weights whose sum(v) is
    negative.

    Hyper-parameter: ``gradients`` ("parameters"). The publication has no
    other hyper-parameter. With "representation" the g_k are gradients with
    respect to the shared feature, as in the publication's algorithm.

    Edge cases. All-zero gradients and opposite gradients g, -g give alpha = 0
    and d = 0. A zero gradient next to non-zero ones gets weight 0, and the
    others are balanced among themselves. Identical gradients g, g give
    alpha = (1/2, 1/2) and d = g. Tiny gradients (1e-20) give the weights of
    their rescaled copies. A single task gets alpha = 1. When no weights
    summing to 1 give a positive projection (K >= 3), the shared parameters
    get no update for that step, and a warning is shown once.

    Logged per step: ``weight/<task>``, the alpha_k, and ``loss_scale/<task>``,
    the exp(s_k) used in that step.
    """

    name = "imtl"
    title = "Liu, Li, Kuang, Xue, Chen, Yang, Liao and Zhang, 2021: Towards Impartial Multi-task Learning"
    hyperparameters = (GRADIENTS,)
    supports_representation = True

    def __init__(self, tasks: list[str], gradients: str = "parameters") -> None:
        super().__init__(tasks, gradients)
        self.log_scales = nn.Parameter(torch.zeros(len(self.tasks)))
        self._warned_no_weights = False

    def fills_last_shared_gradients(self) -> bool:
        # backward() computes the gradients of the scaled losses, so the trainer takes the unscaled ones itself.
        return False

    def backward(self, context: StepContext) -> dict[str, float]:
        """Write exp(s_k) L_k - 1 into the gradient of s_k, then apply IMTL-G to the scaled losses exp(s_k) L_k.

        Raises MtbenchError when the step's tasks differ from the tasks the method was built for.
        """
        if context.tasks != self.tasks:
            raise MtbenchError(
                f"Method '{self.name}' was built for the tasks {self.tasks} but the training step has {context.tasks}."
            )
        losses = context.loss_vector(self.tasks)
        scales = self.log_scales.exp()

        scale_objective = (scales * losses.detach().to(scales.dtype) - self.log_scales).sum()
        scale_objective.backward()

        detached_scales = scales.detach()
        scaled_losses = {
            task: detached_scales[index].to(loss.dtype) * loss for index, (task, loss) in enumerate(context.task_losses.items())
        }
        logged = super().backward(dataclasses.replace(context, task_losses=scaled_losses))
        logged.update({f"loss_scale/{task}": float(scale) for task, scale in zip(self.tasks, detached_scales)})
        return logged

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        check_finite_gradients(gradients, self.tasks, self.name)
        gramian, _ = scaled_gram(gradients)
        weights, found = imtl_g_weights(gramian.cpu())
        if not found and not self._warned_no_weights:
            self._warned_no_weights = True
            warnings.warn(
                f"IMTL-G found no task weights summing to 1 whose combined gradient has a positive projection on "
                f"every task gradient (step {context.step}), so the shared parameters get no update in such steps. "
                "This warning is shown once per run.",
                stacklevel=2,
            )
        return combine_rows(weights, gradients), weights_logged(self.tasks, weights)

    def after_optimizer_step(self) -> None:
        """Clamp every s_k to [-LOG_SCALE_BOUND, LOG_SCALE_BOUND]."""
        with torch.no_grad():
            self.log_scales.clamp_(-LOG_SCALE_BOUND, LOG_SCALE_BOUND)

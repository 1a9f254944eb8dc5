"""GradDrop: keep, at each shared activation, only the task gradients of one randomly chosen sign."""

import math
from dataclasses import replace

import torch

from mtbench.errors import MtbenchError
from mtbench.methods.base import Hyperparameter, StepContext
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod
from mtbench.methods.registry import register_method


def positive_sign_purity(signals: torch.Tensor) -> torch.Tensor:
    """Return P = 0.5 (1 + sum_i S_i / sum_i |S_i|) for each column of the K x F matrix ``signals``.

    P is 1 where every task's signal is positive, 0 where every one is
    negative, and in between otherwise. A column whose signals are all zero
    gets P = 0.5, which has no effect because zero signals are always kept
    (see :func:`sign_masks`).
    Signals (1, 2) and (-2, 1) in the columns of [[1, -2], [2, 1]] give P = (1, 1/3).
    """
    total = signals.sum(dim=0)
    magnitude = signals.abs().sum(dim=0)
    has_signal = magnitude > 0
    ratio = torch.where(has_signal, total / torch.where(has_signal, magnitude, torch.ones_like(magnitude)), 0.0)
    return 0.5 * (1.0 + ratio)


def sign_masks(signals: torch.Tensor, purity: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Return the K x F float32 masks M_i = I[U < P] I[S_i > 0] + I[U >= P] I[S_i < 0] + I[S_i = 0].

    ``uniform`` contains one draw U in [0, 1) per column. Where U < P the
    positive signals are kept, elsewhere the negative ones. Two cases differ
    from the publication's formula:

    - At U = P the publication (which writes I[P < U] for the negative
      branch) keeps neither sign. With float32 draws this has a probability
      of about 6e-8 per entry (U = 0 where P = 0) and would drop a column
      whose signals are all negative. Here the negative signals are kept, so
      a column of one sign is always kept.
    - A zero signal is kept, as in the reference layer in TensorFlow Lingvo.
      It matters only for representation gradients, where the signal is a
      batch sum: a task whose per-example gradients cancel in that sum keeps
      them. A single task therefore always keeps its whole gradient.
    """
    keep_positive = (uniform < purity).unsqueeze(0)
    positive = signals > 0
    negative = signals < 0
    zero = ~(positive | negative)
    return ((keep_positive & positive) | (~keep_positive & negative) | zero).float()


def graddrop_direction(
    gradients: torch.Tensor, signals: torch.Tensor, uniform: torch.Tensor, leak: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return sum_i (l + (1 - l) M_i) g_i and the masks, for masks computed from ``signals``.

    ``gradients`` is K x B x F: task gradients with B rows per column of the
    K x F ``signals``. The mask of column f multiplies all B entries of that
    column. ``leak`` is l, the share of each dropped gradient that passes
    anyway. The result is B x F.
    """
    masks = sign_masks(signals, positive_sign_purity(signals), uniform)
    factors = leak + (1.0 - leak) * masks
    return (factors.unsqueeze(1) * gradients).sum(dim=0), masks


@register_method
class GradDrop(GradientMethod):
    """Drop, per entry of the shared representation, the task gradients whose sign loses a random draw.

    From "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient
    Sign Dropout" (Zhao Chen, Jiquan Ngiam, Yanping Huang, Thang Luong,
    Henrik Kretzschmar, Yuning Chai and Dragomir Anguelov, NeurIPS 2020).
    GradDrop acts as a layer between the shared encoder and the decoders.
    With g_i the gradient of task i with respect to the encoder output A
    (batch on the first axis), each entry f of one example gets:

    1. the signal S_i = sum over the batch of sign(A) * g_i, per entry f;
    2. the purity P = 0.5 (1 + sum_i S_i / sum_i |S_i|), in [0, 1];
    3. one draw U ~ Uniform[0, 1) from the global torch RNG, per entry f;
    4. the masks M_i = I[U < P] I[S_i > 0] + I[U >= P] I[S_i < 0], and
       M_i = 1 where S_i = 0 (see :func:`sign_masks`);
    5. the gradient sum_i (l + (1 - l) M_i) g_i, which is propagated back
       through the encoder.

    The batch sum and the factor sign(A) follow the reference layer in
    TensorFlow Lingvo (``lingvo/core/graddrop.py``), where both are on by
    default. The monotonic function f of P that the publication allows is the
    identity, its default.

    With ``gradients="parameters"`` the rows of G are the gradients of the
    shared parameters instead, the signal is g_i itself, and U is drawn per
    parameter entry, as in TorchJD's ``GradDrop`` aggregator. mtbench does not
    use that aggregator because it has no batch sum over representation
    gradients. Its output equals this one for the same draws, except where
    U = P exactly (see :func:`sign_masks`).

    Hyper-parameters: ``leak`` and ``gradients``. The Lingvo layer's
    documentation recommends a leak of 0 for every task in multitask
    learning, the default here, and 1 for the main task in transfer learning,
    so that its gradient passes unchanged. ``gradients`` defaults to
    "representation", the published placement.

    Logged per step: ``kept_fraction``, the mean of the masks over tasks and
    entries.

    Edge cases: zero gradients give a zero update. Identical gradients have
    P = 0 or 1 wherever they are non-zero, so they are always kept. Two
    opposite gradients have P = 0.5, and one of them is kept per entry, each
    with probability 1/2. Gradients scaled by 1e-20 give the same masks as
    unscaled ones. A single task keeps its whole gradient.
    """

    name = "graddrop"
    title = (
        "Chen, Ngiam, Huang, Luong, Kretzschmar, Chai and Anguelov, 2020: "
        "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout"
    )
    hyperparameters = (
        Hyperparameter(
            "leak",
            float,
            0.0,
            "share of each dropped task gradient that passes anyway, the same for every task "
            "(dimensionless, in [0, 1]; 0 drops fully, 1 turns GradDrop off)",
        ),
        replace(GRADIENTS, default="representation"),
    )
    supports_representation = True

    def __init__(self, tasks: list[str], leak: float = 0.0, gradients: str = "representation") -> None:
        super().__init__(tasks, gradients)
        leak = float(leak)
        if not (math.isfinite(leak) and 0.0 <= leak <= 1.0):
            raise MtbenchError(
                f"Invalid GradDrop leak {leak}: use a number in [0, 1], such as 0, the value recommended for multitask learning."
            )
        self.leak = leak

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        task_count = gradients.shape[0]
        if self.gradients == "representation":
            representation = context.shared_representation.detach()
            batched = gradients.reshape(task_count, representation.shape[0], -1)
            input_signs = torch.sign(representation).reshape(1, representation.shape[0], -1).to(gradients.dtype)
            signals = (input_signs * batched).sum(dim=1)
        else:
            batched = gradients.unsqueeze(1)
            signals = gradients

        uniform = torch.rand(signals.shape[1], dtype=gradients.dtype, device=gradients.device)
        direction, masks = graddrop_direction(batched, signals, uniform, self.leak)
        return direction.reshape(-1), {"kept_fraction": float(masks.mean())}

"""Scale-safe Gram matrices, row norms and unit rows of the K x N task-gradient matrix G.

Squaring float32 entries underflows below about 1e-19 and overflows above
about 1e19. So G G^T is computed on G divided by its largest absolute entry,
and ||g_k|| on each row divided by its own largest absolute entry. The
methods that use the Gram matrix either are invariant to that scale or
multiply it back in float64.
"""

import math

import torch

from mtbench.errors import MtbenchError


def gradient_scale(gradients: torch.Tensor) -> float:
    """Return the largest absolute entry of ``gradients``, 0.0 for an all-zero or empty matrix.

    Raises MtbenchError when an entry is NaN or infinite, because no method
    can combine such gradients into a finite direction.
    """
    if gradients.numel() == 0:
        return 0.0
    scale = float(gradients.detach().abs().max())
    if not math.isfinite(scale):
        raise MtbenchError(
            "The task gradients contain NaN or infinite values, so no update direction can be computed. "
            "Lower the learning rate, or check the task losses for values that overflow."
        )
    return scale


def scaled_gram(gradients: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Return (G_s G_s^T, s) with s the largest absolute entry of G and G_s = G / s, in float32.

    The Gram matrix of G itself is s^2 G_s G_s^T. An all-zero G gives a zero
    matrix and s = 0. Raises MtbenchError when G contains NaN or infinite values.
    """
    scale = gradient_scale(gradients)
    task_count = gradients.shape[0]
    if scale == 0.0:
        return torch.zeros(task_count, task_count, device=gradients.device), 0.0
    scaled = gradients.detach().float() / scale
    return scaled @ scaled.T, scale


def _rows_over_own_scale(gradients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (rows divided by their largest absolute entry, those entries as a K x 1 column), in float32.

    A zero row keeps the scale 0 and stays zero. Each row gets its own scale,
    so rows of very different magnitude (1e-30 next to 1e10) are all exact.
    """
    gradient_scale(gradients)
    matrix = gradients.detach().float()
    row_scales = matrix.abs().amax(dim=1, keepdim=True)
    safe_scales = torch.where(row_scales > 0, row_scales, torch.ones_like(row_scales))
    return matrix / safe_scales, row_scales


def row_norms(gradients: torch.Tensor) -> torch.Tensor:
    """Return ||g_k|| for every row of ``gradients`` as float32, without underflow or overflow in the squares.

    Raises MtbenchError when an entry is NaN or infinite.
    """
    scaled, row_scales = _rows_over_own_scale(gradients)
    return torch.linalg.vector_norm(scaled, dim=1) * row_scales[:, 0]


def unit_rows(gradients: torch.Tensor) -> torch.Tensor:
    """Return every row of ``gradients`` divided by its norm, in float32; a zero row stays zero.

    Raises MtbenchError when an entry is NaN or infinite.
    """
    scaled, _ = _rows_over_own_scale(gradients)
    norms = torch.linalg.vector_norm(scaled, dim=1, keepdim=True)
    return torch.where(norms > 0, scaled / norms.clamp_min(torch.finfo(torch.float32).tiny), torch.zeros_like(scaled))

"""Rescaling of the task gradients before float32 Gram matrices and norms.

In float32 the square of a value below about 1e-19 underflows, and the
square of a value above about 1.8e19 overflows. A Gram matrix G G^T taken
directly of tiny or huge task gradients therefore contains zeros, subnormal
numbers or infinities. PCGrad, GradVac and ConFIG are positively homogeneous:
dividing every task gradient by the same s > 0 leaves their task weights
unchanged and divides their direction by s. They therefore compute on G / s,
with s the largest absolute entry of G.
"""

import torch

SMALLEST_NORMAL_FLOAT32 = torch.finfo(torch.float32).tiny


def scaled_gradients(gradients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(G / s, s)`` for the K x N task gradients G, with s its largest absolute entry.

    Every entry of G / s lies in [-1, 1], so each entry of its Gram matrix is
    at most N in absolute value. A row whose squared norm is still below the
    smallest normal float32 number (1.2e-38, a norm below about 1.1e-19 s) is
    set to zero, because its Gram entries would be zero or imprecise
    subnormal numbers. s is a 0-dimensional tensor, 1 when G is zero or empty.
    """
    gradients = gradients.float()
    if gradients.numel() == 0:
        return gradients, torch.ones((), device=gradients.device)

    largest = gradients.abs().max()
    scale = torch.where(largest > 0, largest, torch.ones_like(largest))
    scaled = gradients / scale

    negligible = (scaled * scaled).sum(dim=1) < SMALLEST_NORMAL_FLOAT32
    scaled = torch.where(negligible[:, None], torch.zeros_like(scaled), scaled)
    return scaled, scale


def scaled_gram(gradients: torch.Tensor) -> torch.Tensor:
    """Return the float32 Gram matrix of G / s, as described in :func:`scaled_gradients`."""
    scaled, _ = scaled_gradients(gradients)
    return scaled @ scaled.T

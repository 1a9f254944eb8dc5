"""Scale-safe Gram matrices, row norms and unit rows of the K x N task-gradient matrix G.

In float32 the square of a value below about 1e-19 underflows and the square
of a value above about 1.8e19 overflows, so G G^T or ||g_k|| taken directly of
tiny or huge task gradients contains zeros, subnormal numbers or infinities.
The helpers here divide before they square:

- :func:`scaled_gradients` and :func:`scaled_gram` divide G by s, its largest
  absolute entry (s = 1 when G is zero or has no columns). Every entry of
  G / s lies in [-1, 1], so every entry of its Gram matrix is at most N in
  absolute value. The callers either compute weights that do not change when
  G is multiplied by a positive number, or multiply s back in.
- :func:`row_norms` and :func:`unit_rows` divide each row by its own largest
  absolute entry, so rows of very different magnitude (1e-30 next to 1e10)
  are all exact.

A row of G / s whose squared norm is below ``NEGLIGIBLE_SQUARED_NORM`` (a norm
below about 1.1e-19 s) has Gram entries that are zero or imprecise subnormal
numbers. With ``zero_negligible_rows=True`` such a row is set to zero, so the
method counts that task gradient as zero. Otherwise it is kept as it is.

Every helper raises MtbenchError when G contains NaN or infinity, because no
method can combine such gradients into a finite direction. Methods that call
:func:`check_finite_gradients` first get a message that names the tasks.

The Gram matrix stays on the device of G. A caller whose solver branches on
its values moves it to the CPU, because a K x K problem gains nothing from an
accelerator and every branch would synchronise the device.
"""

import torch

from mtbench.errors import MtbenchError

# The smallest normal float32 number, about 1.2e-38.
NEGLIGIBLE_SQUARED_NORM = torch.finfo(torch.float32).tiny


def check_finite_gradients(gradients: torch.Tensor, tasks: list[str], method: str) -> None:
    """Raise MtbenchError naming the tasks whose rows of the K x N ``gradients`` contain NaN or infinity."""
    finite_rows = gradients.isfinite().all(dim=1).tolist()
    bad_tasks = [task for task, finite in zip(tasks, finite_rows) if not finite]
    if bad_tasks:
        raise MtbenchError(
            f"Method '{method}' received NaN or infinite gradients for the tasks {', '.join(bad_tasks)}. "
            "Lower the learning rate, or check the loss functions of these tasks."
        )


def scaled_gradients(gradients: torch.Tensor, zero_negligible_rows: bool = False) -> tuple[torch.Tensor, float]:
    """Divide G by s, its largest absolute entry (1 when G is zero or empty), and return (G / s, s).

    G / s is float32. With ``zero_negligible_rows`` every row of G / s whose
    squared norm is below ``NEGLIGIBLE_SQUARED_NORM`` is set to zero. Raises
    MtbenchError when G contains NaN or infinity.
    """
    matrix = gradients.detach().float()
    if matrix.numel() == 0:
        return matrix, 1.0

    scaled, scale = _divide_by_largest_entry(matrix)
    if zero_negligible_rows:
        negligible = (scaled * scaled).sum(dim=1) < NEGLIGIBLE_SQUARED_NORM
        scaled = torch.where(negligible[:, None], torch.zeros_like(scaled), scaled)
    return scaled, float(scale)


def scaled_gram(gradients: torch.Tensor, zero_negligible_rows: bool = False) -> tuple[torch.Tensor, float]:
    """Return (G_s G_s^T, s): the float32 K x K Gram matrix of G_s = G / s, on the device of G, and s.

    The Gram matrix of G itself is s^2 G_s G_s^T. s and ``zero_negligible_rows``
    are those of :func:`scaled_gradients`, which also lists the errors.
    """
    matrix = gradients.detach().float()
    if matrix.numel() == 0:
        return matrix @ matrix.T, 1.0

    scaled, scale = _divide_by_largest_entry(matrix)
    gram = scaled @ scaled.T
    del scaled
    if zero_negligible_rows:
        # The diagonal contains the squared row norms, so zeroing a negligible row of G / s zeroes its row and column here.
        significant = (torch.diagonal(gram) >= NEGLIGIBLE_SQUARED_NORM).to(gram.dtype)
        gram = gram * significant[:, None] * significant[None, :]
    return gram, float(scale)


def row_norms(gradients: torch.Tensor) -> torch.Tensor:
    """Return ||g_k|| for every row of ``gradients``, in float32.

    Each row is divided by its largest absolute entry before its norm is
    taken, one row at a time, so no copy of the whole matrix is made. Raises
    MtbenchError when an entry is NaN or infinite.
    """
    matrix = gradients.detach().float()
    scales = _row_scales(matrix)
    norms = [torch.linalg.vector_norm(row / scale) for row, scale in zip(matrix, scales)]
    return (torch.stack(norms) if norms else matrix.new_zeros(0)) * scales


def unit_rows(gradients: torch.Tensor) -> torch.Tensor:
    """Return every row of ``gradients`` divided by its norm, in float32.

    A zero row stays zero. The result is the only K x N tensor created: the
    rows are scaled in place. Raises MtbenchError when an entry is NaN or infinite.
    """
    matrix = gradients.detach().float()
    scales = _row_scales(matrix)
    result = matrix.clone()
    result.div_(scales[:, None])
    norms = torch.linalg.vector_norm(result, dim=1, keepdim=True)
    # A zero row has norm 0 and stays 0 / tiny = 0.
    return result.div_(norms.clamp_min(torch.finfo(torch.float32).tiny))


def sum_of_unit_rows(gradients: torch.Tensor) -> torch.Tensor:
    """Return sum_k g_k / ||g_k|| over the rows of ``gradients``, a float32 vector, with zero rows left out.

    Equal to ``unit_rows(gradients).sum(dim=0)``, but built one row at a time,
    so the only temporaries have the length of a row. Raises MtbenchError when
    an entry is NaN or infinite.
    """
    matrix = gradients.detach().float()
    scales = _row_scales(matrix)
    total = matrix.new_zeros(matrix.shape[1])
    for row, scale in zip(matrix, scales):
        scaled = row / scale
        norm = torch.linalg.vector_norm(scaled)
        total.add_(scaled.div_(norm.clamp_min(torch.finfo(torch.float32).tiny)))
    return total


def _row_scales(matrix: torch.Tensor) -> torch.Tensor:
    """Return the largest absolute entry of each row of ``matrix`` (1 for a zero or empty row), without copying it.

    Raises MtbenchError when an entry is NaN or infinite.
    """
    if matrix.shape[1] == 0:
        return matrix.new_ones(matrix.shape[0])
    largest = torch.maximum(matrix.amax(dim=1), -matrix.amin(dim=1))
    _check_finite_scale(largest)
    return torch.where(largest > 0, largest, torch.ones_like(largest))


def combine_rows(weights: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Return sum_k w_k g_k, a float32 vector of length N on the device of the K x N ``gradients``."""
    return weights.to(device=gradients.device, dtype=torch.float32) @ gradients.float()


def _divide_by_largest_entry(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (matrix / m, m) with m the largest absolute entry of the non-empty ``matrix``.

    m is 1 when that entry is 0, so a zero matrix stays zero. Raises
    MtbenchError when an entry is NaN or infinite.
    """
    # Two reductions instead of matrix.abs().amax(), which would copy the whole matrix.
    largest = torch.maximum(matrix.amax(), -matrix.amin())
    _check_finite_scale(largest)
    scale = torch.where(largest > 0, largest, torch.ones_like(largest))
    return matrix / scale, scale


def _check_finite_scale(largest: torch.Tensor) -> None:
    # amax and amin propagate NaN, so the largest entries are finite exactly when every entry is.
    if not bool(largest.isfinite().all()):
        raise MtbenchError(
            "The task gradients contain NaN or infinite values, so no update direction can be computed. "
            "Lower the learning rate, or check the task losses for values that overflow."
        )

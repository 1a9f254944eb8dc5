"""Per-task gradients as rows of a matrix, and the way back into ``.grad``.

Gradient-manipulation methods see the task gradients as a K x N matrix G, one
float32 row per task, whatever the dtype of the model. They combine the rows
into one direction of length N, which :func:`write_direction` splits back
into the shapes of the parameters.
"""

import torch
from torch import nn

from mtbench.errors import MtbenchError


def flatten(gradients: tuple[torch.Tensor | None, ...], inputs: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate ``gradients`` into one float32 vector; a missing gradient counts as zeros."""
    pieces = [
        torch.zeros(tensor.numel(), device=tensor.device, dtype=torch.float32)
        if gradient is None
        else gradient.reshape(-1).float()
        for gradient, tensor in zip(gradients, inputs)
    ]
    return torch.cat(pieces)


def accumulate_gradients(parameters: list[nn.Parameter], gradients: tuple[torch.Tensor | None, ...]) -> None:
    """Add ``gradients`` to the ``.grad`` of ``parameters``; None leaves a parameter as it was."""
    for parameter, gradient in zip(parameters, gradients):
        if gradient is None:
            continue
        if parameter.grad is None:
            parameter.grad = gradient.detach().to(parameter.dtype).clone()
        else:
            parameter.grad.add_(gradient.detach().to(parameter.dtype))


def write_direction(parameters: list[nn.Parameter], direction: torch.Tensor) -> None:
    """Split the flat ``direction`` into the shapes of ``parameters`` and add it to their ``.grad``."""
    sizes = [parameter.numel() for parameter in parameters]
    if direction.dim() != 1 or direction.numel() != sum(sizes):
        raise MtbenchError(
            f"A method returned a direction of shape {tuple(direction.shape)} for {sum(sizes)} shared values; "
            "it must return a 1-D tensor with one entry per row entry of the task gradients."
        )
    pieces = direction.split(sizes)
    accumulate_gradients(parameters, tuple(piece.view_as(parameter) for piece, parameter in zip(pieces, parameters)))


def column_positions(parameters: list[nn.Parameter], subset: list[nn.Parameter]) -> torch.Tensor | None:
    """Return the columns of ``subset`` inside the flattened ``parameters``, or None when one is missing.

    Columns follow the order of ``subset``, so slicing the rows of G with them
    gives the task gradients of ``subset`` alone.
    """
    offsets: dict[int, tuple[int, int]] = {}
    start = 0
    for parameter in parameters:
        offsets[id(parameter)] = (start, parameter.numel())
        start += parameter.numel()
    ranges = []
    for parameter in subset:
        if id(parameter) not in offsets:
            return None
        begin, size = offsets[id(parameter)]
        ranges.append(torch.arange(begin, begin + size))
    return torch.cat(ranges) if ranges else None

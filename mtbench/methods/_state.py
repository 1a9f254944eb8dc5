"""Method state whose shape is known only after the first training step."""

from collections.abc import Iterable, Mapping

import torch
from torch import nn


def adopt_buffer_shapes(module: nn.Module, state_dict: Mapping[str, torch.Tensor], prefix: str, names: Iterable[str]) -> None:
    """Replace each named buffer of ``module`` by zeros of the shape that ``state_dict`` stores for it.

    Call it from ``_load_from_state_dict`` before the default loading. A method
    that averages task gradients over steps creates its K x N buffer at the
    first step. A freshly built method still has an empty buffer when a
    checkpoint is loaded into it, so ``load_state_dict`` would reject the size
    mismatch. The replacement keeps the buffer's device and dtype. Names
    missing from ``state_dict`` are left alone, so strict loading still
    reports them.
    """
    for name in names:
        stored = state_dict.get(prefix + name)
        current = getattr(module, name)
        if stored is not None and stored.shape != current.shape:
            setattr(module, name, torch.zeros(stored.shape, dtype=current.dtype, device=current.device))

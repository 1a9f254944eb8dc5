"""The Gram matrix of the task gradients, scaled for the weightings that read it.

MGDA, IMTL-G, Aligned-MTL and UPGrad compute their task weights from the
K x K Gram matrix G G^T alone, and none of their weights changes when every
task gradient is multiplied by the same positive number. mtbench therefore
divides G by its largest absolute entry before it forms G G^T. That changes no
weight, keeps the squares of gradients as small as 1e-20 clear of float32
underflow (1e-40 is subnormal), and turns the absolute thresholds inside
TorchJD 0.18 into relative ones. The weights are solved on the CPU, because a
K x K problem is too small to gain from an accelerator and its solvers branch
on values, which would force a device synchronisation per iteration.
"""

import torch

from mtbench.errors import MtbenchError


def check_finite_gradients(gradients: torch.Tensor, tasks: list[str], method: str) -> None:
    """Raise MtbenchError naming the tasks whose rows of the K x N ``gradients`` contain NaN or infinity."""
    finite_rows = gradients.isfinite().all(dim=1).tolist()
    bad_tasks = [task for task, finite in zip(tasks, finite_rows) if not finite]
    if bad_tasks:
        raise MtbenchError(
            f"Method '{method}' received NaN or infinite gradients for the tasks {', '.join(bad_tasks)}. "
            "Lower the learning rate, or check the loss functions of these tasks."
        )


def scaled_gramian(gradients: torch.Tensor) -> torch.Tensor:
    """Return the float32 K x K Gram matrix of ``gradients / max |gradients|``, on the CPU.

    ``gradients`` is the K x N matrix G of task gradients. The diagonal contains
    squared norms in units of the largest absolute entry of G. A row whose
    entries are all below about 1e-19 of that entry underflows to a zero row.
    An all-zero G gives the zero matrix.
    """
    matrix = gradients.detach().float()
    largest = matrix.abs().max()
    if largest > 0:
        matrix = matrix / largest
    return (matrix @ matrix.T).cpu()


def combine_rows(weights: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Return sum_k w_k g_k, a float32 vector of length N on the device of the K x N ``gradients``."""
    return weights.to(device=gradients.device, dtype=torch.float32) @ gradients.float()

"""Data-parallel training over several processes, started with ``torchrun``.

Every rank keeps the whole model, seeded identically, and trains on its share
of each global batch. Multi-task methods are not linear in the task
gradients, so averaging each rank's update (what a plain
``DistributedDataParallel`` wrapper does) would not give the update of the
global batch. mtbench instead reduces what the methods read:

- each task loss becomes the mean over the global batch, through a
  differentiable all-reduce, so every rank passes the same losses to the method;
- task-gradient matrices (the rows G a method combines, or the last shared
  layer's gradients) are averaged over ranks before a method uses them,
  differentiably when the method backpropagates through them (CosReg);
- after the method's backward pass, every ``.grad`` is averaged over ranks.

Together these make every rank apply exactly the update that one process would
apply to the whole global batch (up to floating-point summation order), for
every method. BatchNorm statistics remain per rank.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce

from mtbench.errors import MtbenchError


@dataclass(frozen=True)
class Distributed:
    """The position of this process among ``world_size`` processes; a single process has rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment(device: torch.device) -> Distributed:
    """Join the process group described by torchrun's environment variables, if there is one.

    Uses NCCL on CUDA devices and gloo otherwise. Without ``WORLD_SIZE`` (or
    with ``WORLD_SIZE=1``) the run is a single process.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_available():
        raise MtbenchError("This PyTorch build has no torch.distributed; run without torchrun.")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend=backend)
        except Exception as error:
            raise MtbenchError(
                f"Could not join the torchrun process group ({backend}): {error}. "
                "Check MASTER_ADDR, MASTER_PORT and that every node runs the same command."
            ) from error
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def local_share(indices: torch.Tensor, distributed: Distributed) -> torch.Tensor:
    """Return this rank's contiguous part of one global batch's ``indices`` (sizes differ by at most one)."""
    if not distributed.enabled:
        return indices
    return torch.tensor_split(indices, distributed.world_size)[distributed.rank]


def global_losses(task_losses: dict[str, torch.Tensor], local_count: int, global_count: int) -> dict[str, torch.Tensor]:
    """Return each task's mean loss over the global batch, differentiable with respect to this rank's loss.

    Each rank contributes its loss weighted by its share of the samples. The
    backward pass of the all-reduce sums the incoming gradients over ranks,
    which :func:`average_gradients` undoes by dividing by the number of ranks.
    """
    if global_count == 0:
        raise MtbenchError("A global batch without samples reached the training step.")
    share = local_count / global_count
    return {task: differentiable_all_reduce(loss * share) for task, loss in task_losses.items()}


def average_rows(gradients: torch.Tensor, distributed: Distributed) -> torch.Tensor:
    """Return ``gradients`` averaged over ranks; differentiable when ``gradients`` carries a graph."""
    if not distributed.enabled:
        return gradients
    if gradients.requires_grad:
        return differentiable_all_reduce(gradients) / distributed.world_size
    reduced = gradients.detach().clone()
    dist.all_reduce(reduced)
    return reduced / distributed.world_size


def average_gradients(parameters: list[torch.nn.Parameter], distributed: Distributed) -> None:
    """Average every existing ``.grad`` over ranks in one all-reduce.

    Every rank runs the same code on the same parameters, so the same
    parameters have a gradient on every rank.
    """
    if not distributed.enabled:
        return
    gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
    if not gradients:
        return
    flat = torch.cat([gradient.reshape(-1).double() for gradient in gradients])
    dist.all_reduce(flat)
    flat /= distributed.world_size
    for gradient, piece in zip(gradients, flat.split([gradient.numel() for gradient in gradients])):
        gradient.copy_(piece.view_as(gradient))


def sum_statistics(statistics: torch.Tensor, distributed: Distributed) -> torch.Tensor:
    """Return additive evaluation statistics (counts, sums) summed over ranks."""
    if not distributed.enabled:
        return statistics
    reduced = statistics.detach().clone()
    dist.all_reduce(reduced)
    return reduced

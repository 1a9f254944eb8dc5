"""Interleaved step timing, peak tensor memory and backward-pass counts for the speed scripts.

Timing. Every candidate runs a few steps in turn, round after round (A B A B
...), on the same batches in one process. In each round, the candidate's median step
time is divided by the reference's, and the ratio reported is the median of
these per-round ratios. A slow period of a shared machine therefore affects
both sides of each ratio. Wall-clock time
(``time.perf_counter``) and the process's CPU time (``time.process_time``) are
both recorded. With one thread, CPU time does not count the time the process
waits for a core that another process holds, so its ratios move less on a
busy machine.

Memory. ``tracemalloc`` does not see tensors, because PyTorch allocates them
outside Python's allocator, and the resident set size keeps pages that the C
allocator has freed but not returned. :class:`PeakTensorMemory` therefore
records every tensor storage that a PyTorch operator creates inside the
measured block (a ``TorchDispatchMode``) and frees it from the count when
the storage is released. Its peak is the largest total of live storages
created in the block: activations, gradients, optimiser updates. It leaves
out tensors that existed before the block (parameters, optimiser state from
earlier steps, the batch) and scratch memory inside kernels. On CUDA the
scripts report ``torch.cuda.max_memory_allocated`` instead.

Counts. :class:`BackwardCounter` counts calls of ``torch.autograd.grad`` and
``torch.autograd.backward`` (``Tensor.backward`` calls the latter), and, with
a hook on the first shared parameter, the gradients that reach the first
encoder layer: one per backward pass through the whole encoder, where a
batched vector-Jacobian product over K tasks counts once.
"""

import statistics
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


@dataclass
class Timings:
    """Per-round step times in seconds, for one candidate."""

    wall: list[list[float]] = field(default_factory=list)
    cpu: list[list[float]] = field(default_factory=list)

    def median_wall(self) -> float:
        return statistics.median(value for round_values in self.wall for value in round_values)

    def median_cpu(self) -> float:
        return statistics.median(value for round_values in self.cpu for value in round_values)


def time_call(function: Callable[[], object]) -> tuple[float, float]:
    """Return the wall-clock and CPU seconds that ``function()`` takes."""
    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - wall_start, time.process_time() - cpu_start


def interleaved_timings(
    candidates: dict[str, Callable[[int], object]], rounds: int, steps_per_round: int, warmup_steps: int
) -> dict[str, Timings]:
    """Run each candidate's ``step(index)`` in turn, ``steps_per_round`` times per round, and time every step.

    Each candidate first runs ``warmup_steps`` untimed steps. Every candidate
    counts its own step indices, so all candidates train on the same sequence
    of batches.
    """
    timings = {name: Timings() for name in candidates}
    counters = dict.fromkeys(candidates, 0)
    for name, step in candidates.items():
        for _ in range(warmup_steps):
            step(counters[name])
            counters[name] += 1

    for _ in range(rounds):
        for name, step in candidates.items():
            wall_times, cpu_times = [], []
            for _ in range(steps_per_round):
                index = counters[name]
                wall, cpu = time_call(lambda: step(index))
                counters[name] += 1
                wall_times.append(wall)
                cpu_times.append(cpu)
            timings[name].wall.append(wall_times)
            timings[name].cpu.append(cpu_times)
    return timings


def round_ratio(candidate: list[list[float]], reference: list[list[float]]) -> float:
    """Return the median over rounds of median(candidate round) / median(reference round)."""
    ratios = [statistics.median(own) / statistics.median(base) for own, base in zip(candidate, reference)]
    return statistics.median(ratios)


class PeakTensorMemory(TorchDispatchMode):
    """Track the bytes of tensor storages created by PyTorch operators inside the ``with`` block.

    ``peak_bytes`` is the largest total of such storages alive at once. The
    tracking costs Python work per operator, so it runs in untimed steps.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self._sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for value in tree_flatten(result)[0]:
            if isinstance(value, torch.Tensor):
                self._record(value)
        return result

    def _record(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        size = storage.nbytes()
        key = storage.data_ptr()
        if size == 0 or key in self._sizes:
            return
        self._sizes[key] = size
        self.live_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        weakref.finalize(storage, self._release, key)

    def _release(self, key: int) -> None:
        self.live_bytes -= self._sizes.pop(key, 0)


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """Yield a dict whose ``"peak_mb"`` is set, after the block, to the block's peak tensor memory in MiB.

    On CUDA it is ``torch.cuda.max_memory_allocated`` minus the memory
    allocated before the block; elsewhere :class:`PeakTensorMemory`'s peak.
    """
    result: dict[str, float] = {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        torch.cuda.synchronize(device)
        result["peak_mb"] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        return
    tracker = PeakTensorMemory()
    with tracker:
        yield result
    result["peak_mb"] = tracker.peak_bytes / 2**20


class BackwardCounter:
    """Count autograd calls and gradients reaching ``first_parameter`` inside the ``with`` block."""

    def __init__(self, first_parameter: torch.Tensor) -> None:
        self.first_parameter = first_parameter
        self.autograd_calls = 0
        self.encoder_passes = 0

    def __enter__(self) -> "BackwardCounter":
        self._grad = torch.autograd.grad
        self._backward = torch.autograd.backward
        torch.autograd.grad = self._counted(self._grad)
        torch.autograd.backward = self._counted(self._backward)
        self._hook = self.first_parameter.register_hook(self._count_pass)
        return self

    def __exit__(self, *exception) -> None:
        torch.autograd.grad = self._grad
        torch.autograd.backward = self._backward
        self._hook.remove()

    def _counted(self, function: Callable) -> Callable:
        def counted(*args, **kwargs):
            self.autograd_calls += 1
            return function(*args, **kwargs)

        return counted

    def _count_pass(self, gradient: torch.Tensor) -> None:
        self.encoder_passes += 1


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Return a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line() -> str:
    """Return torch's version, its thread count and the device, for the header of a result table."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    return f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {device}"

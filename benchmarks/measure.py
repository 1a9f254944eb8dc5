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
earlier steps, the batch) and scratch memory inside kernels, except the
parameters' gradients from the previous step (``gradients_of``).
A trainer that zeroes gradients in place keeps them through the step, and one
that sets them to None frees them and allocates new ones, so both count them
once. On CUDA the scripts report ``torch.cuda.max_memory_allocated`` instead.

FLOPs. :func:`count_flops` counts the floating-point operations of one step
with ``torch.utils.flop_counter.FlopCounterMode``: matrix products and
convolutions, forward and backward, double backward included (a
multiply-add counts as 2). Elementwise operations are left out. Two
implementations of the same step with the same count can differ in time only
through overheads, not through the arithmetic.

Counts. :class:`BackwardCounter` counts calls of ``torch.autograd.grad`` and
``torch.autograd.backward`` (``Tensor.backward`` calls the latter), and, with
a hook on the first shared parameter, the gradients that reach the first
encoder layer: one per backward pass through the whole encoder, where a
batched vector-Jacobian product over K tasks counts once.
"""

import argparse
import statistics
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from mtbench.train.allocator import keep_freed_memory

_allocator = {"tuned": False}


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

    An operator's output that shares the storage of one of its inputs (an
    in-place update such as Adam's, or a view) is not a new storage and does
    not count.

    ``peak_bytes`` is the largest total of such storages alive at once. The
    storages of the tensors in ``held`` count too, from the start until they
    are released. The tracking costs Python work per operator, so it runs in
    untimed steps.
    """

    def __init__(self, held: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self._sizes: dict[int, int] = {}
        for tensor in held:
            self._record(tensor)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # In-place operations and views return the storage of an input; only new storages count.
        inputs = {value.untyped_storage().data_ptr() for value in tree_flatten((args, kwargs))[0] if isinstance(value, torch.Tensor)}
        result = func(*args, **kwargs)
        for value in tree_flatten(result)[0]:
            if isinstance(value, torch.Tensor) and value.untyped_storage().data_ptr() not in inputs:
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


def _gradients(modules: Iterable[torch.nn.Module]) -> list[torch.Tensor]:
    return [parameter.grad for module in modules for parameter in module.parameters() if parameter.grad is not None]


@contextmanager
def peak_memory(device: torch.device, gradients_of: Iterable[torch.nn.Module] = ()) -> Iterator[dict[str, float]]:
    """Yield a dict whose ``"peak_mb"`` is set, after the block, to the block's peak tensor memory in MiB.

    The gradients that the parameters of the modules in ``gradients_of`` hold
    when the block starts count while they stay alive. On CUDA the peak is
    ``torch.cuda.max_memory_allocated`` minus the memory allocated before the
    block, plus the bytes of those gradients; elsewhere it is
    :class:`PeakTensorMemory`'s peak.
    """
    result: dict[str, float] = {}
    if device.type == "cuda":
        storages = {gradient.untyped_storage().data_ptr(): gradient.untyped_storage().nbytes() for gradient in _gradients(gradients_of)}
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device) - sum(storages.values())
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        torch.cuda.synchronize(device)
        result["peak_mb"] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        return
    # The tracker keeps no reference to the gradients, so a trainer that sets them to None frees them.
    tracker = PeakTensorMemory(_gradients(gradients_of))
    with tracker:
        yield result
    result["peak_mb"] = tracker.peak_bytes / 2**20


def count_flops(function: Callable[[], object]) -> int:
    """Return the floating-point operations of matrix products and convolutions in ``function()``."""
    with FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops()


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


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def add_timing_arguments(
    parser: argparse.ArgumentParser, rounds: int, steps: int, warmup: int, candidate: str, warmup_note: str = ""
) -> None:
    """Add --rounds, --steps, --warmup and --threads, the options of every interleaved timing, to ``parser``.

    ``candidate`` names what is timed in the help texts, such as "method", and
    ``warmup_note`` ends the help of --warmup.
    Rounds, steps and threads must be at least 1 and warm-up steps at least 0.
    """
    parser.add_argument("--rounds", type=_count(1), default=rounds, help=f"interleaved rounds over all {candidate}s")
    parser.add_argument("--steps", type=_count(1), default=steps, help=f"timed steps per {candidate} and round")
    parser.add_argument("--warmup", type=_count(0), default=warmup, help=f"untimed steps per {candidate} before the first round{warmup_note}")
    parser.add_argument("--threads", type=_count(1), default=1, help="torch intra-op threads (torch.set_num_threads)")


def set_up_process(threads: int) -> None:
    """Use ``threads`` intra-op threads and, as ``mtbench run`` does on the CPU, keep freed memory in the C allocator."""
    torch.set_num_threads(threads)
    _allocator["tuned"] = keep_freed_memory()


def machine_line() -> str:
    """Return torch's version, its thread count, the device and the allocator setting, for the header of a result table."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    allocator = "keeps freed memory" if _allocator["tuned"] else "default settings"
    return f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {device}, C allocator: {allocator}"

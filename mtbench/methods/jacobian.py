"""Per-task gradients as rows of a matrix, and the way back into ``.grad``.

Gradient-manipulation methods see the task gradients as a K x N matrix G, one
float32 row per task, whatever the dtype of the model. They combine the rows
into one direction of length N, which :func:`write_direction` splits back
into the shapes of the parameters.

:func:`task_gradients` computes G with one of three strategies, which give
the same rows up to float32 rounding:

- ``"loop"``: one backward pass per task, from its loss through its decoder
  and the encoder to the requested parameters.
- ``"representation-loop"``: one backward pass per task through its decoder
  alone, to the shared representation z, then one vector-Jacobian product
  per task through the encoder, g_k^T dz/dtheta.
- ``"representation-batched"``: the same decoder passes, then a single
  vector-Jacobian product through the encoder for all K tasks at once
  (``torch.autograd.grad`` with ``is_grads_batched=True``, which runs the
  backward pass under ``torch.vmap``).

The two representation strategies are exact only when the losses reach the
requested parameters through z alone. :func:`flows_only_through` checks this
on the autograd graph before every use, and ``"loop"`` is used whenever the
check fails, for example when a decoder also reads an earlier encoder layer.
When ``torch.vmap`` cannot batch an operation of the encoder's backward pass
(it raises a RuntimeError), the batched strategy computes the K products one
at a time instead and warns once per process.
"""

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from mtbench.errors import MtbenchError

TASK_GRADIENT_STRATEGIES = ("loop", "representation-loop", "representation-batched")

# NOTE: "loop" was the fastest or within noise of the fastest on a 2-core CPU for the
# MultiDigitMNIST CNN and a small SegNet (benchmarks/task_gradient_strategies.py, results in
# docs/benchmarks.md). No accelerator was measured, where the batched strategy may be faster.
DEFAULT_STRATEGY = "loop"

_strategy = DEFAULT_STRATEGY
_warned_batching_failure = False


@contextlib.contextmanager
def task_gradient_strategy(name: str) -> Iterator[None]:
    """Make :func:`task_gradients` use the strategy ``name`` inside the block (for benchmarks and tests)."""
    global _strategy
    if name not in TASK_GRADIENT_STRATEGIES:
        raise MtbenchError(f"Unknown task-gradient strategy {name!r}: use one of {', '.join(TASK_GRADIENT_STRATEGIES)}.")
    previous = _strategy
    _strategy = name
    try:
        yield
    finally:
        _strategy = previous


def current_strategy() -> str:
    """Return the strategy that :func:`task_gradients` uses now."""
    return _strategy


def flatten(gradients: tuple[torch.Tensor | None, ...], inputs: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate ``gradients`` into one float32 vector; a missing gradient counts as zeros."""
    pieces = [
        torch.zeros(tensor.numel(), device=tensor.device, dtype=torch.float32)
        if gradient is None
        else gradient.reshape(-1).float()
        for gradient, tensor in zip(gradients, inputs)
    ]
    return torch.cat(pieces)


def flows_only_through(losses: Sequence[torch.Tensor], representation: torch.Tensor, parameters: Sequence[torch.Tensor]) -> bool:
    """Return whether every autograd path from ``losses`` to ``parameters`` passes through ``representation``.

    Walks the graph of the losses backwards without entering ``representation``
    and looks for the gradient accumulator of any of ``parameters``. Returns
    False when ``representation`` has no graph (it is a leaf or detached),
    because then nothing flows through it.
    """
    target = representation.grad_fn
    if target is None:
        return False
    target_output = representation.output_nr
    parameter_ids = {id(parameter) for parameter in parameters}

    pending = [loss.grad_fn for loss in losses if loss.grad_fn is not None]
    visited: set[int] = set()
    while pending:
        node = pending.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        variable = getattr(node, "variable", None)
        if variable is not None and id(variable) in parameter_ids:
            return False
        for next_node, output_number in node.next_functions:
            if next_node is None or (next_node is target and output_number == target_output):
                continue
            pending.append(next_node)
    return True


def _stack_rows(rows: list[tuple[torch.Tensor | None, ...]], inputs: Sequence[torch.Tensor], create_graph: bool) -> torch.Tensor:
    """Return the K x N float32 matrix of per-task gradient tuples; a missing gradient counts as zeros.

    Without a graph the rows are copied into one preallocated matrix, so the
    peak memory is G plus one task's gradients rather than twice G.
    """
    if create_graph:
        return torch.stack([flatten(row, list(inputs)) for row in rows])

    width = sum(tensor.numel() for tensor in inputs)
    device = inputs[0].device if inputs else torch.device("cpu")
    matrix = torch.zeros(len(rows), width, dtype=torch.float32, device=device)
    with torch.no_grad():
        for index, row in enumerate(rows):
            start = 0
            for gradient, tensor in zip(row, inputs):
                if gradient is not None:
                    matrix[index, start : start + tensor.numel()].copy_(gradient.reshape(-1))
                start += tensor.numel()
    return matrix


def _stack_batched(gradients: tuple[torch.Tensor | None, ...], inputs: Sequence[torch.Tensor], task_count: int) -> torch.Tensor:
    """Return the K x N float32 matrix from per-input gradients of shape (K, *input.shape)."""
    pieces = [
        torch.zeros(task_count, tensor.numel(), device=tensor.device, dtype=torch.float32)
        if gradient is None
        else gradient.reshape(task_count, -1).float()
        for gradient, tensor in zip(gradients, inputs)
    ]
    return torch.cat(pieces, dim=1)


def vector_jacobian_rows(
    output: torch.Tensor,
    inputs: Sequence[torch.Tensor],
    output_gradients: torch.Tensor,
    create_graph: bool = False,
    batched: bool = True,
) -> torch.Tensor:
    """Return the K x N float32 matrix whose row k is v_k^T d output / d inputs, flattened.

    ``output_gradients`` stacks the K vectors v_k, each of the shape of
    ``output``. An input that ``output`` does not depend on gives zero columns.
    The graph of ``output`` is kept. With ``batched`` the K products run as one
    vmapped backward pass. When vmap raises a RuntimeError, they run one at a
    time instead, and a warning is shown once per process.
    """
    global _warned_batching_failure
    inputs = list(inputs)
    task_count = output_gradients.shape[0]
    if batched:
        try:
            gradients = torch.autograd.grad(
                output,
                inputs,
                grad_outputs=output_gradients,
                retain_graph=True,
                create_graph=create_graph,
                allow_unused=True,
                is_grads_batched=True,
            )
            return _stack_batched(gradients, inputs, task_count)
        except RuntimeError as error:
            if not _warned_batching_failure:
                _warned_batching_failure = True
                warnings.warn(
                    f"torch.vmap could not batch the backward pass through the encoder ({error}), so mtbench computes "
                    "the per-task gradients one task at a time, which is slower but gives the same values.",
                    stacklevel=2,
                )

    rows = [
        torch.autograd.grad(output, inputs, grad_outputs=vector, retain_graph=True, create_graph=create_graph, allow_unused=True)
        for vector in output_gradients
    ]
    return _stack_rows(rows, inputs, create_graph)


def task_gradients(
    losses: Sequence[torch.Tensor],
    inputs: Sequence[torch.Tensor],
    representation: torch.Tensor | None = None,
    task_parameters: Sequence[Sequence[nn.Parameter]] | None = None,
    create_graph: bool = False,
    keep_graph: bool = True,
) -> tuple[torch.Tensor, list[tuple[torch.Tensor | None, ...]]]:
    """Return G, the K x N float32 matrix of d loss_k / d inputs, and each task's gradients of its own parameters.

    Row k of G flattens the gradients of ``losses[k]`` with respect to every
    tensor of ``inputs`` in order, with zeros where the loss does not depend on
    one. When ``task_parameters`` is given, the second value holds, per task,
    the gradients of ``losses[k]`` with respect to ``task_parameters[k]``
    (None where unused); otherwise it is empty. ``representation`` is the
    shared tensor through which the representation strategies route the
    gradients (see the module documentation). With ``create_graph`` G can be
    differentiated again. The graph of the losses is kept unless
    ``keep_graph`` is False and the loop strategy runs: then the last backward
    pass frees it, which lowers the step's peak memory.

    Every loss must require gradients (callers check it, to name the task).
    """
    losses = list(losses)
    inputs = list(inputs)
    heads = [list(parameters) for parameters in task_parameters] if task_parameters is not None else [[] for _ in losses]
    inputs_are_representation = len(inputs) == 1 and inputs[0] is representation

    strategy = _strategy
    if strategy != "loop":
        routable = representation is not None and (inputs_are_representation or flows_only_through(losses, representation, inputs))
        if not routable:
            strategy = "loop"

    if strategy == "loop":
        matrix, head_gradients = _loop_gradients(losses, inputs, heads, create_graph, keep_graph)
    else:
        representation_gradients, head_gradients = _representation_gradients(losses, representation, heads, create_graph)
        if inputs_are_representation:
            matrix = representation_gradients.reshape(len(losses), -1).float()
        else:
            batched = strategy == "representation-batched"
            matrix = vector_jacobian_rows(representation, inputs, representation_gradients, create_graph, batched)
    return matrix, head_gradients if task_parameters is not None else []


def _loop_gradients(
    losses: list[torch.Tensor],
    inputs: list[torch.Tensor],
    heads: list[list[nn.Parameter]],
    create_graph: bool,
    keep_graph: bool = True,
) -> tuple[torch.Tensor, list[tuple[torch.Tensor | None, ...]]]:
    """Return G from one backward pass per task, and each task's head gradients from the same pass."""
    rows = []
    head_gradients = []
    for index, (loss, parameters) in enumerate(zip(losses, heads)):
        retain = keep_graph or create_graph or index < len(losses) - 1
        gradients = torch.autograd.grad(loss, inputs + parameters, retain_graph=retain, create_graph=create_graph, allow_unused=True)
        rows.append(gradients[: len(inputs)])
        head_gradients.append(gradients[len(inputs) :])
    return _stack_rows(rows, inputs, create_graph), head_gradients


def _representation_gradients(
    losses: list[torch.Tensor], representation: torch.Tensor, heads: list[list[nn.Parameter]], create_graph: bool
) -> tuple[torch.Tensor, list[tuple[torch.Tensor | None, ...]]]:
    """Return the K stacked d loss_k / d representation (zeros where unused) and each task's head gradients."""
    stacked = []
    head_gradients = []
    for loss, parameters in zip(losses, heads):
        gradients = torch.autograd.grad(
            loss, [representation] + parameters, retain_graph=True, create_graph=create_graph, allow_unused=True
        )
        stacked.append(torch.zeros_like(representation) if gradients[0] is None else gradients[0])
        head_gradients.append(gradients[1:])
    return torch.stack(stacked), head_gradients


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

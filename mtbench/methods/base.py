"""The interface between the trainer and a multi-task method.

A method turns the task losses of one training step into gradients on the
model's parameters. Loss-weighting methods and regularisers override
:meth:`Method.loss`; gradient-manipulation methods override
:meth:`Method.backward` and write ``.grad`` themselves. A method is an
``nn.Module``, so state such as learnable task weights or log-variances is
saved in checkpoints with its ``state_dict`` and, when it has parameters, is
optimised together with the model.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from mtbench.errors import MtbenchError
from mtbench.methods.jacobian import column_positions, task_gradients


@dataclass(frozen=True)
class Hyperparameter:
    """A method option: its name, type, published default and meaning (with unit).

    ``name`` is the key in records and on the command line. ``argument`` is
    the keyword of the method's ``__init__`` when ``name`` is a Python keyword,
    so ``lambda`` becomes ``lambda_``. A hyper-parameter added after records
    of its method exist sets ``recorded_when_default`` to False: at its
    default it stays out of ``method_config``, so those records keep their
    configuration ids.
    """

    name: str
    type: type
    default: Any
    help: str
    argument: str = ""
    recorded_when_default: bool = True

    @property
    def keyword(self) -> str:
        return self.argument or self.name


def recorded_parameters(hyperparameters: tuple[Hyperparameter, ...], values: dict[str, Any]) -> dict[str, Any]:
    """Return ``values`` without the hyper-parameters that are at their default and not recorded there."""
    left_out = {
        hyperparameter.name
        for hyperparameter in hyperparameters
        if not hyperparameter.recorded_when_default and values.get(hyperparameter.name) == hyperparameter.default
    }
    return {name: value for name, value in values.items() if name not in left_out}


@dataclass
class StepContext:
    """Everything a method may use in one training step.

    ``task_losses`` still carry their graphs. ``shared_representation`` is the
    encoder output that every decoder reads. ``task_parameters`` maps each task
    to the parameters of its own decoder. In data-parallel training
    ``reduce_rows`` averages a matrix of task gradients over processes; the
    task-gradient helpers apply it, so methods never call it themselves.
    Task gradients with respect to
    ``last_shared_parameters`` are computed on request and cached, so the
    trainer's cosine diagnostics reuse the gradients a method already took.
    """

    task_losses: dict[str, torch.Tensor]
    shared_parameters: list[nn.Parameter]
    last_shared_parameters: list[nn.Parameter]
    shared_representation: torch.Tensor
    step: int
    epoch: int
    task_parameters: dict[str, list[nn.Parameter]] = field(default_factory=dict)
    reduce_rows: Callable[[torch.Tensor], torch.Tensor] | None = None
    _gradients: torch.Tensor | None = field(default=None, repr=False)
    _gradients_have_graph: bool = field(default=False, repr=False)

    @property
    def tasks(self) -> list[str]:
        return list(self.task_losses)

    def loss_vector(self, tasks: list[str] | None = None) -> torch.Tensor:
        """Return the task losses stacked into one vector, in the order of ``tasks`` (default: the context's)."""
        return torch.stack([self.task_losses[task] for task in (tasks or self.tasks)])

    def last_shared_task_gradients(self, create_graph: bool = False) -> torch.Tensor:
        """Return G, the K x P matrix of flattened task gradients at the last shared layer.

        Row k is the gradient of task k's loss with respect to the last shared
        layer's parameters, in float32. With ``create_graph=True`` the rows can
        be differentiated again (double backpropagation). The graph of the
        losses is kept, so the method can still call ``backward`` on them.
        """
        if self._gradients is not None and (self._gradients_have_graph or not create_graph):
            return self._gradients

        for task, loss in self.task_losses.items():
            if not loss.requires_grad:
                raise MtbenchError(f"The loss of task '{task}' does not depend on any trainable parameter.")
        gradients, _ = task_gradients(
            list(self.task_losses.values()),
            self.last_shared_parameters,
            representation=self.shared_representation,
            create_graph=create_graph,
        )
        self._gradients = self.reduce(gradients)
        self._gradients_have_graph = create_graph
        return self._gradients

    def reduce(self, gradients: torch.Tensor) -> torch.Tensor:
        """Return task gradients averaged over data-parallel processes (unchanged in a single process)."""
        return gradients if self.reduce_rows is None else self.reduce_rows(gradients)

    def remember_shared_gradients(self, gradients: torch.Tensor) -> None:
        """Cache the last shared layer's columns of ``gradients``, the K x P task gradients of all shared parameters.

        The cosine diagnostics then reuse them instead of another backward
        pass. When the last shared layer is not among the shared parameters,
        its gradients are computed now, while the graph still exists.
        """
        positions = column_positions(self.shared_parameters, self.last_shared_parameters)
        if positions is None:
            self.last_shared_task_gradients(create_graph=False)
            return
        self._gradients = gradients.detach()[:, positions.to(gradients.device)]
        self._gradients_have_graph = False

    def cached_task_gradients(self) -> torch.Tensor | None:
        """Return the task gradients a method already computed this step, detached, or None."""
        return None if self._gradients is None else self._gradients.detach()


class Method(nn.Module):
    """Base class of every multi-task method.

    Subclasses set ``name`` (the registry key), ``title`` (the reference:
    authors, year and title of the publication) and ``hyperparameters``. They
    accept each hyper-parameter as a keyword argument of ``__init__`` after ``tasks``.
    A method that differentiates through gradients (``create_graph=True``) sets
    ``needs_double_backward``; ``mtbench run --compile`` rejects it, because a
    compiled model supports no double backward.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = ()
    uses_task_gradients: ClassVar[bool] = False
    single_task: ClassVar[bool] = False
    needs_double_backward: ClassVar[bool] = False

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        if not tasks:
            raise MtbenchError(f"Method '{self.name}' needs at least one task.")
        self.tasks = list(tasks)

    def config(self) -> dict[str, Any]:
        """Return the hyper-parameter values of this instance as records store them, see :func:`recorded_parameters`."""
        values = {hyperparameter.name: getattr(self, hyperparameter.keyword) for hyperparameter in self.hyperparameters}
        return recorded_parameters(self.hyperparameters, values)

    def loss(self, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the scalar to minimise and extra values to log (such as a penalty)."""
        raise NotImplementedError(f"Method '{self.name}' implements neither loss() nor backward()")

    def backward(self, context: StepContext) -> dict[str, float]:
        """Write gradients into ``.grad`` of the model (and method) parameters; return values to log."""
        total, logged = self.loss(context)
        total.backward()
        return logged

    def fills_last_shared_gradients(self) -> bool:
        """Return whether backward() caches the last shared layer's task gradients for the cosine diagnostics.

        When it does not, the trainer takes them itself before backward() on the
        steps it tracks. The default trusts ``uses_task_gradients``.
        """
        return self.uses_task_gradients

    def check_epochs(self, epochs: int) -> None:
        """Check that the method can run as configured in a run of ``epochs`` epochs; warn or raise MtbenchError if not.

        The trainer calls it once, before the first step. The default accepts any length.
        """

    def needs_losses_after_step(self) -> bool:
        """Return whether the trainer recomputes the step's task losses after the optimiser step for :meth:`losses_after_step`.

        The default is False, because the recomputation costs one more forward pass per step.
        """
        return False

    def losses_after_step(self, task_losses: dict[str, torch.Tensor]) -> None:
        """Receive the task losses of the step's batch, recomputed without gradients after the optimiser step.

        The trainer calls it after :meth:`after_optimizer_step` when
        :meth:`needs_losses_after_step` is True. The default does nothing.
        """

    def after_optimizer_step(self) -> None:
        """Adjust the method's own state after the optimiser has updated all parameters.

        The trainer calls it once per step, after ``optimizer.step()``; GradNorm
        renormalises its task weights here. The default does nothing.
        """

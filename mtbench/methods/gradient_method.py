"""The base class of gradient-manipulation methods such as MGDA, PCGrad and Nash-MTL.

Such a method receives the task gradients of the shared part of the network as a
K x N float32 matrix G and combines its rows into one update direction for
the shared parameters. Each task's own decoder receives the gradient of its own
loss, unweighted, as in TorchJD's ``mtl_backward`` and in LibMTL.

By default G contains gradients with respect to every shared parameter. With
``--param gradients=representation`` it holds gradients with respect to the
shared representation (the encoder output, one row entry per value in the
batch), and the combined direction is propagated back through the encoder:
one encoder backward pass instead of K. That is exact for methods whose update
is a weighted sum of task gradients with weights computed from G (MGDA-UB is
MGDA in this mode). Methods that change the gradients themselves, such as
projections, would do something else in representation space, so they refuse
this mode, unless their publication defines them there (GradDrop acts on the
gradients of the shared activations).
"""

from typing import ClassVar

import torch

from mtbench.errors import MtbenchError
from mtbench.methods.base import Hyperparameter, Method, StepContext
from mtbench.methods.jacobian import accumulate_gradients, task_gradients, write_direction

GRADIENT_SOURCES = ("parameters", "representation")

GRADIENTS = Hyperparameter(
    "gradients",
    str,
    "parameters",
    "take the task gradients with respect to the shared 'parameters' or the shared 'representation' (the encoder output)",
)


def weights_logged(tasks: list[str], weights: torch.Tensor) -> dict[str, float]:
    """Return ``{"weight/<task>": w_k}`` for logging a method's task weights."""
    return {f"weight/{task}": float(weight) for task, weight in zip(tasks, weights.detach().cpu())}


class GradientMethod(Method):
    """Combine the task gradients of the shared network into one direction.

    Subclasses implement :meth:`combine`. They list ``GRADIENTS`` among their
    hyper-parameters, accept ``gradients`` in ``__init__`` and pass it here.
    A subclass whose update is not a weighted sum of the task gradients keeps
    ``supports_representation = False`` and sets ``representation_refusal`` to
    the reason, which the error message shows.
    """

    uses_task_gradients = True
    supports_representation: ClassVar[bool] = False
    representation_refusal: ClassVar[str] = "its update is not a weighted sum of the task gradients."

    def __init__(self, tasks: list[str], gradients: str = "parameters") -> None:
        super().__init__(tasks)
        if gradients not in GRADIENT_SOURCES:
            raise MtbenchError(
                f"Invalid value gradients={gradients!r} for method '{self.name}': use 'parameters' or 'representation'."
            )
        if gradients == "representation" and not self.supports_representation:
            raise MtbenchError(
                f"Method '{self.name}' cannot use gradients with respect to the shared representation: "
                f"{self.representation_refusal} Use --param gradients=parameters (the default)."
            )
        self.gradients = gradients

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the update direction (a vector of length N) for the K x N float32 task gradients, and values to log."""
        raise NotImplementedError(f"Method '{self.name}' does not implement combine()")

    def fills_last_shared_gradients(self) -> bool:
        return self.gradients == "parameters"

    def task_gradient_matrix(self, context: StepContext) -> torch.Tensor:
        """Return G and give every decoder the gradient of its own task loss.

        In representation mode the graph of the losses is kept, because the
        direction is propagated back through it. In parameters mode the last
        task's backward pass frees it, so a subclass must not backpropagate
        through the losses after this call.
        """
        if context.tasks != self.tasks:
            raise MtbenchError(
                f"Method '{self.name}' was built for the tasks {self.tasks} but the training step has {context.tasks}."
            )
        if self.gradients == "representation":
            if context.reduce_rows is not None:
                raise MtbenchError(
                    f"Method '{self.name}' cannot use gradients with respect to the shared representation in "
                    "data-parallel training: each process holds other samples. Use --param gradients=parameters."
                )
            inputs = [context.shared_representation]
        else:
            inputs = list(context.shared_parameters)

        for task, loss in context.task_losses.items():
            if not loss.requires_grad:
                raise MtbenchError(f"The loss of task '{task}' does not depend on any trainable parameter.")
            if task not in context.task_parameters:
                raise MtbenchError(
                    f"Method '{self.name}' needs the decoder parameters of task '{task}' in the step context."
                )

        matrix, head_gradients = task_gradients(
            list(context.task_losses.values()),
            inputs,
            representation=context.shared_representation,
            task_parameters=[context.task_parameters[task] for task in context.tasks],
            keep_graph=self.gradients == "representation",
        )
        for task, gradients in zip(context.tasks, head_gradients):
            accumulate_gradients(context.task_parameters[task], gradients)
        return context.reduce(matrix)

    def backward(self, context: StepContext) -> dict[str, float]:
        matrix = self.task_gradient_matrix(context)
        if self.gradients == "parameters":
            context.remember_shared_gradients(matrix)
        direction, logged = self.combine(matrix, context)

        if self.gradients == "representation":
            representation = context.shared_representation
            if direction.numel() != representation.numel():
                raise MtbenchError(
                    f"Method '{self.name}' returned a direction of {direction.numel()} values for a representation "
                    f"of {representation.numel()}."
                )
            torch.autograd.backward(representation, direction.reshape(representation.shape).to(representation.dtype))
        else:
            write_direction(context.shared_parameters, direction)
        return logged

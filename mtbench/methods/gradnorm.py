"""GradNorm: learnable task weights that balance gradient norms at the last shared layer."""

import math

import torch
from torch import nn

from mtbench.errors import MtbenchError
from mtbench.methods.base import Hyperparameter, Method, StepContext
from mtbench.methods.registry import register_method

# A weight that the optimiser step leaves at or below zero is raised to this value before the
# weights are rescaled to sum to K, so every task keeps a positive weight.
MINIMUM_WEIGHT = 1e-6


def relative_inverse_training_rates(losses: torch.Tensor, initial_losses: torch.Tensor) -> torch.Tensor:
    """Return r_k = L~_k / mean(L~) with the loss ratio L~_k = L_k(t) / L_k(0), for 1-D tensors.

    Task losses are expected to be non-negative. A task whose initial loss is not
    positive has no defined ratio, so its ratio is taken as 1, and a negative
    ratio counts as 0. When every ratio is 0 (every current loss is 0), every
    r_k is taken as 1.
    Losses (2, 3) after initial losses (4, 2) give ratios (0.5, 1.5) and r = (0.5, 1.5).
    """
    has_initial_loss = initial_losses > 0
    safe_initial_losses = torch.where(has_initial_loss, initial_losses, torch.ones_like(initial_losses))
    loss_ratios = torch.where(has_initial_loss, losses / safe_initial_losses, torch.ones_like(losses)).clamp(min=0)

    mean_ratio = loss_ratios.mean()
    if mean_ratio <= 0:
        return torch.ones_like(loss_ratios)
    return loss_ratios / mean_ratio


def gradnorm_loss(weights: torch.Tensor, gradient_norms: torch.Tensor, rates: torch.Tensor, alpha: float) -> torch.Tensor:
    """Return L_grad = sum_k |G_k - target_k| with G_k = w_k ||g_k|| and target_k = mean(G) r_k^alpha.

    ``gradient_norms`` contains ||g_k||, the norms of the unweighted task gradients
    at the last shared layer, and must carry no graph. The target is detached,
    so the gradient of L_grad with respect to w_k is sign(G_k - target_k) ||g_k||.
    With ||g|| = (5, 1), w = (1, 1), r = (0.5, 1.5) and alpha = 1: G = (5, 1),
    target = (1.5, 4.5), L_grad = 7 and the gradient is (5, -1).
    """
    weighted_norms = weights * gradient_norms
    targets = weighted_norms.detach().mean() * rates.pow(alpha)
    return (weighted_norms - targets).abs().sum()


@register_method
class GradNorm(Method):
    """Minimise sum_k w_k L_k while learnable weights w_k balance the task gradient norms.

    From "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
    Multitask Networks" (Chen, Badrinarayanan, Lee and Rabinovich, ICML 2018).
    The weights start at 1. Each step the model parameters receive the gradient
    of sum_k w_k L_k with w held constant, and the weights receive the gradient
    of L_grad (see :func:`gradnorm_loss`) alone. The gradients g_k are taken with
    respect to the parameters of the last shared layer. L_k(0) are the task
    losses of the first training step. The buffer ``initial_losses`` stores
    them, so they are saved in checkpoints with the weights. After the
    optimiser step the weights are rescaled to sum to K. A weight that the step
    left at or below zero is first raised to ``MINIMUM_WEIGHT``.

    The weights are optimised by the trainer's optimiser, Adam at the run's
    learning rate, together with the model. The authors used Adam with learning
    rate 0.025 for the weights and 2e-5 for the network on NYUv2, so mtbench's
    weights move more slowly relative to the network than theirs.

    Hyper-parameter: ``alpha``, the asymmetry, which sets how strongly slowly
    training tasks get larger gradient targets. The authors use 1.5 on both
    NYUv2 variants and 0.12 on their synthetic regression tasks, which differ
    only in loss scale. The default is the NYUv2 value, the one published for
    real data. The authors do not publish a MultiDigitMNIST value, so mtbench
    chooses it on validation.

    Logged per step: ``weight/<task>``, the weights used in that step (before
    the update), and ``gradnorm_loss``, the value of L_grad.
    """

    name = "gradnorm"
    title = "Chen, Badrinarayanan, Lee and Rabinovich, 2018: GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep Multitask Networks"
    hyperparameters = (
        Hyperparameter("alpha", float, 1.5, "asymmetry, the exponent of the relative inverse training rate in the gradient-norm target (dimensionless, >= 0)"),
    )
    uses_task_gradients = True

    def __init__(self, tasks: list[str], alpha: float = 1.5) -> None:
        super().__init__(tasks)
        alpha = float(alpha)
        if not (math.isfinite(alpha) and alpha >= 0):
            raise MtbenchError(f"Invalid GradNorm alpha {alpha}: use a finite number >= 0, such as 1.5.")
        self.alpha = alpha

        task_count = len(self.tasks)
        self.weights = nn.Parameter(torch.ones(task_count))
        self.register_buffer("initial_losses", torch.zeros(task_count))
        self.register_buffer("initial_losses_recorded", torch.tensor(False))

    def backward(self, context: StepContext) -> dict[str, float]:
        """Write the gradient of sum_k w_k L_k into the model parameters and of L_grad into ``weights``.

        Raises MtbenchError when the step's tasks differ from the tasks the method was built for.
        """
        if context.tasks != self.tasks:
            raise MtbenchError(f"GradNorm was built for the tasks {self.tasks} but the training step has {context.tasks}. Build the method with the run's tasks, in the same order.")

        losses = context.loss_vector()
        # Taken before the backward pass below frees the graph of the losses.
        gradients = context.last_shared_task_gradients(create_graph=False).detach()
        gradient_norms = gradients.norm(dim=1).to(self.weights.dtype)

        if not bool(self.initial_losses_recorded):
            self.initial_losses.copy_(losses.detach())
            self.initial_losses_recorded.fill_(True)

        rates = relative_inverse_training_rates(losses.detach().to(self.initial_losses.dtype), self.initial_losses)
        balance_loss = gradnorm_loss(self.weights, gradient_norms, rates, self.alpha)
        balance_loss.backward()

        weighted_total = (self.weights.detach().to(losses.dtype) * losses).sum()
        weighted_total.backward()

        logged = {f"weight/{task}": float(weight) for task, weight in zip(self.tasks, self.weights.detach())}
        logged["gradnorm_loss"] = float(balance_loss.detach())
        return logged

    def after_optimizer_step(self) -> None:
        """Raise weights at or below zero to ``MINIMUM_WEIGHT``, then rescale the weights to sum to K."""
        with torch.no_grad():
            self.weights.clamp_(min=MINIMUM_WEIGHT)
            self.weights.mul_(len(self.tasks) / self.weights.sum())

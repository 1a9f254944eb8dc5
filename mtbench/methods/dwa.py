"""Dynamic Weight Average: task weights from the rate at which each epoch-mean loss falls."""

import math

import torch

from mtbench.errors import MtbenchError
from mtbench.methods.base import Hyperparameter, Method, StepContext
from mtbench.methods.registry import register_method

# DWA needs the mean losses of two finished epochs, so epochs 1 and 2 use weights of 1.
WARMUP_EPOCHS = 2


def dwa_weights(older_means: torch.Tensor, previous_means: torch.Tensor, temperature: float) -> torch.Tensor:
    """Return w = K softmax(r / T) with r_k = L_k(t-1) / L_k(t-2), one weight per task.

    ``older_means`` contains the epoch-mean task losses L(t-2) and
    ``previous_means`` contains L(t-1); both are vectors with one entry per task.
    The weights are positive and sum to K, the number of tasks. A task whose
    L(t-2) is 0 has no defined descent rate and gets r_k = 1, as if its loss
    had not changed, so the weights stay finite.

    Means L(t-2) = (2, 1) and L(t-1) = (1, 1) with T = 2 give r = (0.5, 1) and
    w = (0.8756, 1.1244).
    """
    zero = older_means == 0
    rates = torch.where(zero, torch.ones_like(previous_means), previous_means / torch.where(zero, 1.0, older_means))
    return len(rates) * torch.softmax(rates / temperature, dim=0)


def _check_temperature(value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise MtbenchError(f"Invalid temperature {value} for method 'dwa': use a positive number (the published value is 2).")
    return value


@register_method
class DynamicWeightAverage(Method):
    """Weight task k by K exp(r_k / T) / sum_i exp(r_i / T), with r_k = L_k(t-1) / L_k(t-2).

    From "End-to-End Multi-Task Learning with Attention" (Liu, Johns and
    Davison, CVPR 2019). L_k(t) is the mean training loss of task k over epoch
    t, so r_k is the relative descent rate of task k over the two previous
    epochs: a task whose loss fell less gets a larger weight. The weights are
    constant within an epoch, sum to K, and are 1 in epochs 1 and 2. The
    objective is sum_k w_k L_k with the weights detached.

    The method computes the epoch means itself: each step adds the detached
    task losses to a running sum, and the first step of a new epoch (a new
    ``context.epoch``) turns the sum into that epoch's mean. The sums, the step
    count and the last two means are buffers, so a checkpoint keeps them.

    Hyper-parameter: ``temperature`` T, 2 in all published experiments. A
    larger T makes the weights more even.
    """

    name = "dwa"
    title = "Liu, Johns and Davison, 2019: End-to-End Multi-Task Learning with Attention"
    hyperparameters = (
        Hyperparameter("temperature", float, 2.0, "softmax temperature T applied to the loss ratios (dimensionless, > 0)"),
    )

    def __init__(self, tasks: list[str], temperature: float = 2.0) -> None:
        super().__init__(tasks)
        self.temperature = _check_temperature(temperature)

        task_count = len(self.tasks)
        self.register_buffer("epoch_loss_sums", torch.zeros(task_count, dtype=torch.float64))
        self.register_buffer("epoch_step_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("current_epoch", torch.zeros((), dtype=torch.long))
        # Row 0 contains L(t-2) and row 1 contains L(t-1).
        self.register_buffer("epoch_means", torch.zeros(2, task_count, dtype=torch.float64))
        self.register_buffer("finished_epochs", torch.zeros((), dtype=torch.long))

    def _start_epoch(self, epoch: int) -> None:
        """Close the running epoch, if it had steps, and start counting ``epoch``."""
        count = int(self.epoch_step_count)
        if count > 0:
            means = self.epoch_loss_sums / count
            self.epoch_means.copy_(torch.stack([self.epoch_means[1], means]))
            self.finished_epochs += 1

        self.epoch_loss_sums.zero_()
        self.epoch_step_count.zero_()
        self.current_epoch.fill_(epoch)

    def task_weights(self) -> torch.Tensor:
        """Return this epoch's weights: 1 until two epochs have finished, then :func:`dwa_weights`."""
        if int(self.finished_epochs) < WARMUP_EPOCHS:
            return torch.ones(len(self.tasks), dtype=torch.float64, device=self.epoch_means.device)
        return dwa_weights(self.epoch_means[0], self.epoch_means[1], self.temperature)

    def loss(self, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        losses = context.loss_vector(self.tasks)

        if context.epoch != int(self.current_epoch):
            self._start_epoch(context.epoch)
        weights = self.task_weights()

        with torch.no_grad():
            self.epoch_loss_sums += losses.detach().to(self.epoch_loss_sums)
            self.epoch_step_count += 1

        total = (weights.to(losses) * losses).sum()
        logged = {f"weight/{task}": value for task, value in zip(self.tasks, weights.cpu().tolist())}
        return total, logged
